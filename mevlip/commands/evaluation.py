"""Score a FLARE 2025 Task 5 ``predictions.json`` with every task metric, as the organisers compute them.

Usage (as in the original ME-VLIP README)::

    cd evaluation && python evaluation.py --base_dataset_path <path>/original_dataset \\
        --prediction_file predictions.json --output_dir evaluation_results \\
        --output_filename metrics_predictions.json

Writes ``<output_dir>/<name>.json`` (config, versions, git hash, matching report, both profiles per task and
per dataset with counts and bootstrap 95% CIs), ``<name>.md``, ``<name>_samples.jsonl`` and ``<name>.png``.
Profiles: ``flare25`` = the organisers' Qwen2.5-VL/MedGemma evaluator rules (their published baseline tables);
``strict`` = the same metrics with the documented corrections (see ``mevlip/metrics/profiles.py``).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from mevlip.cli import (
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    SEED,
    UserError,
    add_common_args,
    make_parser,
    one_line,
    run_cli,
    setup_logging,
)
from mevlip.flare import SPLITS, VALIDATION_SPLITS, FlareDataError
from mevlip.locks import OutputLock
from mevlip.metrics.evaluate import EvalConfig, evaluate
from mevlip.metrics.green_llm import DEFAULT_GREEN_MODEL
from mevlip.metrics.profiles import DEFAULT_ERROR_CAP, PROFILES
from mevlip.metrics.records import PredictionFileError
from mevlip.metrics.report import provenance, write_outputs

logger = logging.getLogger("evaluation")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = make_parser(__doc__)
    parser.add_argument("--base_dataset_path", required=True,
                        help="FLARE dataset root (holds validation-public/, validation-hidden/, ...)")
    parser.add_argument("--prediction_file", required=True, help="predictions.json: a JSON list of records")
    parser.add_argument("--output_dir", default="evaluation_results", help="folder for the outputs")
    parser.add_argument("--output_filename", default="metrics_predictions.json",
                        help="name of the metrics JSON; the .md, _samples.jsonl and .png share its stem")
    parser.add_argument("--splits", nargs="+", default=list(VALIDATION_SPLITS), choices=SPLITS,
                        help="ground-truth splits (the _withGT file is used wherever it exists)")
    parser.add_argument("--missing", choices=("wrong", "skip"), default="wrong",
                        help="a ground-truth record without prediction is scored as an empty answer (wrong) or "
                             "left out (skip, as the organisers' PaliGemma evaluator)")
    parser.add_argument("--primary", choices=PROFILES, default="flare25",
                        help="profile reported first and charted (both are always computed)")
    parser.add_argument("--bootstrap", type=NON_NEGATIVE_INT, default=200,
                        help="bootstrap replicates for 95%% CIs (0: off)")
    parser.add_argument("--seed", type=SEED, default=0, help="bootstrap seed")
    parser.add_argument("--error_cap", type=POSITIVE_FLOAT, default=DEFAULT_ERROR_CAP,
                        help="strict profile: cap on one sample's absolute counting/regression error")
    parser.add_argument("--green_model", nargs="?", const=DEFAULT_GREEN_MODEL, default=None,
                        help=f"also compute real GREEN with this judge (hub id or folder; flag alone: "
                             f"{DEFAULT_GREEN_MODEL}); needs a GPU in practice (default: off)")
    parser.add_argument("--green_batch_size", type=POSITIVE_INT, default=8, help="GREEN judge batch size")
    parser.add_argument("--green_max_length", type=POSITIVE_INT, default=2048, help="GREEN prompt+generation length")
    parser.add_argument("--green_max_new_tokens", type=POSITIVE_INT, default=None, help=argparse.SUPPRESS)
    common = add_common_args(parser)
    common.add_argument("-v", "--verbose", dest="log_level", action="store_const", const="DEBUG",
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # the old spelling of --log_level DEBUG
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation; returns 0 (unusable input raises :class:`mevlip.cli.UserError` naming the file)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        config = EvalConfig(base_dataset_path=args.base_dataset_path, prediction_file=args.prediction_file,
                            splits=tuple(args.splits), missing=args.missing, primary=args.primary,
                            bootstrap=args.bootstrap, seed=args.seed, error_cap=args.error_cap,
                            green_model=args.green_model, green_batch_size=args.green_batch_size,
                            green_max_length=args.green_max_length, green_max_new_tokens=args.green_max_new_tokens)
    except ValueError as err:  # a bad flag value
        raise UserError(str(err)) from None
    lock = OutputLock(Path(args.output_dir) / args.output_filename, "evaluation run")  # one writer at a time
    try:
        return _evaluate(args, config)
    finally:
        lock.release()


def _evaluate(args: argparse.Namespace, config: EvalConfig) -> int:
    """:func:`main` once its outputs are locked."""
    try:
        results, rows = evaluate(config, provenance())
    except (PredictionFileError, FlareDataError, FileNotFoundError) as err:
        raise UserError(str(err)) from None
    try:
        paths = write_outputs(results, rows, args.output_dir, args.output_filename)
    except OSError as err:  # a read-only or full output folder
        raise UserError(f"cannot write the outputs into {args.output_dir} (the previous ones, if any, are kept): "
                        f"{one_line(err)}") from None
    for task, row in results["primary_metrics"].items():  # with how many answers each figure rests on
        logger.info("%-28s %-20s n=%-5d missing=%-5d %s", task, row["metric"], row["n"], row["n_missing"],
                    "  ".join(f"{p}={row[p]} (scored {row[p + '_n_scored']}, unparsable {row[p + '_n_unparsable']})"
                              for p in results["profiles_order"]))
    missing = sum(row["n_missing"] for row in results["primary_metrics"].values())
    if missing:
        logger.warning("%d ground-truth record(s) have no prediction: flare25 drops missing counting/regression "
                       "answers from the MAE; strict counts them wrong (see 'scored' above)", missing)
    logger.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    run_cli(main)
