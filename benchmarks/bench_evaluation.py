"""Benchmark evaluation on a full-size mini-FLARE: our vectorised evaluator against a naive loop, same run.

    python benchmarks/bench_evaluation.py [--base_dataset_path /tmp/mevlip_bench_full] [--bootstrap 200] \\
        [--noise 0.25]
    #   figures -> benchmarks/results/bench_evaluation.json

Generates (or reuses) ``python -m mevlip.synth --scale full`` (~62.8k records over all four splits), writes
GT-as-predictions with noise (wrong answers from other records, garbage, perturbed numbers, wrapped letters,
1% missing, duplicates, unknown keys, shuffled order), then times, each in a fresh process (so peak memory is
its own):

* fast: :func:`mevlip.metrics.evaluate.evaluate` + all output files, both profiles, per task and per dataset,
  bootstrap CIs (GREEN-LLM off);
* naive: the organisers' style - a dict of predictions, a Python loop over ground-truth records that re-parses
  every answer for each profile with no caches, sklearn / Python aggregates, and a bootstrap that re-runs the
  aggregate on each resampled list.

Prints wall time (metric work only, and whole process), peak RSS, the ratio, and the largest difference between
the two evaluators' primary metrics (they must agree). Targets: fast under 15 s and 1 GiB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/results_file.py, however this is run
from results_file import write_result  # noqa: E402

from mevlip.cli import add_common_args, add_option, make_parser, run_cli, setup_logging  # noqa: E402

ALL_SPLITS = ("training", "validation-public", "validation-hidden", "testing")


def ensure_dataset(path: Path) -> None:
    """Generate a full-scale mini-FLARE at ``path`` unless one is there."""
    marker = path / "mini_flare.json"
    if marker.is_file() and json.loads(marker.read_text()).get("scale") == "full":
        return
    from mevlip.synth import generate

    start = time.perf_counter()
    summary = generate(path, scale="full", seed=0, progress=True)
    print(f"generated {summary['records']} records in {time.perf_counter() - start:.0f} s")


def make_predictions(root: Path, out: Path, noise: float, seed: int = 0) -> int:
    """GT-as-predictions with noise; returns the number of prediction records."""
    from mevlip.flare import discover, load_records
    from mevlip.tasks import normalize_task_type

    rng = random.Random(seed)
    records = [r for f in discover(root, ALL_SPLITS, gt="prefer") for r in load_records(f).records]
    by_task: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_task.setdefault(normalize_task_type(r["TaskType"]), []).append(i)
    preds = []
    for record in records:
        if rng.random() < 0.01:
            continue  # missing
        pred = dict(record)
        if rng.random() < noise:
            task = normalize_task_type(record["TaskType"])
            kind = rng.random()
            if kind < 0.5:
                pred["Answer"] = records[rng.choice(by_task[task])]["Answer"]
            elif kind < 0.65:
                pred["Answer"] = rng.choice(["I cannot determine this.", "", None, 42, [1, 2], "9" * 50, "1e300"])
            elif task in ("counting", "regression"):
                pred["Answer"] = f"About {float(record['Answer']) * rng.uniform(0.5, 1.5):.1f}"
            elif task == "classification":
                pred["Answer"] = f"Answer: {record['Answer']}."
        preds.append(pred)
        if rng.random() < 0.005:
            preds.append(dict(pred))  # duplicate
    preds += [{**preds[k], "Question": f"unknown question {k}"} for k in range(20)]
    rng.shuffle(preds)
    out.write_text(json.dumps(preds), encoding="utf-8")
    return len(preds)


# ----------------------------------------------------------------------------------------------- naive baseline
def naive_evaluate(root: str, pred_file: str, bootstrap: int, seed: int) -> dict:
    """A straightforward evaluator: per-record loop, no caches, aggregates recomputed per bootstrap resample."""
    import numpy as np
    from sklearn.metrics import balanced_accuracy_score

    from mevlip.flare import discover, record_key
    from mevlip.metrics import green_rule, profiles
    from mevlip.metrics.matching import prf
    from mevlip.metrics.scores import PRIMARY
    from mevlip.tasks import normalize_task_type

    # no memoisation anywhere: every answer is parsed and every pair scored from scratch
    green_rule._extract = green_rule._extract.__wrapped__
    for name in dir(profiles):
        if hasattr(getattr(profiles, name), "__wrapped__"):  # memoised parsers and scorers
            setattr(profiles, name, getattr(profiles, name).__wrapped__)

    def metric(task, values, profile):
        values = [v for v in values if v["scored"]] if task != "detection" else values
        if task == "classification":
            if not values:
                return float("nan")
            return balanced_accuracy_score([str(v["target"]) for v in values], [str(v["parsed"]) for v in values])
        if task == "multi_label_classification":
            return float(np.mean([v["f1"] for v in values])) if values else float("nan")
        if task == "detection":
            return prf(sum(v["tp"] for v in values), sum(v["fp"] for v in values), sum(v["fn"] for v in values))[2]
        if task == "instance_detection":
            return prf(*(sum(v["counts"][2][c] for v in values) for c in range(3)))[2]
        if task in ("counting", "regression"):
            errors = [v["abs_error"] for v in values]
            return float(np.mean(errors)) if errors else (float("inf") if profile == "flare25" else float("nan"))
        return float(np.mean([v["green_flare25_rule"] for v in values])) if values else float("nan")

    gt = []
    for qfile in discover(root, ALL_SPLITS, gt="prefer"):
        with open(qfile.path, encoding="utf-8") as fh:
            gt += [(qfile.dataset, r) for r in json.load(fh)]
    with open(pred_file, encoding="utf-8") as fh:
        lookup = {record_key(p): p.get("Answer") for p in json.load(fh) if isinstance(p, dict)}
    rng = np.random.default_rng(seed)
    results: dict = {}
    for profile in profiles.PROFILES:
        per_task: dict[str, list] = {}
        for dataset, record in gt:
            if record["Answer"] in (None, ""):
                continue
            task = normalize_task_type(record["TaskType"])
            value = profiles.score_sample(profile, task, lookup.get(record_key(record)), record["Answer"])
            per_task.setdefault(task, []).append((dataset, value))
        for task, items in per_task.items():
            slices = {"all": items}
            for dataset, value in items:
                slices.setdefault(dataset, []).append((dataset, value))
            for name, rows in slices.items():
                values = [v for _, v in rows]
                point = metric(task, values, profile)
                boots = [metric(task, [values[i] for i in rng.integers(0, len(values), len(values))], profile)
                         for _ in range(bootstrap)]
                results[f"{profile}/{task}/{name}"] = {PRIMARY[task]: point, "ci": np.nanpercentile(boots, [2.5, 97.5])
                                                       .tolist() if boots else None}
    return results


# ----------------------------------------------------------------------------------------------- children
def child(mode: str, root: str, pred_file: str, bootstrap: int, out_dir: str) -> None:
    """Run one evaluator in this process and print one JSON line with its timings and primary metrics."""
    process_start = time.perf_counter()
    if mode == "fast":
        from mevlip.metrics.evaluate import EvalConfig, evaluate
        from mevlip.metrics.report import provenance, write_outputs

        start = time.perf_counter()
        config = EvalConfig(root, pred_file, splits=ALL_SPLITS, bootstrap=bootstrap)
        results, rows = evaluate(config, provenance())
        write_outputs(results, rows, out_dir, "metrics_bench.json")
        primary = {f"{p}/{t}/all": v["metrics"][v["primary_metric"]] for p, prof in results["profiles"].items()
                   for t, v in prof["tasks"].items()}
        primary.update({f"{p}/{t}/{d}": dv["metrics"][v["primary_metric"]] for p, prof in results["profiles"].items()
                        for t, v in prof["tasks"].items() for d, dv in v["datasets"].items()})
        n = results["matching"]["n_gt"]
    else:
        import numpy  # noqa: F401  (import cost outside the timed part, as for fast)
        import sklearn.metrics  # noqa: F401

        start = time.perf_counter()
        naive = naive_evaluate(root, pred_file, bootstrap, seed=0)
        primary = {k: next(iter(v.values())) for k, v in naive.items()}
        n = None
    work = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    print(json.dumps({"mode": mode, "work_s": work, "process_s": time.perf_counter() - process_start,
                      "peak_rss_mib": peak, "n_gt": n, "primary": primary}))


def run_child(mode: str, args, pred_file: Path, out_dir: str) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--base_dataset_path", str(args.base_dataset_path),
           "--bootstrap", str(args.bootstrap), "--pred", str(pred_file), "--out", out_dir]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:  # a failed measurement, not a user error: its stderr, exit code 1
        print(done.stderr[-3000:], file=sys.stderr)
        print(f"bench_evaluation.py: the {mode} run failed (exit code {done.returncode}; its stderr above)",
              file=sys.stderr)
        sys.exit(1)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - start
    return result


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = make_parser(__doc__)
    add_option(parser, "--base_dataset_path", aliases=("--data",), type=Path,
               default=Path(tempfile.gettempdir()) / "mevlip_bench_full",
               help="full-scale mini-FLARE root (generated if absent)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates in both evaluators")
    parser.add_argument("--noise", type=float, default=0.25, help="share of corrupted predictions")
    add_option(parser, "--skip_naive", aliases=("--skip-naive",), action="store_true",
               help="time only the fast path")
    parser.add_argument("--child", choices=("fast", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--pred", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Generate data, build noisy predictions, time both evaluators in fresh processes, print the comparison."""
    args = build_parser().parse_args(argv)
    if args.child:  # logging left as it was, so the timed work is what it always was
        child(args.child, str(args.base_dataset_path), args.pred, args.bootstrap, args.out)
        return
    setup_logging(args.log_level)
    ensure_dataset(args.base_dataset_path)
    pred_file = args.base_dataset_path.parent / f"{args.base_dataset_path.name}_predictions.json"
    start = time.perf_counter()
    n_pred = make_predictions(args.base_dataset_path, pred_file, args.noise)
    print(f"{n_pred} prediction records written in {time.perf_counter() - start:.1f} s -> {pred_file}")
    with tempfile.TemporaryDirectory() as out_dir:
        fast = run_child("fast", args, pred_file, out_dir)
        print(f"fast : {fast['n_gt']} records, metric work {fast['work_s']:.2f} s, process {fast['wall_s']:.2f} s, "
              f"peak RSS {fast['peak_rss_mib']:.0f} MiB (bootstrap {args.bootstrap})")
        figures = {"records": fast["n_gt"], "fast": fast}
        if args.skip_naive:
            write_result("bench_evaluation", figures, argv)
            return
        naive = run_child("naive", args, pred_file, out_dir)
    print(f"naive: metric work {naive['work_s']:.2f} s, process {naive['wall_s']:.2f} s, "
          f"peak RSS {naive['peak_rss_mib']:.0f} MiB")
    print(f"speed-up (metric work): {naive['work_s'] / fast['work_s']:.1f}x; "
          f"(whole process): {naive['wall_s'] / fast['wall_s']:.1f}x")
    diffs = []
    for key, value in naive["primary"].items():
        ours = fast["primary"].get(key)
        if isinstance(ours, str):
            ours = float(ours.replace("Infinity", "inf"))
        if value is None or ours is None or value != value:
            continue
        diffs.append(0.0 if value == ours else abs(value - ours))
    print(f"primary metrics compared: {len(diffs)}; largest |fast - naive| = {max(diffs) if diffs else 'n/a'}")
    figures.update(naive=naive, speedup_work=naive["work_s"] / fast["work_s"],
                   speedup_process=naive["wall_s"] / fast["wall_s"], metrics_compared=len(diffs),
                   max_abs_diff=max(diffs) if diffs else None)
    write_result("bench_evaluation", figures, argv)


if __name__ == "__main__":
    run_cli(main)
