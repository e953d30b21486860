"""Build the tiny InternVL3-8B-hf-architecture stand-in (random weights, offline) as a Hugging Face folder.

    python llama_factory_internvl/scripts/make_standin_model.py --output_dir saves/standin/base \\
        [--base_dataset_path MINI_FLARE] [--seed 0]

The folder loads with ``AutoProcessor`` / ``AutoModelForImageTextToText`` and trains with the recipes in
``examples/standin``. It is a stand-in for smoke tests and the demo, not a medical model. Library code:
:mod:`mevlip.training.standin`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from mevlip.cli import POSITIVE_INT, SEED, UserError, add_common_args, add_option, make_parser, run_cli, setup_logging
from mevlip.locks import OutputLock
from mevlip.training.standin import StandinSpec, build_standin


def build_parser() -> argparse.ArgumentParser:
    """The command-line options: where, from what texts, and every size of
    :class:`mevlip.training.standin.StandinSpec`."""
    defaults = StandinSpec()
    parser = make_parser(__doc__.split("\n\n")[0])
    add_option(parser, "--output_dir", aliases=("--out",), required=True, help="folder to write the model into")
    add_option(parser, "--base_dataset_path", aliases=("--data",),
               help="FLARE-format root whose texts train the tokenizer (default: a tiny mini-FLARE generated with "
                    "--seed)")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of the weights and the generated texts")
    helps = {"image_size": "tile side in pixels", "vocab_size": "BPE vocabulary size"}
    for f in dataclasses.fields(StandinSpec):  # every size of the spec, e.g. --text_hidden 128 --text_layers 4
        parser.add_argument(f"--{f.name}", type=POSITIVE_INT, default=getattr(defaults, f.name),
                            help=helps.get(f.name, f"StandinSpec.{f.name}"))
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.base_dataset_path is not None and not Path(args.base_dataset_path).is_dir():
        raise UserError(f"--base_dataset_path {args.base_dataset_path}: no such folder")
    spec = StandinSpec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(StandinSpec)})
    lock = OutputLock(args.output_dir, "stand-in build")  # one writer of the model folder at a time
    try:
        out = build_standin(args.output_dir, data=args.base_dataset_path, seed=args.seed, spec=spec)
    except ValueError as err:  # no question files under --base_dataset_path
        raise UserError(str(err)) from None
    finally:
        lock.release()
    print(out)
    return 0


if __name__ == "__main__":
    run_cli(main)
