"""Train the eight adapters (general + one per task type) in sequence with ``llamafactory-cli train``.

Run from ``llama_factory_internvl/`` (where the recipes' relative paths point)::

    python scripts/train_adapters.py --recipe_dir examples/train_qlora --adapters_dir saves/internvl3-8b/qlora
    python scripts/train_adapters.py --recipe_dir examples/standin --adapters_dir saves/standin/adapters \\
        --max_steps 2 --only general,counting

Adapters already trained (``adapter_config.json`` + ``adapter_model.safetensors`` present) are skipped unless
``--overwrite``. The library code is :mod:`mevlip.train`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from mevlip.recipes import ADAPTERS
from mevlip.train import AdapterTrainingError, train_adapters


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe_dir", required=True, help="folder of adapter recipes, e.g. examples/standin")
    parser.add_argument("--adapters_dir", required=True, help="where <adapter>/ folders are written")
    parser.add_argument("--model", help="override model_name_or_path (base model or stand-in folder)")
    parser.add_argument("--dataset_dir", help="override dataset_dir (folder with dataset_info.json)")
    parser.add_argument("--max_steps", type=int, help="override max_steps (smoke runs)")
    parser.add_argument("--only", help=f"comma-separated subset of: {','.join(ADAPTERS)}")
    parser.add_argument("--overwrite", action="store_true", help="retrain adapters that already exist")
    parser.add_argument("--set", dest="extra", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                        help="further recipe override, repeatable "
                             "(e.g. deepspeed=examples/deepspeed/ds_z2_config.json)")
    parser.add_argument("--workdir", help="folder the recipes' relative paths are relative to "
                                          "(default: the one holding examples/)")
    parser.add_argument("--stream", action="store_true", help="also print LLaMA-Factory's output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else None
    try:
        runs = train_adapters(args.recipe_dir, args.adapters_dir, model=args.model, dataset_dir=args.dataset_dir,
                              max_steps=args.max_steps, only=only, overwrite=args.overwrite,
                              extra=dict(args.extra), workdir=args.workdir, stream=args.stream)
    except (AdapterTrainingError, ValueError, FileNotFoundError) as err:
        logging.error("%s", err)
        return 1
    for run in runs:
        print(f"{run.adapter:28s} {run.status:8s} {run.seconds:8.1f} s  {run.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
