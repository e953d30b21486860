"""Generate a ``--scale full`` mini-FLARE (~58k Q&A) and report records/s and peak memory.

    python benchmarks/bench_synth.py [--output_dir DIR] [--seed 0]   # figures -> benchmarks/results/bench_synth.json

Peak memory is the process's maximum resident set size (``ru_maxrss``). The generator streams: each dataset file is
written before the next is drawn, so memory is bounded by the largest file's records and images, not the dataset.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from mevlip.cli import add_common_args, add_option, make_parser, run_cli, setup_logging
from mevlip.synth import generate

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/results_file.py, however this is run
from results_file import write_result  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = make_parser(__doc__)
    add_option(parser, "--output_dir", aliases=("--out",), default=None,
               help="where to write (default: a temporary folder, removed after)")
    parser.add_argument("--scale", default="full", choices=["tiny", "small", "full"], help="mini-FLARE scale")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    add_common_args(parser, progress=True)
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print a JSON line of results."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    out = Path(args.output_dir) if args.output_dir else Path(tempfile.mkdtemp(prefix="mini_flare_full_"))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    summary = generate(out, args.scale, args.seed, progress=not args.no_progress)
    wall = time.perf_counter() - start
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    result = {
        "scale": args.scale, "records": summary["records"], "images": summary["images"], "wall_s": round(wall, 1),
        "records_per_s": round(summary["records"] / wall), "images_per_s": round(summary["images"] / wall),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_mib": round(rss_before), "disk_mib": round(size / 2**20),
    }
    print(json.dumps(result))
    write_result("bench_synth", result, argv)
    if not args.output_dir:
        shutil.rmtree(out)
    return result


if __name__ == "__main__":
    run_cli(main)
