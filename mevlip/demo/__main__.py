"""``python -m mevlip.demo``: the demo's command line; the stages it runs are :mod:`mevlip.demo.run`'s."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from mevlip.cli import (
    POSITIVE_INT,
    SEED,
    UserError,
    add_common_args,
    add_option,
    checkout_root,
    make_parser,
    run_cli,
    setup_logging,
)
from mevlip.demo import run as pipeline
from mevlip.presets import DEFAULT_PRESET, TRAINING_PRESETS

PROG = "python -m mevlip.demo"


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = make_parser(pipeline.__doc__, prog=PROG)
    add_option(parser, "--output_dir", aliases=("--out",), default=str(pipeline.REPO / "demo_output"),
               help="where every artefact goes")
    parser.add_argument("--fresh", action="store_true", help="delete the previous demo output and redo every stage")
    parser.add_argument("--quick", action="store_true",
                        help="CI size: tiny mini-FLARE, a few training steps per stage (checks the plumbing only)")
    parser.add_argument("--seed", type=SEED, default=0,
                        help="training seed: stand-in weights, pre-training, adapters, router")
    parser.add_argument("--seeds", type=SEED, nargs="+", metavar="SEED",
                        help="seeds mode: train, infer and score once per seed on the same mini-FLARE, then write "
                             "seeds.md/seeds.json (mean and [min, max] per task and column, verdicts per seed); "
                             "seed 0 lives in OUTPUT_DIR, seed n in OUTPUT_DIR/seeds/seed_n. Two seeds train at once "
                             "(--jobs 2): about one demo's time per two seeds (default: one run, --seed)")
    parser.add_argument("--data_seed", type=SEED, default=0, help="seed of mini-FLARE")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=list(TRAINING_PRESETS),
                        help="paper: train and infer as the authors did; ours: our opt-in variant (docs/fidelity.md)")
    parser.add_argument("--jobs", type=POSITIVE_INT, default=2, help="stages run at once when their inputs are ready")
    parser.add_argument("--threads", type=POSITIVE_INT, default=1,
                        help="torch threads of each stage's process, fixed whatever the machine")
    parser.add_argument("--pretrain_threads", type=POSITIVE_INT, default=1,
                        help="torch threads of the stand-in pre-training")
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m mevlip.demo [--fresh] [--quick] [--seeds 0 1 2]``; exit 1 names the stage
    that failed."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    if checkout_root() is None:  # its stages run the repository's scripts with its recipes
        raise UserError("the demo runs the repository's scripts and LLaMA-Factory recipes: run it from a checkout "
                        "of the repository (make demo), not from an installed package alone")
    common = dict(seed=args.seed, data_seed=args.data_seed, preset=args.preset, jobs=args.jobs, threads=args.threads,
                  pretrain_threads=args.pretrain_threads)
    settings = pipeline.Settings(Path(args.output_dir), **common)
    if args.quick:
        settings = pipeline.Settings(Path(args.output_dir), scale="tiny", max_steps=2, router_max_steps=4,
                                     max_new_tokens=24, bootstrap=20, **common)
    if args.fresh and settings.out.exists():
        shutil.rmtree(settings.out)
    try:
        pipeline.run(settings, args.seeds)
    except pipeline.StageFailed as err:
        print(f"\nDEMO FAILED: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_cli(main, prog=PROG)
