"""Train the eight adapters (general + one per task type) in sequence with ``llamafactory-cli train``.

Run from ``llama_factory_internvl/`` (where the recipes' relative paths point)::

    python scripts/train_adapters.py --recipe_dir examples/train_qlora --adapters_dir saves/internvl3-8b/qlora
    python scripts/train_adapters.py --recipe_dir examples/standin --adapters_dir saves/standin/adapters \\
        --max_steps 2 --only general,counting

LLaMA-Factory's progress bar and loss lines show on the console as it trains, and go to each adapter's
``mevlip_train.log``. Adapters already trained (``adapter_config.json`` + ``adapter_model.safetensors`` present) are
skipped unless ``--overwrite``. An interrupted run resumes when rerun with the same command: each adapter folder with
a ``checkpoint-<step>/`` but no final adapter continues from its newest complete checkpoint (the paper recipes save
every 500 steps; ``--save_steps N`` saves more often, and makes the stand-in recipes, which save none, resumable).
The library code is :mod:`mevlip.training.adapters`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path

from mevlip.cli import POSITIVE_INT, UserError, add_common_args, make_parser, run_cli, setup_logging
from mevlip.locks import OutputLock
from mevlip.training.adapters import REPORTERS, AdapterTrainingError, select_adapters, train_adapters
from mevlip.training.recipes import ADAPTERS


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = make_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--recipe_dir", required=True, help="folder of adapter recipes, e.g. examples/standin")
    parser.add_argument("--adapters_dir", required=True, help="where <adapter>/ folders are written")
    parser.add_argument("--model", help="override model_name_or_path: a base model folder (the stand-in) or a hub id "
                                        "(default: the recipe's)")
    parser.add_argument("--dataset_dir", help="override dataset_dir, the folder with dataset_info.json "
                                              "(default: the recipe's)")
    parser.add_argument("--max_steps", type=POSITIVE_INT,
                        help="override max_steps, for smoke runs (default: the recipe's)")
    parser.add_argument("--only", help=f"comma-separated subset of: {','.join(ADAPTERS)} (default: all eight)")
    parser.add_argument("--overwrite", action="store_true", help="retrain adapters that already exist")
    parser.add_argument("--set", dest="extra", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                        help="further recipe override, repeatable "
                             "(e.g. deepspeed=examples/deepspeed/ds_z2_config.json) (default: none)")
    parser.add_argument("--workdir", help="folder the recipes' relative paths are relative to "
                                          "(default: the one holding examples/)")
    parser.add_argument("--report_to", choices=list(REPORTERS),
                        help="override the recipes' report_to: tensorboard writes event files under <adapter>/runs/ "
                             "(pip install '.[tensorboard]'), wandb needs wandb and its login (default: the recipe's, "
                             "none)")
    parser.add_argument("--save_steps", type=POSITIVE_INT,
                        help="save a checkpoint every N steps (save_strategy=steps), so that an interrupted run can "
                             "resume (default: the recipe's)")
    parser.add_argument("--no_resume", action="store_true",
                        help="start an interrupted adapter afresh (its checkpoints are removed) instead of continuing "
                             "from its last checkpoint")
    parser.add_argument("--quiet", action="store_true",
                        help="do not print LLaMA-Factory's output (progress bar, loss) on the console; "
                             "it still goes to <adapter>/mevlip_train.log")
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code (a user error raises :class:`mevlip.cli.UserError`)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else None
    folder = Path(args.adapters_dir)
    new_folder = not folder.exists()
    try:  # one writer per adapter folder (the demo trains two adapters of one folder side by side)
        locks = [OutputLock(folder / name, "adapter training run") for name in select_adapters(only)]
    except ValueError as err:  # a bad --only, or an adapter another run is training
        raise UserError(str(err)) from None
    try:
        runs = train_adapters(args.recipe_dir, args.adapters_dir, model=args.model, dataset_dir=args.dataset_dir,
                              max_steps=args.max_steps, only=only, overwrite=args.overwrite,
                              extra=dict(args.extra), workdir=args.workdir, echo=not args.quiet,
                              report_to=args.report_to, save_steps=args.save_steps, resume=not args.no_resume)
    except AdapterTrainingError as err:  # a training run failed: not a user error, the log's last lines help
        logging.getLogger("train_adapters").error("%s", err)
        return 1
    except (ValueError, FileNotFoundError) as err:  # no recipe folder, a bad --only/--set, no model folder
        if new_folder:  # refused before training: leave no folder holding only the locks behind
            for lock in locks:
                lock.release()
                lock.path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise UserError(str(err)) from None
    finally:
        for lock in locks:
            lock.release()
    for run in runs:
        resumed = f"  (resumed from {Path(run.resumed_from).name})" if run.resumed_from else ""
        print(f"{run.adapter:28s} {run.status:8s} {run.seconds:8.1f} s  {run.output_dir}{resumed}")
    return 0


if __name__ == "__main__":
    run_cli(main)
