"""``python -m mevlip.synth --output_dir DIR --scale {tiny,small,full} --seed N``: write a mini-FLARE dataset."""

from __future__ import annotations

import argparse
import time

from mevlip.cli import SEED, add_common_args, add_option, make_parser, run_cli, setup_logging
from mevlip.synth import MARKER, format_summary, generate
from mevlip.synth.catalog import DATASETS, SCALES

PROG = "python -m mevlip.synth"


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = make_parser(__doc__, prog=PROG)
    add_option(parser, "--output_dir", aliases=("--out",), required=True, help="dataset root to write (FLARE layout)")
    parser.add_argument("--scale", default="tiny", choices=list(SCALES),
                        help="tiny: seconds, for tests; small: the demo; full: the real row counts (~58k Q&A)")
    parser.add_argument("--seed", type=SEED, default=0, help="generator seed (same seed, same bytes)")
    parser.add_argument("--datasets", nargs="*", default=None, choices=[d.name for d in DATASETS], metavar="NAME",
                        help="only these datasets, by FLARE name (default: all 19)")
    add_common_args(parser, progress=True)
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Generate mini-FLARE and print its summary."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    start = time.perf_counter()
    summary = generate(args.output_dir, args.scale, args.seed, args.datasets, progress=not args.no_progress)
    print(format_summary(summary))
    print(f"\nwrote {args.output_dir} in {time.perf_counter() - start:.1f} s (summary: {args.output_dir}/{MARKER})")
    return summary


if __name__ == "__main__":
    run_cli(main, prog=PROG)
