"""FLARE 2025 Task 5 -> LLaMA-Factory ShareGPT data, per-task subsets and the task-router set.

Run from this folder with no arguments (``cd llama_factory_internvl/scripts && python data_preparation.py``):
reads ``../../original_dataset`` and writes ``../data/`` (both resolved from this file, not the working folder).
See ``llama_factory_internvl/data/README.md`` for what is written and what a correct run prints.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import MISSING, fields
from pathlib import Path

from mevlip.cli import (
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    SEED,
    UserError,
    add_common_args,
    add_option,
    checkout_root,
    make_parser,
    number,
    run_cli,
    setup_logging,
)
from mevlip.flare import FlareDataError, ZipLimits, add_zip_limit_args, zip_limits_from_args
from mevlip.prepare import ANSWER_MODES, STATS_FILE, PrepareConfig, default_workers, format_summary, prepare
from mevlip.presets import TRAINING_PRESETS
from mevlip.prompts import MULTI_IMAGE_MODES

#: In a checkout, its original_dataset/ and llama_factory_internvl/data/ wherever the command runs (the README runs it
#: from llama_factory_internvl/scripts/); installed elsewhere, those names in the current folder.
_ROOT = checkout_root()
DEFAULT_ROOT = (_ROOT or Path.cwd()) / "original_dataset"
DEFAULT_OUT = _ROOT / "llama_factory_internvl" / "data" if _ROOT else Path.cwd() / "data"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; help texts come from :class:`mevlip.prepare.PrepareConfig`."""
    helps = {f.name: f.metadata.get("help", "") for f in fields(PrepareConfig)}
    defaults = {f.name: f.default for f in fields(PrepareConfig) if f.default is not MISSING}
    parser = make_parser(__doc__.split("\n")[0])
    add_option(parser, "--base_dataset_path", aliases=("--dataset_root",), default=str(DEFAULT_ROOT),
               help=helps["dataset_root"])
    parser.add_argument("--output_dir", default=str(DEFAULT_OUT), help=helps["output_dir"])
    parser.add_argument("--splits", nargs="+", default=list(defaults["splits"]), help=helps["splits"])
    parser.add_argument("--val_splits", nargs="*", default=[], help=helps["val_splits"])
    parser.add_argument("--preset", choices=list(TRAINING_PRESETS), default=defaults["preset"], help=helps["preset"])
    parser.add_argument("--multi_image", choices=list(MULTI_IMAGE_MODES), default=None,
                        help=helps["multi_image"] + " (default: the preset's)")
    parser.add_argument("--answers", choices=list(ANSWER_MODES), default=None,
                        help=helps["answers"] + " (default: the preset's)")
    parser.add_argument("--max_per_dataset", type=POSITIVE_INT, default=None,
                        help=helps["max_per_dataset"] + " (default: all)")
    parser.add_argument("--seed", type=SEED, default=defaults["seed"], help=helps["seed"])
    parser.add_argument("--workers", type=POSITIVE_INT, default=default_workers(),
                        help=helps["workers"] + " (default: one per core, at most 8: %(default)s here)")
    parser.add_argument("--image_paths", choices=["relative", "absolute"], default=defaults["image_paths"],
                        help=helps["image_paths"])
    parser.add_argument("--full_decode", action="store_true", help=helps["full_decode"])
    parser.add_argument("--tokenizer", default=None, help=helps["tokenizer"])
    parser.add_argument("--image_tokens", type=NON_NEGATIVE_INT, default=defaults["image_tokens"],
                        help=helps["image_tokens"])
    parser.add_argument("--cutoff_len", type=POSITIVE_INT, default=defaults["cutoff_len"], help=helps["cutoff_len"])
    parser.add_argument("--router_test_fraction", type=number(float, 0.0, 1.0, high_open=True),
                        default=defaults["router_test_fraction"], help=helps["router_test_fraction"])
    add_option(parser, "--no_extract", aliases=("--no-extract",), action="store_true",
               help="do not extract the image zips first (they are already extracted)")
    parser.add_argument("--extract", dest="no_extract", action="store_false", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)  # the old spelling of the default
    add_zip_limit_args(parser)
    add_common_args(parser, progress=True, progress_default=None)
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Parse the arguments, run :func:`mevlip.prepare.prepare`, print the summary; returns the stats."""
    args = vars(build_parser().parse_args(argv))
    setup_logging(args.pop("log_level"))
    args["dataset_root"] = args.pop("base_dataset_path")
    args["extract"] = not args.pop("no_extract")
    args["progress"] = not args.pop("no_progress")
    try:
        limits: ZipLimits = zip_limits_from_args({k: args.pop(k) for k in ("zip_max_bytes", "zip_max_ratio")})
        config = PrepareConfig(**args)
    except ValueError as err:
        raise UserError(str(err)) from err
    start = time.perf_counter()
    try:
        stats = prepare(config, limits=limits)
    except (FileNotFoundError, FlareDataError, ValueError, OSError) as err:  # no data, a broken dataset_info.json
        raise UserError(str(err)) from err
    print(format_summary(stats))
    print(f"wrote {config.output_dir} in {time.perf_counter() - start:.1f} s "
          f"(details: {Path(config.output_dir) / STATS_FILE})")
    return stats


if __name__ == "__main__":
    run_cli(main)
