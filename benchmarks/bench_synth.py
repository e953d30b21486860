"""Generate a ``--scale full`` mini-FLARE (~58k Q&A) and report records/s and peak memory.

    python benchmarks/bench_synth.py [--out DIR] [--seed 0]     # figures -> benchmarks/results/bench_synth.json

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

from mevlip.synth import generate

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/results_file.py, however this is run
from results_file import write_result  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print a JSON line of results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="where to write (default: a temporary folder, removed after)")
    parser.add_argument("--scale", default="full", choices=["tiny", "small", "full"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="mini_flare_full_"))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    summary = generate(out, args.scale, args.seed, progress=True)
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
    if not args.out:
        shutil.rmtree(out)
    return result


if __name__ == "__main__":
    main()
