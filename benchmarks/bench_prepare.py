"""Benchmark data preparation on a full-scale mini-FLARE: our path against a naive baseline, same run.

    python benchmarks/bench_prepare.py [--base_dataset_path DIR] [--workers 2]
    #   figures -> benchmarks/results/bench_prepare.json

* data: ``--base_dataset_path DIR`` is reused; otherwise ``python -m mevlip.synth --scale full`` is written to
  ``benchmarks/results/mini_flare_full`` once (about 60k Q&A pairs, 53k images; a minute or two).
* extract: the image zips are extracted once first (timed on its own: a one-off cost).
* fast: ``mevlip.prepare.prepare`` as the CLI runs it: per question file (= per image zip) one pass over its
  unique images, checked in a process pool of ``--workers`` while the main process reads the next file.
* serial: the same with ``--workers 1`` (one pass over the unique images, in the main process).
* naive: the baseline checker: every image reference (rows share images) opened again, serially.
* check-fast / check-naive: the image-check stage alone (the part the pool speeds up), over every image reference
  of the same files: the pool over unique paths against one serial open per reference.

Each run is a fresh child process, so its peak memory is its own: ``ru_maxrss`` of RUSAGE_SELF (the main
process) and RUSAGE_CHILDREN (the largest worker). Both runs must write byte-identical files.
Both runs prepare training + validation-public + validation-hidden (the ~58k Q&A pairs that have answers).
Target: all of it in under 3 minutes on 2 cores, peak memory under 1.5 GiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/results_file.py, however this is run
from results_file import write_result  # noqa: E402

from mevlip.cli import UserError, add_common_args, add_option, make_parser, run_cli, setup_logging  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SPLITS = ("training",)
VAL_SPLITS = ("validation-public", "validation-hidden")  # with training: every Q&A pair with an answer (~58k)
MODES = ("fast", "serial", "naive")
CHECK_MODES = ("check-fast", "check-naive")
TARGET_SECONDS = 180
TARGET_BYTES = 1.5 * 2**30


def _child(mode: str, data: str, out: str, workers: int) -> None:
    """Run one preparation in this process and print its figures as JSON on the last line."""
    import logging

    from mevlip.flare import discover
    from mevlip.prepare import PrepareConfig, prepare
    from mevlip.prepare.images import ImageChecker, NaiveImageChecker, extract_images

    logging.basicConfig(level=logging.WARNING)
    if mode in CHECK_MODES:
        references = _references(data)
    cpu_before = _cpu()
    start = time.perf_counter()
    if mode in CHECK_MODES:
        checker = ImageChecker(workers) if mode == "check-fast" else NaiveImageChecker()
        with checker:
            verdicts = checker.check(references)
        figures = {"references": len(references), "images": len(verdicts)}
    elif mode == "extract":
        with ImageChecker(workers) as checker:
            results = extract_images(discover(data, SPLITS + VAL_SPLITS), checker.pool())
        figures = {"files_extracted": sum(n for _, n, _ in results)}
    else:
        config = PrepareConfig(data, out, SPLITS, VAL_SPLITS, workers=workers if mode == "fast" else 1)
        stats = prepare(config, checker=NaiveImageChecker() if mode == "naive" else None)
        parts = stats["parts"].values()
        figures = {"records": sum(p["records"]["read"] for p in parts), "rows": sum(p["rows"]["total"] for p in parts),
                   "images": sum(p["images"]["checked"] for p in parts)}
    figures["seconds"] = time.perf_counter() - start
    figures["cpu_seconds"] = _cpu() - cpu_before  # main process and its (finished) workers, in the timed part
    # ru_maxrss is in KiB on Linux
    figures["maxrss_self"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    figures["maxrss_children"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps(figures))


def _cpu() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def _references(data: str) -> list[str]:
    """Every image reference (path per record image, shared images repeated) of the benchmark's files."""
    from mevlip.flare import discover, image_names, load_records
    from mevlip.prepare.images import FolderIndex

    references = []
    for qfile in discover(data, SPLITS + VAL_SPLITS, gt="prefer"):
        index = FolderIndex(qfile.dataset_dir)
        for record in load_records(qfile, require_answer=True).records:
            references += [found[0] for n in image_names(record) if (found := index.find(n)) is not None]
    return references


def _spawn(mode: str, data: Path, out: Path, workers: int) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--base_dataset_path", str(data), "--output_dir", str(out),
           "--workers", str(workers)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:  # a failed measurement, not a user error: its stderr, exit code 1
        print(done.stderr[-3000:], file=sys.stderr)
        print(f"bench_prepare.py: the {mode} run failed (exit code {done.returncode}; its stderr above)",
              file=sys.stderr)
        sys.exit(1)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = make_parser(__doc__.split("\n")[0])
    add_option(parser, "--base_dataset_path", aliases=("--data",), type=Path, default=None,
               help="existing mini-FLARE (or FLARE) root to reuse (default: benchmarks/results/mini_flare_<scale>, "
                    "generated once)")
    parser.add_argument("--scale", default="full", choices=["tiny", "small", "full"],
                        help="mini-FLARE scale to generate when --base_dataset_path is not given")
    parser.add_argument("--workers", type=int, default=2, help="processes of the fast path")
    add_option(parser, "--output_dir", aliases=("--out",), type=Path, default=RESULTS / "bench_prepare",
               help="output folder")
    parser.add_argument("--child", choices=["extract", *MODES, *CHECK_MODES], help=argparse.SUPPRESS)
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print the figures; returns them."""
    args = build_parser().parse_args(argv)
    if args.child:
        _child(args.child, str(args.base_dataset_path), str(args.output_dir), args.workers)
        return {}
    setup_logging(args.log_level)

    if args.base_dataset_path is not None and not args.base_dataset_path.is_dir():
        raise UserError(f"--base_dataset_path {args.base_dataset_path}: no such folder")
    data = args.base_dataset_path or RESULTS / f"mini_flare_{args.scale}"
    if args.base_dataset_path is None and not (data / "mini_flare.json").is_file():
        print(f"generating mini-FLARE ({args.scale}) in {data} ...", flush=True)
        subprocess.run([sys.executable, "-m", "mevlip.synth", "--output_dir", str(data), "--scale", args.scale,
                        "--no_progress"], check=True, stdout=subprocess.DEVNULL)
    figures = {"extract": _spawn("extract", data, args.output_dir, args.workers)}
    for mode in MODES + CHECK_MODES:
        figures[mode] = _spawn(mode, data, args.output_dir / mode, args.workers)
    reference = _tree(args.output_dir / "fast")
    identical = all(_tree(args.output_dir / mode) == reference for mode in MODES[1:])

    fast, naive = figures["fast"], figures["naive"]
    print(f"data: {data}  ({', '.join(SPLITS + VAL_SPLITS)}: {fast['records']} records -> {fast['rows']} rows, "
          f"{fast['images']} unique images)")
    print(f"extract (one-off, {args.workers} workers): {figures['extract']['seconds']:.1f} s, "
          f"{figures['extract']['files_extracted']} files written")
    print("| run | seconds | records/s | CPU s (main + workers) | peak RSS main | peak RSS largest worker |")
    print("|---|---|---|---|---|---|")
    for mode in MODES:
        f = figures[mode]
        print(f"| {mode} | {f['seconds']:.1f} | {f['records'] / f['seconds']:.0f} | {f['cpu_seconds']:.1f} | "
              f"{f['maxrss_self'] / 2**20:.0f} MiB | {f['maxrss_children'] / 2**20:.0f} MiB |")
    print(f"speed-up vs naive: fast {naive['seconds'] / fast['seconds']:.2f}x, serial "
          f"{naive['seconds'] / figures['serial']['seconds']:.2f}x; outputs identical: {identical}")
    check_fast, check_naive = figures["check-fast"], figures["check-naive"]
    print(f"image checks alone: pool of {args.workers} over {check_fast['images']} unique images "
          f"{check_fast['seconds']:.1f} s ({check_fast['cpu_seconds']:.1f} CPU s), naive serial over "
          f"{check_naive['references']} references {check_naive['seconds']:.1f} s ({check_naive['cpu_seconds']:.1f} "
          f"CPU s): {check_naive['seconds'] / check_fast['seconds']:.2f}x wall")
    print("(wall-clock ratios need idle cores: on a shared machine compare the CPU seconds)")
    total_peak = fast["maxrss_self"] + args.workers * fast["maxrss_children"]
    total_seconds = figures["extract"]["seconds"] + fast["seconds"]
    print(f"target: extract + prepare {total_seconds:.1f} s < {TARGET_SECONDS} s: {total_seconds < TARGET_SECONDS}; "
          f"main + {args.workers} workers {total_peak / 2**20:.0f} MiB < 1.5 GiB: {total_peak < TARGET_BYTES}")
    figures["identical"] = identical
    figures["summary"] = {  # the figures the READMEs quote
        "records": fast["records"], "rows": fast["rows"], "extract_s": figures["extract"]["seconds"],
        "fast_s": fast["seconds"], "fast_peak_rss_main_mib": fast["maxrss_self"] / 2**20,
        "speedup_vs_naive": naive["seconds"] / fast["seconds"], "identical": identical}
    write_result("bench_prepare", figures, argv)
    return figures


if __name__ == "__main__":
    run_cli(main)
