"""Mutation testing of the core modules with mutmut: run it group by group and record the score per module.

    python benchmarks/mutation.py                  # every group (hours on 2 cores) -> benchmarks/results/mutation.json
                                                   # (stopped, it goes on with the mutants not checked yet)
    python benchmarks/mutation.py --group answers  # one group (repeatable); the other groups' figures are kept
    python benchmarks/mutation.py --survivors      # rerun only the mutants that ran and were not killed
    python benchmarks/mutation.py --sample 0.2 --max_children 2   # a random fifth of what never ran, two at a time
    python benchmarks/mutation.py --report         # rebuild the JSON from mutmut's state, run nothing

``make mutation`` runs the first line. mutmut (configured in ``pyproject.toml`` ``[tool.mutmut]``: the files, the
unit-level test selection, what the tests read) copies ``mevlip/`` into ``mutants/``, mutates every function of the
files named there and, per mutant, runs only the selected tests that reached that function. This script runs ``mutmut
run`` (one mutant at a time unless ``--max_children``) once per group below, on the functions of :data:`GROUPS` (a
module's logic; the functions it leaves out are named with the reason), under ``nice`` with one thread per process;
then it runs the mutants that timed out once more, alone (a timeout counts as killed, and mutants that pass in
seconds were seen hanging in long runs), and counts each module's results: score = (killed + timeout) / mutants run,
mutmut's own definition (a mutant no selected test reaches counts as run and not killed). Survivors that are
equivalent to the original are listed with their reasons in ``docs/mutation.md``. A change to the tests makes mutmut
forget the results of the functions they reach (it reruns them next time), so a long run is best left alone until it
ends.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/results_file.py, however this is run
from results_file import RESULTS_DIR, write_result  # noqa: E402

from mevlip.cli import UserError, add_common_args, make_parser, run_cli, setup_logging  # noqa: E402

#: group -> {module file: {function left out: why}}; every other function and method of the file is mutated.
#: A method is named ``Class.method``; a class name leaves out all its methods.
GROUPS: dict[str, dict[str, dict[str, str]]] = {
    "answers": {"mevlip/answers.py": {}, "mevlip/tasks.py": {}},
    "prompts": {"mevlip/prompts.py": {}},
    "flare": {"mevlip/flare.py": {"add_zip_limit_args": "argparse options and their help text"}},
    "baselines": {"mevlip/baselines.py": {"build_parser": "argparse options and their help text"}},
    "metrics": {
        "mevlip/metrics/flare25_parsing.py": {},
        "mevlip/metrics/matching.py": {},
        "mevlip/metrics/profiles.py": {
            "_memo": "runs once, when the module is imported (it wraps the parsers at module level): mutmut's test "
                     "processes are forked after that import, so no mutant of it can ever run"},
        "mevlip/metrics/records.py": {},
        "mevlip/metrics/scores.py": {},
        "mevlip/metrics/text_metrics.py": {},
        "mevlip/metrics/green_rule.py": {},
        "mevlip/metrics/green_llm.py": {
            "GreenJudge": "loads and runs a causal LM (its test spends 10 s building a model per mutant); the "
                          "prompt it sends and the parsing of its answers are mutated"},
        "mevlip/metrics/evaluate.py": {},
        "mevlip/metrics/report.py": {"bar_chart": "a matplotlib figure of figures computed elsewhere",
                                     "markdown": "Markdown rendering of metrics.json, which is mutated"},
    },
    "prepare": {
        "mevlip/prepare/core.py": {},
        "mevlip/prepare/io.py": {},
        "mevlip/prepare/images.py": {
            "_exit_with_parent": "a watchdog thread inside pool worker processes; its test kills real processes "
                                 "(a subprocess: the mutant is not imported there)"},
        "mevlip/prepare/stats.py": {"format_summary": "console summary text of the figures to_dict computes"},
    },
    "inference": {
        "mevlip/inference/run.py": {
            "plan": "input discovery (FLARE access, mutated in flare.py)",
            "_extract_images": "input discovery (FLARE access, mutated in flare.py)",
            "_resolve": "input discovery (FLARE access, mutated in flare.py)",
            "init_ranks": "torch.distributed set-up (tests/test_torchrun_inference.py runs it in subprocesses)",
            "barrier": "torch.distributed", "gather": "torch.distributed", "close_ranks": "torch.distributed",
        },
        "mevlip/inference/journal.py": {},
    },
    "demo": {
        "mevlip/demo/report.py": {
            "write_report": "assembles results.md/results.json from the verdict functions, which are mutated",
            "seeds_markdown": "Markdown rendering of seeds.json (seeds_document, mutated)",
            "loss_plot": "a matplotlib figure", "metric_plot": "a matplotlib figure",
            "machine": "names the CPU", "routing_accuracy": "router figures, not verdicts",
            "routing_by_scoring": "router figures, not verdicts",
            "write_seeds_summary": "file writing around seeds_document", "merge_seeds": "file reading around "
            "seeds_document", "build_parser": "argparse options", "main": "command-line glue",
            "_load": "reads a JSON file"},
    },
    "router": {
        "mevlip/router/routing.py": {
            "read_router_config": "router folder files, not scoring", "check_config_file": "router folder files "
            "(refusing code-running configs: tests/test_router_security.py)", "save_router": "router folder files",
            "Router.from_pretrained": "router folder files", "_label_tokenizer": "router folder files"},
    },
}

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 35: "suspicious",
          36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", -11: "segfault",
          -9: "segfault", None: "not checked"}
COUNTED = ("killed", "timeout", "survived", "no tests", "suspicious", "segfault", "skipped", "not checked")


def functions(path: Path) -> list[str]:
    """Top-level functions and ``Class.method`` names of a module, in source order."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.append(node.name)
        elif isinstance(node, ast.ClassDef):
            names += [f"{node.name}.{n.name}" for n in node.body if isinstance(n, (ast.FunctionDef,
                                                                                   ast.AsyncFunctionDef))]
    return names


def mangled(module_file: str, function: str) -> str:
    """mutmut's name prefix of a function's mutants: ``mevlip.flare.x_discover``, ``mevlip.flare.xǁZipLimitsǁcheck``."""
    module = module_file.removesuffix(".py").replace("/", ".")
    cls, _, name = function.rpartition(".")
    return f"{module}.x{'ǁ' + cls + 'ǁ' if cls else '_'}{name}"


def scope(module_file: str, left_out: dict[str, str]) -> list[str]:
    """The mutated functions of a module: all but ``left_out`` (a class name leaves out all its methods)."""
    return [f for f in functions(REPO / module_file) if f not in left_out and f.split(".")[0] not in left_out]


def globs(group: str) -> list[str]:
    """mutmut mutant-name globs of a group's functions."""
    return [f"{mangled(m, f)}__mutmut_*" for m, out in GROUPS[group].items() for f in scope(m, out)]


def exit_codes(module_file: str) -> dict[str, int | None]:
    """mutmut's last result per mutant of a module (``mutants/<file>.meta``)."""
    meta = REPO / "mutants" / f"{module_file}.meta"
    if not meta.is_file():
        return {}
    return json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]


def module_counts(module_file: str, left_out: dict[str, str]) -> dict:
    """Counts per status of the module's in-scope mutants, and the score."""
    patterns = [f"{mangled(module_file, f)}__mutmut_*" for f in scope(module_file, left_out)]
    counts = dict.fromkeys(COUNTED, 0)
    for key, code in exit_codes(module_file).items():
        if any(fnmatch.fnmatchcase(key, p) for p in patterns):
            counts[STATUS.get(code, "suspicious")] += 1
    run = sum(counts.values()) - counts["skipped"] - counts["not checked"]
    counts["mutants"] = sum(counts.values())
    counts["checked"] = run
    counts["score"] = round((counts["killed"] + counts["timeout"]) / run, 4) if run else None
    counts["left_out"] = left_out
    return counts


def group_mutants(group: str) -> dict[str, int | None]:
    """Every in-scope mutant of a group with mutmut's last exit code (None: not checked yet)."""
    found = {}
    for module_file, left_out in GROUPS[group].items():
        patterns = [f"{mangled(module_file, f)}__mutmut_*" for f in scope(module_file, left_out)]
        found.update({k: code for k, code in exit_codes(module_file).items()
                      if any(fnmatch.fnmatchcase(k, p) for p in patterns)})
    return found


def not_killed(group: str) -> list[str]:
    """The group's mutants that ran last time and were not killed: survived, timed out, reached by no test."""
    return [k for k, code in group_mutants(group).items() if code is not None and STATUS.get(code) != "killed"]


def sampled(group: str, fraction: float, seed: int) -> list[str]:
    """A random ``fraction`` (drawn per group from ``seed``) of the group's mutants that never ran."""
    unchecked = sorted(k for k, code in group_mutants(group).items() if code is None)
    return sorted(random.Random(f"{seed}:{group}").sample(unchecked, math.ceil(fraction * len(unchecked))))


def prepare_copy() -> None:
    """mutmut copies ``also_copy`` files into ``mutants/`` without creating their folders: create them."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]
    for entry in config.get("also_copy", []):
        if (REPO / entry).is_file():
            (REPO / "mutants" / entry).parent.mkdir(parents=True, exist_ok=True)


def to_run(group: str, survivors_only: bool = False, sample: float = 1.0, seed: int = 0) -> list[str]:
    """What ``mutmut run`` gets for a group: its mutants not checked yet (all of its functions as globs the first
    time, before mutmut has made the mutants), so an interrupted full run goes on where it stopped; its mutants not
    killed (``survivors_only``); or those and a random ``sample`` of the mutants not checked yet if below 1."""
    if survivors_only:
        return not_killed(group)
    if sample < 1:
        return not_killed(group) + sampled(group, sample, seed)
    known = group_mutants(group)
    return sorted(k for k, code in known.items() if code is None) if known else globs(group)


def run_group(group: str, survivors_only: bool, max_children: int = 1, sample: float = 1.0, seed: int = 0) -> dict:
    """``mutmut run`` on :func:`to_run`'s mutants of one group; returns the run's kind, mutants submitted and wall
    seconds."""
    names = to_run(group, survivors_only, sample, seed)
    if not names:
        return {"kind": "survivors" if survivors_only else "nothing left to run", "names": 0, "seconds": 0.0}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    mutmut = Path(sys.executable).with_name("mutmut")
    start = time.perf_counter()

    def mutmut_run(chosen: list[str], children: int) -> None:
        what = "function globs" if chosen[0].endswith("*") else "mutants"
        print(f"[{group}] mutmut run --max-children {children} on {len(chosen)} {what}", flush=True)
        cmd = ["nice", "-n", "10", str(mutmut), "run", "--max-children", str(children), *chosen]
        done = subprocess.run(cmd, cwd=REPO, env=env)
        if done.returncode != 0:
            raise SystemExit(f"mutation: mutmut run failed for group {group} (exit {done.returncode}); see its output")

    mutmut_run(names, max_children)
    # A timeout counts as killed, so each is run again, alone: in a long run, mutants that finish in seconds on
    # their own were seen hanging until the timeout (40 of 913 in one group); only a second timeout stands.
    timeouts = [k for k, code in group_mutants(group).items() if STATUS.get(code) == "timeout"]
    if timeouts:
        mutmut_run(timeouts, 1)
    after = [k for k, code in group_mutants(group).items() if STATUS.get(code) == "timeout"]
    kind = ("survivors" if survivors_only else "full") + (f", sample {sample} seed {seed}" if sample < 1 else "")
    return {"kind": kind, "names": len(names), "seconds": round(time.perf_counter() - start, 1),
            "timeouts_rerun": len(timeouts), "timeouts_confirmed": len(after),
            "date": time.strftime("%Y-%m-%d %H:%M", time.localtime())}


def machine() -> str:
    """The CPU model and core count."""
    from mevlip.demo.report import machine as describe

    return describe()


def report(previous: dict, runs: dict[str, dict]) -> dict:
    """The figures per group and module from mutmut's state, the runs of this call added to the earlier ones."""
    groups = {}
    for group, modules in GROUPS.items():
        per_module = {m: module_counts(m, out) for m, out in modules.items()}
        totals = {k: sum(c[k] for c in per_module.values()) for k in (*COUNTED, "mutants", "checked")}
        ran = totals["mutants"] - totals["skipped"] - totals["not checked"]
        totals["score"] = round((totals["killed"] + totals["timeout"]) / ran, 4) if ran else None
        history = (previous.get("groups", {}).get(group, {}).get("runs") or []) + (
            [runs[group]] if group in runs else [])
        groups[group] = {**totals, "modules": per_module, "runs": history}
    overall = {k: sum(g[k] for g in groups.values()) for k in (*COUNTED, "mutants", "checked")}
    ran = overall["mutants"] - overall["skipped"] - overall["not checked"]
    overall["score"] = round((overall["killed"] + overall["timeout"]) / ran, 4) if ran else None
    return {"tool": f"mutmut {_mutmut_version()}", "machine": machine(), "overall": overall, "groups": groups}


def _mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = make_parser(__doc__)
    parser.add_argument("--group", action="append", choices=list(GROUPS),
                        help="run only this group (repeatable; default: all)")
    parser.add_argument("--survivors", action="store_true",
                        help="rerun only the mutants that ran and were not killed (after writing tests for them)")
    parser.add_argument("--report", action="store_true", help="run nothing; rebuild the JSON from mutmut's state")
    parser.add_argument("--sample", type=float, default=1.0,
                        help="run a random share of the mutants not checked yet, and those not killed last "
                             "time (0-1; the score then covers the mutants run)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample's draw (per group)")
    parser.add_argument("--max_children", type=int, default=1,
                        help="mutants tested at once (each a forked pytest, one torch thread)")
    parser.add_argument("--output_file", default=str(RESULTS_DIR / "mutation.json"),
                        help="the result file (its earlier figures are kept for the groups not run)")
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Run the groups asked for and write ``benchmarks/results/mutation.json``."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    if not 0 < args.sample <= 1:
        raise UserError(f"--sample {args.sample}: a share of the mutants, above 0 and at most 1")
    target = Path(args.output_file)
    try:  # before hours of mutation runs, not after
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{target}: cannot write the result file here ({err.strerror})") from None
    previous = json.loads(target.read_text(encoding="utf-8")) if target.is_file() else {}
    runs = {}
    if not args.report:
        (REPO / "mutants").mkdir(exist_ok=True)
        prepare_copy()
        for group in args.group or list(GROUPS):
            runs[group] = run_group(group, args.survivors, args.max_children, args.sample, args.seed)
    figures = report(previous, runs)
    for group, g in figures["groups"].items():
        print(f"{group:10s} {g['killed'] + g['timeout']:5d} killed of {g['mutants'] - g['not checked']:5d} run "
              f"(of {g['mutants']}; {g['survived']} survived, {g['no tests']} reached by no test)  score {g['score']}")
    print(f"overall    score {figures['overall']['score']}")
    write_result("mutation", figures, argv, path=target)
    return figures


if __name__ == "__main__":
    run_cli(main)
