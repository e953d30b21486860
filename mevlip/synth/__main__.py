"""``python -m mevlip.synth --out DIR --scale {tiny,small,full} --seed N``: write a mini-FLARE dataset."""

from __future__ import annotations

import argparse
import logging
import time

from mevlip.synth import MARKER, format_summary, generate
from mevlip.synth.catalog import SCALES


def main(argv: list[str] | None = None) -> dict:
    """Generate mini-FLARE and print its summary."""
    parser = argparse.ArgumentParser(prog="python -m mevlip.synth", description=__doc__)
    parser.add_argument("--out", required=True, help="dataset root to write (FLARE layout)")
    parser.add_argument("--scale", default="tiny", choices=list(SCALES),
                        help="tiny: seconds, for tests; small: the demo; full: the real row counts (~58k Q&A)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (same seed, same bytes)")
    parser.add_argument("--datasets", nargs="*", default=None, help="only these dataset names")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    summary = generate(args.out, args.scale, args.seed, args.datasets, progress=not args.no_progress)
    print(format_summary(summary))
    print(f"\nwrote {args.out} in {time.perf_counter() - start:.1f} s (summary: {args.out}/{MARKER})")
    return summary


if __name__ == "__main__":
    main()
