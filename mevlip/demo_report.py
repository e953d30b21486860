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
    right = sum(d.get("routed_task", d["task"]) == normalize_task_type(p["TaskType"]) for d, p in zip(details, preds))
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
            "accuracy": sum(r.task == t for r, t in zip(routes, truth)) / max(1, len(routes)),
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
    for ax, title in zip(axes, ("stand-in pre-training (full fine-tune)", "QLoRA adapters")):
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
    for ax, task in zip(axes, TASK_NAMES):
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


def write_report(out: Path, times: dict[str, dict], settings) -> Path:
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
        f"(`{settings.scale}` scale, seed {settings.seed}), a tiny InternVL3-architecture stand-in and a MiniLM GLiClass "
        "router, all on CPU. It shows that every stage works and that training learns; it is **not** the paper's "
        "medical result and says nothing about InternVL3-8B on FLARE.", "",
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
    lines += ["", "## Stage timings (2-core CPU)", "", "| stage | seconds | |", "|---|---|---|"]
    for name, info in times.items():
        lines.append(f"| {name} | {info['seconds']:.0f} | {'cached from an earlier run' if info['cached'] else ''} |")
    lines.append(f"| **total** | {sum(i['seconds'] for i in times.values()):.0f} | |")
    plots = [metric_plot(out, table), loss_plot(out)]
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.relative_to(out)})" for p in plots if p]
    path = out / "results.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    verdicts = {t: learning_verdict(metrics["router"]["primary_metrics"].get(t),
                                    metrics["constant"]["primary_metrics"].get(t), TASKS[t].higher_is_better)
                for t in TASK_NAMES} if metrics.get("router") and metrics.get("constant") else {}
    (out / "results.json").write_text(json.dumps({"preset": settings.preset, "metrics": table, "n": ns,
                                                  "times": times, "routing": routing,
                                                  "routing_by_scoring": by_scoring,
                                                  "validity": validity, "learning": verdicts}, indent=2,
                                                 default=str) + "\n")
    return path
