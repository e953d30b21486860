"""Put each of a list of plausible one-line bugs into a copy of the code, one at a time, and run the tests named for
it: every bug must make at least one test fail (the seven bugs planted by hand that no test once caught).

    python benchmarks/seeded_bugs.py                 # all bugs -> benchmarks/results/seeded_bugs.json
    python benchmarks/seeded_bugs.py --bug count_gt10 --bug prompt_whitespace

The copy is the working tree (without .git, .venv, demo_output, mutants, original_dataset) in a temporary folder;
the checkout itself is never edited. Each bug is an exact text replacement that must occur once in its file (so a
refactor that moves the line fails loudly here instead of testing nothing). Exit code 1 if a bug goes uncaught.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/results_file.py, however this is run
from results_file import RESULTS_DIR, write_result  # noqa: E402

from mevlip.cli import UserError, add_common_args, make_parser, run_cli, setup_logging  # noqa: E402


@dataclass(frozen=True)
class Bug:
    """One seeded bug: in ``file``, ``old`` (found exactly once) becomes ``new``; ``tests`` are run against it."""

    what: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


BUGS = {
    "routed_task_parses": Bug(
        "inference post-processes by the routed task instead of the record's TaskType",
        "mevlip/inference/run.py", "    task = item.task or route.task\n", "    task = route.task or item.task\n",
        ("tests/test_inference_postprocessing.py", "tests/test_mutation_kills_inference.py")),
    "no_canonicalisation": Bug(
        "inference skips answer canonicalisation altogether",
        "mevlip/inference/run.py", "canonicalize(task, raw, label_sep=label_separator(raw)))", "raw)",
        ("tests/test_inference_postprocessing.py", "tests/test_mutation_kills_inference.py")),
    "every_task_beats": Bug(
        "the demo report counts every task as beating the baseline",
        "mevlip/demo/report.py", "return f\"{'beats' if better else 'below'}",
        "return f\"{'beats' if True else 'below'}",
        ("tests/test_demo_report.py", "tests/test_mutation_kills_demo.py")),
    "green_temporal_weight": Bug(
        "GREEN rule: temporal association weight 0.8 -> 0.7",
        "mevlip/metrics/green_rule.py", "association = 0.8 if", "association = 0.7 if",
        ("tests/test_metrics_green.py", "tests/test_mutation_kills_metrics.py")),
    "green_location_recall": Bug(
        "GREEN rule: location score Jaccard -> recall",
        "mevlip/metrics/green_rule.py", "return len(ref & gen) / len(ref | gen)", "return len(ref & gen) / len(ref)",
        ("tests/test_metrics_green.py", "tests/test_mutation_kills_metrics.py")),
    "count_gt10": Bug(
        "count parser: `> 10` -> `>= 10`",
        "mevlip/metrics/flare25_parsing.py", "int(m) > 10 or", "int(m) >= 10 or",
        ("tests/test_metrics_flare25_parsing.py", "tests/test_mutation_kills_metrics.py")),
    "baseline_first_value": Bug(
        "the regression/counting constant baseline is the first training value, not the mean",
        "mevlip/baselines.py", "mean = float(np.mean(numbers)) if numbers else 0.0",
        "mean = float(numbers[0]) if numbers else 0.0",
        ("tests/test_baselines.py", "tests/test_mutation_kills_baselines.py")),
    "prompt_whitespace": Bug(
        "the prompt renderer collapses whitespace in the question",
        "mevlip/prompts.py", "separator + question\n", "separator + ' '.join(question.split())\n",
        ("tests/test_prepare.py", "tests/test_mutation_kills_prompts.py")),
}
SKIP = shutil.ignore_patterns(".git", ".venv", "demo_output", "mutants", "original_dataset", "__pycache__",
                              "*.egg-info")


def seed(copy: Path, bug: Bug) -> str:
    """Write the bug into the copy; returns the original text of the file (to restore it)."""
    path = copy / bug.file
    text = path.read_text(encoding="utf-8")
    if text.count(bug.old) != 1:
        raise UserError(f"{bug.file}: the text to change occurs {text.count(bug.old)} times, not once: {bug.old!r} "
                        "(the code moved: update BUGS in benchmarks/seeded_bugs.py)")
    path.write_text(text.replace(bug.old, bug.new), encoding="utf-8")
    return text


def run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[int, str]:
    """pytest on ``tests`` in the copy (stops at the first failure); its exit code and last line."""
    env = {**os.environ, "PYTHONPATH": str(copy), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests], cwd=copy,
                          env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, lines[-1] if lines else done.stderr.strip()[-300:]


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = make_parser(__doc__)
    parser.add_argument("--bug", action="append", choices=list(BUGS), help="only this bug (repeatable; default: all)")
    parser.add_argument("--output_file", default=str(RESULTS_DIR / "seeded_bugs.json"), help="the result file")
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Seed each bug, run its tests, print and write caught / NOT CAUGHT; exit 1 if any is not caught."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    target = Path(args.output_file)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{target}: cannot write the result file here ({err.strerror})") from None
    results = {}
    with tempfile.TemporaryDirectory(prefix="seeded_bugs_") as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(REPO, copy, ignore=SKIP)
        baseline = {t for name in args.bug or BUGS for t in BUGS[name].tests}
        code, last = run_tests(copy, tuple(sorted(baseline)))
        if code != 0:
            raise UserError(f"the tests fail without any bug ({last}); fix them first")
        for name in args.bug or list(BUGS):
            bug = BUGS[name]
            original = seed(copy, bug)
            start = time.perf_counter()
            try:
                code, last = run_tests(copy, bug.tests)
            finally:
                (copy / bug.file).write_text(original, encoding="utf-8")
            caught = code == 1  # tests ran and one failed (2-5: pytest could not run them)
            results[name] = {"what": bug.what, "file": bug.file, "tests": list(bug.tests), "caught": caught,
                             "pytest": last, "seconds": round(time.perf_counter() - start, 1)}
            print(f"{'caught    ' if caught else 'NOT CAUGHT'} {name}: {bug.what} ({last})", flush=True)
    caught = sum(r["caught"] for r in results.values())
    print(f"{caught} of {len(results)} seeded bugs caught")
    write_result("seeded_bugs", {"caught": caught, "bugs": len(results), "results": results}, argv, path=target)
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    run_cli(main)
