"""Build the tiny InternVL3-8B-hf-architecture stand-in (random weights, offline) as a Hugging Face folder.

    python llama_factory_internvl/scripts/make_standin_model.py --out saves/standin/base [--data MINI_FLARE] [--seed 0]

The folder loads with ``AutoProcessor`` / ``AutoModelForImageTextToText`` and trains with the recipes in
``examples/standin``. It is a stand-in for smoke tests and the demo, not a medical model. Library code:
:mod:`mevlip.standin`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

from mevlip.standin import StandinSpec, build_standin


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    defaults = StandinSpec()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write the model into")
    parser.add_argument("--data", help="FLARE-format root whose texts train the tokenizer "
                                       "(default: a tiny mini-FLARE generated with --seed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the generated texts")
    helps = {"image_size": "tile side in pixels", "vocab_size": "BPE vocabulary size"}
    for f in dataclasses.fields(StandinSpec):  # every size of the spec, e.g. --text_hidden 128 --text_layers 4
        parser.add_argument(f"--{f.name}", type=int, default=getattr(defaults, f.name),
                            help=helps.get(f.name, f"StandinSpec.{f.name}") + " (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    spec = StandinSpec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(StandinSpec)})
    out = build_standin(args.out, data=args.data, seed=args.seed, spec=spec)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
