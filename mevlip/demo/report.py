"""Write ``demo_output/results.md``: the paper-style table, format checks, router accuracy, timings and plots.

Everything in it is read from the demo's own artefacts (metrics JSON of each prediction mode, inference sidecars,
LLaMA-Factory's ``trainer_log.jsonl`` files, the router report), so each cell comes from a real run.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

from mevlip.answers import parse_answer
from mevlip.tasks import GENERAL_ADAPTER, TASK_NAMES, TASKS, normalize_task_type

REPO = Path(__file__).resolve().parents[2]
#: The seeds summary the README quotes (``python -m mevlip.demo --seeds 0 1 2``, copied here); ``results.md`` of a
#: one-seed run says where its figures fall in it.
REFERENCE = REPO / "benchmarks" / "results" / "demo_seeds.json"
MODE_TITLES = {"constant": "constant baseline", "untrained": "untrained stand-in", "base": "pre-trained, no adapter",
               "general": "general adapter", "router": "ME-VLIP (with TC)", "record": "oracle routing"}


def _load(path: Path):
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _fmt(value, higher: bool) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if math.isinf(value):
        return "inf"
    return f"{value:.3f}" if higher else f"{value:.2f}"


def format_validity(predictions: list[dict]) -> dict[str, tuple[float, int, int]]:
    """Per task: share of answers that parse in the task's format, and the number of distinct answers."""
    ok, total, distinct = Counter(), Counter(), defaultdict(set)
    for record in predictions:
        task = normalize_task_type(record["TaskType"])
        total[task] += 1
        ok[task] += parse_answer(task, record.get("Answer")) is not None
        distinct[task].add(str(record.get("Answer")))
    return {t: (ok[t] / total[t], len(distinct[t]), total[t]) for t in total}


def learning_verdict(model: dict | None, constant: dict | None, higher: bool) -> str:
    """How a trained model's primary metric compares with the constant baseline's (``primary_metrics`` rows).

    ``beats`` / ``below``: its point estimate is better / worse; ``clearly``: the constant's value lies outside the
    model's bootstrap 95 % interval (``evaluation.py --bootstrap``); otherwise ``within noise``.
    """
    if not model or not constant:
        return "n/a"
    value, base = _num(model.get("flare25")), _num(constant.get("flare25"))
    if value is None or base is None:
        return "n/a"
    if value == base:
        return "ties"
    better = value > base if higher else value < base
    lo, hi = (_num(x) for x in (model.get("flare25_ci95") or [None, None]))
    clear = lo is not None and hi is not None and not lo <= base <= hi
    return f"{'beats' if better else 'below'} ({'clearly' if clear else 'within noise'})"


def _num(value) -> float | None:
    if value in ("Infinity", "inf"):
        return float("inf")
    return float(value) if isinstance(value, (int, float)) else None


def routing_accuracy(out: Path) -> dict | None:
    """How the router routed the validation questions in the ME-VLIP run (vs each record's own TaskType)."""
    preds = _load(out / "predictions" / "router" / "predictions.json")
    sidecar = out / "predictions" / "router" / "predictions.details.jsonl"
    if preds is None or not sidecar.is_file():
        return None
    details = sorted((json.loads(line) for line in sidecar.read_text(encoding="utf-8").splitlines() if line.strip()),
                     key=lambda d: d["i"])
    # "task" is the task the answer was parsed as (the record's own); "routed_task" is the router's choice
    right = sum(d.get("routed_task", d["task"]) == normalize_task_type(p["TaskType"])
                for d, p in zip(details, preds, strict=True))
    fallback = sum(d.get("adapter") == GENERAL_ADAPTER for d in details)
    return {"n": len(details), "accuracy": right / max(1, len(details)), "general_fallbacks": fallback}


def routing_by_scoring(out: Path) -> dict[str, dict]:
    """The demo router on the validation questions under each scoring (softmax, the original's and the default;
    sigmoid, the option): accuracy against each record's TaskType and the share that falls back to general."""
    from mevlip.router import SCORINGS, Router

    preds = _load(out / "predictions" / "router" / "predictions.json")
    if not preds or not (out / "router").is_dir():
        return {}
    questions = [p["Question"] for p in preds]
    truth = [normalize_task_type(p["TaskType"]) for p in preds]
    result = {}
    for scoring in SCORINGS:
        router = Router.from_pretrained(out / "router", scoring=scoring)
        routes = router.route(questions)
        result[scoring] = {
            "n": len(routes), "threshold": router.threshold,
            "accuracy": sum(r.task == t for r, t in zip(routes, truth, strict=True)) / max(1, len(routes)),
            "fallback_rate": sum(r.adapter == GENERAL_ADAPTER for r in routes) / max(1, len(routes))}
    return result


def loss_plot(out: Path) -> Path | None:
    """One figure with the training-loss curves of the stand-in pre-training and every adapter."""
    runs = {"pre-training (full)": out / "standin" / "pretrained"}
    runs.update({name: out / "adapters" / name for name in (GENERAL_ADAPTER, *TASK_NAMES)})
    curves = {}
    for name, folder in runs.items():
        log = folder / "trainer_log.jsonl"
        if log.is_file():
            rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
            points = [(r["current_steps"], r["loss"]) for r in rows if r.get("loss") is not None]
            if points:
                curves[name] = points
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for name, points in curves.items():
        ax = axes[0] if name.startswith("pre-training") else axes[1]
        ax.plot([p[0] for p in points], [p[1] for p in points], label=name)
    for ax, title in zip(axes, ("stand-in pre-training (full fine-tune)", "QLoRA adapters"), strict=False):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "plots" / "loss_curves.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def metric_plot(out: Path, table: dict[str, dict[str, float | None]]) -> Path:
    """Grouped bars of the primary metric per task and prediction mode (MAE tasks on their own axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    modes = [m for m in MODE_TITLES if any(table[t].get(m) is not None for t in table)]
    fig, axes = plt.subplots(1, len(TASK_NAMES), figsize=(2.4 * len(TASK_NAMES), 3.6))
    for ax, task in zip(axes, TASK_NAMES, strict=False):
        values = [table.get(task, {}).get(m) for m in modes]
        values = [v if isinstance(v, (int, float)) and math.isfinite(v) else np.nan for v in values]
        ax.bar(range(len(modes)), values, color=plt.cm.tab10(np.arange(len(modes))))
        ax.set_title(f"{TASKS[task].title}\n{TASKS[task].metric}{'' if TASKS[task].higher_is_better else ' (lower)'}",
                     fontsize=8)
        ax.set_xticks(range(len(modes)), [MODE_TITLES[m] for m in modes], rotation=90, fontsize=7)
    fig.tight_layout()
    path = out / "plots" / "metrics.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_section(metrics: dict[str, dict | None], validity: dict[str, dict], mode: str = "router") -> list[str]:
    """Markdown lines: per task, the trained model (``mode``) against the constant baseline, and a summary."""
    if not metrics.get(mode) or not metrics.get("constant"):
        return []
    rows = ["## Did training learn? (ME-VLIP with TC against the constant baseline)", "",
            "| task | constant | ME-VLIP | its 95 % CI | verdict | answers in format |", "|---|---|---|---|---|---|"]
    verdicts = {}
    for task in TASK_NAMES:
        spec = TASKS[task]
        model, constant = (metrics[m]["primary_metrics"].get(task) for m in (mode, "constant"))
        if not model or not constant:
            continue
        verdicts[task] = learning_verdict(model, constant, spec.higher_is_better)
        ci = model.get("flare25_ci95") or [None, None]
        ci_text = "n/a" if None in ci else f"[{_fmt(_num(ci[0]), spec.higher_is_better)}, " \
                                           f"{_fmt(_num(ci[1]), spec.higher_is_better)}]"
        share = validity.get(mode, {}).get(task, (None,))[0]
        rows.append(f"| {spec.title} | {_fmt(_num(constant.get('flare25')), spec.higher_is_better)} | "
                    f"{_fmt(_num(model.get('flare25')), spec.higher_is_better)} | {ci_text} | {verdicts[task]} | "
                    f"{'n/a' if share is None else f'{share:.0%}'} |")
    beats = [t for t, v in verdicts.items() if v.startswith("beats")]
    clearly_below = [t for t, v in verdicts.items() if v == "below (clearly)"]
    rows += ["", f"Beats the constant baseline on {len(beats)} of {len(verdicts)} tasks "
             f"({sum(verdicts[t] == 'beats (clearly)' for t in beats)} clearly); clearly below it on "
             f"{len(clearly_below)}{': ' + ', '.join(clearly_below) if clearly_below else ''}. 'Clearly': the "
             "constant's value lies outside the model's bootstrap 95 % interval.", ""]
    return rows


def machine() -> str:
    """The CPU model and core count, as the README's figures name their machine."""
    import os
    import platform

    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.lower().startswith("model name")), "")
    except OSError:
        pass
    return f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def reference_section(table: dict[str, dict], settings, reference: Path = REFERENCE) -> list[str]:
    """Markdown lines: where this run's figures fall in the seeds reference the README quotes (``reference``, a
    ``seeds.json`` from ``python -m mevlip.demo --seeds ...``), when it was made with the same preset and scale."""
    ref = _load(reference)
    if not ref or ref.get("preset") != settings.preset or ref.get("scale") != settings.scale:
        return []
    rows = [f"## Against the reference range ({len(ref['runs'])} seeds on {ref['machine']}, "
            f"`{reference.relative_to(REPO) if reference.is_relative_to(REPO) else reference}`)", "",
            "| task | column | this run | reference mean [min, max] | |", "|---|---|---|---|---|"]
    outside = 0
    for task in TASK_NAMES:
        higher = TASKS[task].higher_is_better
        for mode in ("constant", "general", "router"):
            value, cell = table.get(task, {}).get(mode), ref["summary"].get(task, {}).get(mode)
            if value is None or not cell:
                continue
            inside = cell["min"] - 1e-9 <= value <= cell["max"] + 1e-9
            outside += not inside
            rows.append(f"| {TASKS[task].title} | {MODE_TITLES[mode]} | {_fmt(value, higher)} | "
                        f"{_fmt(cell['mean'], higher)} [{_fmt(cell['min'], higher)}, {_fmt(cell['max'], higher)}] | "
                        f"{'inside' if inside else '**outside**'} |")
    rows += ["", f"{outside} figure(s) outside the reference range." if outside else
             "Every figure lies inside the reference range.", ""]
    return rows


def write_report(out: Path, times: dict[str, dict], settings, wall_seconds: float | None = None) -> Path:
    """Write ``results.md`` and its plots; returns its path."""
    metrics = {m: _load(out / "metrics" / m / "metrics_predictions.json") for m in MODE_TITLES}
    modes = [m for m in MODE_TITLES if metrics[m]]
    table: dict[str, dict] = {t: {} for t in TASK_NAMES}
    ns: dict[str, int] = {}
    for mode in modes:
        for task, row in metrics[mode]["primary_metrics"].items():
            value = row.get("flare25")
            table[task][mode] = _num(value)
            ns[task] = row.get("n", 0)
    lines = [
        "# ME-VLIP demo results (synthetic data, stand-in model)", "",
        "**What this is:** the whole ME-VLIP pipeline run for real on the embedded default: mini-FLARE "
        f"(`{settings.scale}` scale, data seed {settings.data_seed}), a tiny InternVL3-architecture stand-in and a "
        f"MiniLM GLiClass router, all on CPU, training seed {settings.seed}. It shows that every stage works and that "
        "training learns; it is **not** the paper's medical result and says nothing about InternVL3-8B on FLARE.", "",
        f"**Preset: `{settings.preset}`** (`mevlip.presets`; docs/fidelity.md): "
        + ("trained as the authors trained (one row per image, `<image> ` + question, no system turn, answers as "
           "given, their QLoRA recipe) and inferred in that same format." if settings.preset == "paper" else
           "our opt-in variant, not the paper's way."), "",
        "Scored on the validation splits (validation-public + validation-hidden `_withGT`) with "
        "`evaluation/evaluation.py`, profile `flare25` (the organisers' rules); MAE: lower is better.", "",
        "| task | metric | n | " + " | ".join(MODE_TITLES[m] for m in modes) + " |",
        "|---|---|---|" + "---|" * len(modes),
    ]
    for task in TASK_NAMES:
        spec = TASKS[task]
        values = {m: table[task].get(m) for m in modes}
        finite = {m: v for m, v in values.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        best = (max if spec.higher_is_better else min)(finite.values()) if finite else None
        cells = [(f"**{_fmt(v, spec.higher_is_better)}**" if v == best and best is not None else
                  _fmt(v, spec.higher_is_better)) for v in values.values()]
        lines.append(f"| {spec.title} | {spec.metric} | {ns.get(task, 0)} | " + " | ".join(cells) + " |")
    lines += ["", "Columns: **constant baseline** answers each dataset's most frequent training answer (mean count, "
              "mean box, ...) without looking at the image; **untrained stand-in** is the random-weight model; "
              "**pre-trained, no adapter** is the stand-in after its full fine-tune on a separate synthetic draw "
              "(its stand-in for InternVL3's pre-training); **general adapter** is the paper's 'without TC' column; "
              "**ME-VLIP (with TC)** routes each question by the GLiClass router to its task adapter (general below "
              "0.3 confidence); **oracle routing** uses each record's own TaskType.", ""]
    validity = {m: format_validity(_load(out / "predictions" / m / "predictions.json") or []) for m in modes}
    lines += learning_section(metrics, validity)
    lines += ["## Answers in the right format (share that parses in the task's format; distinct answers)", "",
              "| task | " + " | ".join(MODE_TITLES[m] for m in modes) + " |", "|---|" + "---|" * len(modes)]
    for task in TASK_NAMES:
        cells = []
        for m in modes:
            share, distinct, n = validity[m].get(task, (None, 0, 0))
            cells.append("n/a" if share is None else f"{share:.0%} ({distinct} distinct)")
        lines.append(f"| {TASKS[task].title} | " + " | ".join(cells) + " |")
    routing = routing_accuracy(out)
    router_report = _load(out / "router" / "report.json") or {}
    lines += ["", "## Task classifier", ""]
    if router_report:
        for name, ev in (router_report.get("evaluations") or {}).items():
            what = {"test": "held-out questions", "paraphrases": "new wordings (tests/data/router_paraphrases.json)"}
            lines.append(f"- router accuracy on {what.get(name, name)} (router report): {ev['accuracy']:.1%} "
                         f"of {ev['n']}")
    if routing:
        lines.append(f"- routing of the {routing['n']} validation questions: {routing['accuracy']:.1%} to the record's "
                     f"own task type; {routing['general_fallbacks']} fell back to the general adapter")
    by_scoring = routing_by_scoring(out)
    for scoring, r in by_scoring.items():
        lines.append(f"- scored with {scoring}" + (" (the original's single-label pipeline; the default)"
                                                    if scoring == "softmax" else " (option --router_scoring sigmoid)")
                     + f": top task right for {r['accuracy']:.1%} of {r['n']}, {r['fallback_rate']:.1%} below the "
                     f"{r['threshold']:g} threshold fall back to the general adapter")
    lines += reference_section(table, settings)
    cpu = machine()
    lines += ["", f"## Stage timings ({cpu}; {settings.jobs} stage(s) at once)", "",
              "| stage | seconds | threads | |", "|---|---|---|---|"]
    for name, info in times.items():
        lines.append(f"| {name} | {info['seconds']:.0f} | {info.get('threads') or ''} | "
                     f"{'cached from an earlier run' if info['cached'] else ''} |")
    lines.append(f"| **sum of stages** | {sum(i['seconds'] for i in times.values()):.0f} | | |")
    if wall_seconds is not None:
        lines.append(f"| **wall clock** | {wall_seconds:.0f} | | stages overlap |")
    plots = [metric_plot(out, table), loss_plot(out)]
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.relative_to(out)})" for p in plots if p]
    path = out / "results.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    verdicts = {t: learning_verdict(metrics["router"]["primary_metrics"].get(t),
                                    metrics["constant"]["primary_metrics"].get(t), TASKS[t].higher_is_better)
                for t in TASK_NAMES} if metrics.get("router") and metrics.get("constant") else {}
    (out / "results.json").write_text(json.dumps({"preset": settings.preset, "scale": settings.scale,
                                                  "seed": settings.seed, "data_seed": settings.data_seed,
                                                  "threads": settings.threads,
                                                  "pretrain_threads": settings.pretrain_threads,
                                                  "machine": cpu, "wall_seconds": wall_seconds,
                                                  "metrics": table, "n": ns, "ci95": ci95(metrics),
                                                  "times": times, "routing": routing,
                                                  "routing_by_scoring": by_scoring,
                                                  "validity": validity, "learning": verdicts}, indent=2,
                                                 default=str) + "\n")
    return path


def ci95(metrics: dict[str, dict | None]) -> dict[str, dict[str, list | None]]:
    """Per task and prediction mode: the bootstrap 95 % interval of the flare25 figure (``evaluation.py``)."""
    result: dict[str, dict] = {t: {} for t in TASK_NAMES}
    for mode, m in metrics.items():
        for task, row in ((m or {}).get("primary_metrics") or {}).items():
            if task in result and row.get("flare25_ci95"):
                result[task][mode] = [_num(x) for x in row["flare25_ci95"]]
    return result


def _run_entry(results: dict, folder: Path | None = None) -> dict:
    """One run of a seeds summary: what its ``results.json`` says, trimmed to what the summary needs."""
    entry = {k: results.get(k) for k in ("seed", "data_seed", "threads", "pretrain_threads", "machine",
                                         "wall_seconds", "metrics", "n", "learning")}
    if folder is not None:
        entry["folder"] = str(folder)
    return entry


def summarise_runs(runs: list[dict]) -> dict[str, dict[str, dict]]:
    """Per task and column: mean, min and max of the flare25 figure over ``runs`` (finite values only; ``n`` says
    how many runs had one)."""
    summary: dict[str, dict[str, dict]] = {}
    for task in TASK_NAMES:
        for mode in MODE_TITLES:
            values = [r["metrics"].get(task, {}).get(mode) for r in runs]
            values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
            if values:
                summary.setdefault(task, {})[mode] = {"mean": sum(values) / len(values), "min": min(values),
                                                      "max": max(values), "n": len(values)}
    return summary


def seeds_markdown(doc: dict) -> str:
    """``seeds.md``: the mean [min, max] table over runs, and every run's learning verdicts."""
    runs, summary = doc["runs"], doc["summary"]
    seeds = ", ".join(str(r["seed"]) for r in runs)
    modes = [m for m in MODE_TITLES if any(m in summary.get(t, {}) for t in TASK_NAMES)]
    lines = [f"# ME-VLIP demo over {len(runs)} runs (seeds {seeds})", "",
             f"Preset `{doc['preset']}`, mini-FLARE `{doc['scale']}` (data seed {runs[0].get('data_seed')}); "
             f"machine(s): {', '.join(sorted({str(r.get('machine')) for r in runs}))}; threads per process: "
             f"{', '.join(sorted({str(r.get('threads')) for r in runs}))}. Each cell: mean [min, max] over the runs "
             "of the flare25 figure on the validation splits (MAE: lower is better).", "",
             "| task | metric | " + " | ".join(MODE_TITLES[m] for m in modes) + " |", "|---|---|" + "---|" * len(modes)]
    for task in TASK_NAMES:
        higher = TASKS[task].higher_is_better
        cells = []
        for m in modes:
            c = summary.get(task, {}).get(m)
            cells.append("n/a" if not c else f"{_fmt(c['mean'], higher)} [{_fmt(c['min'], higher)}, "
                                             f"{_fmt(c['max'], higher)}]")
        lines.append(f"| {TASKS[task].title} | {TASKS[task].metric} | " + " | ".join(cells) + " |")
    lines += ["", "## Learning verdict per run (ME-VLIP with TC against the constant baseline)", "",
              "| task | " + " | ".join(f"seed {r['seed']}" for r in runs) + " |", "|---|" + "---|" * len(runs)]
    for task in TASK_NAMES:
        lines.append(f"| {TASKS[task].title} | " + " | ".join((r.get("learning") or {}).get(task, "n/a") for r in runs)
                     + " |")
    lines.append("| **beats clearly / below** | " + " | ".join(
        f"{v['beats_clearly']} / {v['below']}" for v in doc["verdicts"]) + " |")
    lines += ["", doc["verdict_line"], ""]
    if doc.get("wall_seconds"):
        lines.append(f"Wall clock of the seeds run: {doc['wall_seconds'] / 60:.1f} min.")
    return "\n".join(lines) + "\n"


def seeds_document(runs: list[dict], preset: str, scale: str, wall_seconds: float | None = None) -> dict:
    """The seeds summary: runs, per-cell mean/min/max, and per run the verdict counts."""
    verdicts = [{"seed": r["seed"],
                 "beats_clearly": sum(v == "beats (clearly)" for v in (r.get("learning") or {}).values()),
                 "below": sum(v.startswith("below") for v in (r.get("learning") or {}).values())} for r in runs]
    holds = all(v["beats_clearly"] >= 5 and v["below"] == 0 for v in verdicts)
    line = (f"In every run ME-VLIP beats the constant clearly on at least 5 of {len(TASK_NAMES)} tasks and is below it "
            "on none." if holds else
            "The verdict does NOT hold in every run (>= 5 tasks beaten clearly and none below): " + "; ".join(
                f"seed {v['seed']}: {v['beats_clearly']} clearly, {v['below']} below" for v in verdicts))
    machines = sorted({str(r.get("machine")) for r in runs})
    return {"preset": preset, "scale": scale, "machine": " + ".join(machines), "wall_seconds": wall_seconds,
            "n": runs[0].get("n") if runs else None, "runs": runs, "summary": summarise_runs(runs),
            "verdicts": verdicts, "verdict_holds": holds, "verdict_line": line}


def write_seeds_summary(out: Path, folders: dict[int, Path], wall_seconds: float | None = None) -> Path:
    """Write ``out/seeds.json`` and ``out/seeds.md`` from each seed folder's ``results.json``; returns the .md."""
    runs, first = [], None
    for seed, folder in folders.items():
        results = _load(folder / "results.json")
        if results is None:
            raise FileNotFoundError(f"{folder / 'results.json'}: missing (seed {seed} did not finish)")
        first = first or results
        runs.append(_run_entry(results, folder.relative_to(out) if folder.is_relative_to(out) else folder))
    doc = seeds_document(runs, first["preset"], first.get("scale"), wall_seconds)
    (out / "seeds.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    path = out / "seeds.md"
    path.write_text(seeds_markdown(doc), encoding="utf-8")
    return path


def merge_seeds(files: list[Path], output: Path) -> Path:
    """Pool the runs of several ``seeds.json`` or ``results.json`` files (other machines, other thread counts) into
    one summary at ``output`` (.json + .md); returns the .md path."""
    runs, docs = [], []
    for f in files:
        doc = _load(Path(f))
        if doc is None:
            raise FileNotFoundError(f"{f}: no such file")
        if not isinstance(doc, dict) or not ("runs" in doc or "metrics" in doc):
            raise ValueError(f"{f}: neither a seeds.json nor a results.json (no 'runs', no 'metrics')")
        docs.append(doc)
        runs += doc["runs"] if "runs" in doc else [_run_entry(doc)]
    presets = {d.get("preset") for d in docs}
    if len(presets) > 1:
        raise ValueError(f"cannot merge runs of different presets: {sorted(map(str, presets))}")
    doc = seeds_document(runs, docs[0].get("preset"), docs[0].get("scale"))
    output = Path(output).with_suffix("")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    output.with_suffix(".md").write_text(seeds_markdown(doc), encoding="utf-8")
    return output.with_suffix(".md")


def compare_runs(a: dict, b: dict) -> list[dict]:
    """Per task and column, the two runs' figures and their difference (``b - a``)."""
    rows = []
    for task in TASK_NAMES:
        for mode in MODE_TITLES:
            x, y = a["metrics"].get(task, {}).get(mode), b["metrics"].get(task, {}).get(mode)
            if isinstance(x, (int, float)) and isinstance(y, (int, float)) and math.isfinite(x) and math.isfinite(y):
                rows.append({"task": task, "mode": mode, "a": x, "b": y, "diff": y - x})
    return rows


def build_parser():
    """The command-line options."""
    from mevlip.cli import add_common_args, add_option, make_parser

    parser = make_parser("Pool demo runs into one mean [min, max] table (--merge), or compare two runs figure by "
                         "figure (--compare).", prog="python -m mevlip.demo.report")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                        help="seeds.json / results.json files whose runs to pool into one mean [min, max] table "
                             "(default: none)")
    add_option(parser, "--output_file", aliases=("--output",), type=Path, default=Path("demo_output/merged_seeds"),
               help="where --merge writes <output_file>.json and <output_file>.md")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                        help="two results.json files: print each figure of both and their difference (B - A) "
                             "(default: none)")
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m mevlip.demo.report --merge A/seeds.json B/results.json --output_file merged`` or
    ``--compare A/results.json B/results.json``."""
    from mevlip.cli import UserError, setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if not args.merge and not args.compare:
        parser.error("give --merge or --compare")
    for path in [*(args.merge or []), *(args.compare or [])]:
        try:
            if _load(path) is None:
                raise UserError(f"{path}: no such file")
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UserError(f"{path}: not a results/seeds JSON file ({err})") from err
    try:
        if args.merge:
            print(f"wrote {merge_seeds(args.merge, args.output_file)}")
        if args.compare:
            a, b = (_load(p) for p in args.compare)
            print(f"| task | column | {args.compare[0]} | {args.compare[1]} | difference |\n|---|---|---|---|---|")
            for r in compare_runs(a, b):
                higher = TASKS[r["task"]].higher_is_better
                print(f"| {TASKS[r['task']].title} | {MODE_TITLES[r['mode']]} | {_fmt(r['a'], higher)} | "
                      f"{_fmt(r['b'], higher)} | {r['diff']:+.3f} |")
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        raise UserError(str(err)) from err
    return 0


if __name__ == "__main__":
    from mevlip.cli import run_cli

    run_cli(main, prog="python -m mevlip.demo.report")
