"""Write the evaluation outputs: metrics JSON, Markdown table, per-sample JSONL and a bar chart.

All files carry their provenance (config, package versions, git hash; style.md item 12). JSON stays strict: an
undefined value is ``null`` and an infinite MAE (the organisers' "inf" when no prediction parses) is the string
``"Infinity"``, as in their own ``InfinityEncoder``.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from mevlip.cli import writing
from mevlip.metrics.profiles import STRICT_DIFFERENCES
from mevlip.tasks import TASKS

_PACKAGES = ("mevlip", "numpy", "scikit-learn", "nltk", "rouge-score", "matplotlib", "torch", "transformers")
LIST_LIMIT_MD = 20


def provenance(repo_dir: str | Path | None = None) -> dict:
    """Package versions, git commit of the code and the time of the run."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    git_hash = None
    try:
        cwd = Path(repo_dir) if repo_dir else Path(__file__).resolve().parents[2]
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        git_hash = done.stdout.strip() or None if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"versions": versions, "git_hash": git_hash,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def jsonable(obj: object) -> object:
    """A copy of ``obj`` that ``json.dumps(allow_nan=False)`` accepts (NaN -> None, inf -> "Infinity")."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item"):  # numpy scalar
        return jsonable(obj.item())
    return str(obj)


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.4g}"
    return str(value)


def _ci(ci: list | None) -> str:
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "–"


def markdown(results: dict) -> str:
    """The human-readable report: primary metrics side by side, per dataset, secondary metrics, matching."""
    order = results["profiles_order"]
    cfg = results["config"]
    lines = [f"# FLARE evaluation of `{Path(cfg['prediction_file']).name}`", "",
             f"Ground truth: `{cfg['base_dataset_path']}` ({', '.join(cfg['splits'])}); missing predictions: "
             f"{cfg['missing']}; primary profile: **{results['primary_profile']}**; bootstrap: {cfg['bootstrap']} "
             f"(seed {cfg['seed']}); git {results.get('git_hash') or 'unknown'}.", "",
             "## Primary metrics per task (pooled over datasets)", "",
             "| task | metric | n | missing | " + " | ".join(
                 f"{p}{' (primary)' if i == 0 else ''} | 95% CI | {p} scored (unparsable)" for i, p in
                 enumerate(order)) + " |",
             "|---|---|---|---|" + "---|---|---|" * len(order)]
    for task, row in results["primary_metrics"].items():
        arrow = "↑" if row["higher_is_better"] else "↓"
        cells = " | ".join(f"{_fmt(row[p])} | {_ci(row[p + '_ci95'])} | {row[p + '_n_scored']} "
                           f"({row.get(p + '_n_unparsable', 0)})" for p in order)
        lines.append(f"| {TASKS[task].title} | {row['metric']} {arrow} | {row['n']} | {row.get('n_missing', 0)} | "
                     f"{cells} |")
    lines += ["", "*missing*: ground-truth records without a prediction; *unparsable*: answered, but the profile's "
              "parser read nothing. flare25 (the organisers' rule) drops a missing or unparsable count/regression "
              "answer from the MAE, so it can look good with few answers: read it with *scored*; strict counts "
              "them as wrong (0).", "",
              "`green_flare25_rule` is the organisers' rule-based composite that their READMEs call GREEN; it is "
              "not Stanford GREEN (`green_llm`, only with `--green_model`).", "",
              "## Per dataset", "", "| task | dataset | n | metric | " + " | ".join(order) + " |",
              "|---|---|---|---|" + "---|" * len(order)]
    for task, row in results["primary_metrics"].items():
        for dataset, entry in results["profiles"][order[0]]["tasks"][task]["datasets"].items():
            values = " | ".join(_fmt(results["profiles"][p]["tasks"][task]["datasets"][dataset]["metrics"]
                                     .get(row["metric"])) for p in order)
            lines.append(f"| {TASKS[task].title} | {dataset} | {entry['n']} | {row['metric']} | {values} |")
    lines += ["", "## All metrics", ""]
    for profile in order:
        lines += [f"### {profile}", "", "| task | n | n scored | metrics |", "|---|---|---|---|"]
        for task, entry in results["profiles"][profile]["tasks"].items():
            metrics = ", ".join(f"{k} {_fmt(v)}" for k, v in entry["metrics"].items())
            lines.append(f"| {TASKS[task].title} | {entry['n']} | {entry['n_scored']} | {metrics} |")
        lines.append("")
    match = results["matching"]
    lines += ["## Matching (key `str(ImageName)||Question`)", "",
              f"{match['n_gt']} ground-truth records, {match['n_predictions']} predictions, {match['n_matched']} "
              "matched.", ""]
    for name, entry in match.items():
        if isinstance(entry, dict) and entry["count"]:
            shown = ", ".join(f"`{k}`" for k in entry["items"][:LIST_LIMIT_MD])
            more = f" (+{entry['count'] - LIST_LIMIT_MD} more in the JSON)" if entry["count"] > LIST_LIMIT_MD else ""
            lines.append(f"- {name.replace('_', ' ')}: {entry['count']}: {shown}{more}")
    lines += ["", "## strict vs flare25", ""] + [f"{i}. {d}" for i, d in enumerate(STRICT_DIFFERENCES, 1)]
    return "\n".join(lines) + "\n"


def bar_chart(results: dict, path: str | Path) -> None:
    """One panel per task: the primary metric under each profile, with bootstrap 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = results["primary_metrics"]
    order = results["profiles_order"]
    fig, axes = plt.subplots(1, max(1, len(table)), figsize=(2.4 * max(1, len(table)), 3.2), squeeze=False)
    for ax, (task, row) in zip(axes[0], table.items(), strict=False):
        heights, errors = [], [[], []]
        for profile in order:
            value = row[profile]
            finite = value is not None and math.isfinite(value)
            heights.append(value if finite else 0.0)
            ci = row[f"{profile}_ci95"]
            ok = finite and ci and all(math.isfinite(c) for c in ci)
            errors[0].append(max(0.0, value - ci[0]) if ok else 0.0)
            errors[1].append(max(0.0, ci[1] - value) if ok else 0.0)
        ax.bar(order, heights, yerr=errors, color=["tab:blue", "tab:orange"][: len(order)], capsize=3)
        for x, profile in enumerate(order):
            ax.text(x, heights[x], _fmt(row[profile]), ha="center", va="bottom", fontsize=7)
        ax.set_title(f"{TASKS[task].title}\n{row['metric']} {'↑' if row['higher_is_better'] else '↓'}", fontsize=8)
        ax.tick_params(labelsize=7)
        top = max([h for h in heights] + [e + h for e, h in zip(errors[1], heights, strict=False)] + [1e-9])
        ax.set_ylim(0, 1.1 if row["higher_is_better"] and top <= 1 else top * 1.15)
    fig.suptitle(f"primary metrics (primary profile: {results['primary_profile']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def write_outputs(results: dict, rows: list[dict], output_dir: str | Path, output_filename: str) -> dict[str, Path]:
    """Write ``<name>.json``, ``<name>.md``, ``<name>_samples.jsonl`` and ``<name>.png``; returns their paths.

    All four or none: each is written to a temporary file first and the four are renamed into place only when all
    are complete, so a failure (a full disk, an answer that is not valid Unicode) leaves the previous set whole.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(output_filename).stem
    paths = {"json": out / f"{stem}.json", "markdown": out / f"{stem}.md", "samples": out / f"{stem}_samples.jsonl",
             "chart": out / f"{stem}.png"}
    temps = {k: p.with_name(f".{p.name}.{os.getpid()}.tmp") for k, p in paths.items()}
    try:  # a full disk or a read-only folder ends in one line naming the file (mevlip.cli.writing)
        with writing(temps["json"]):
            temps["json"].write_text(json.dumps(jsonable(results), indent=2, allow_nan=False) + "\n",
                                     encoding="utf-8")
        with writing(temps["markdown"]):
            temps["markdown"].write_text(markdown(results), encoding="utf-8")
        with writing(temps["samples"]), open(temps["samples"], "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(_sample_line(row) + "\n")
        with writing(temps["chart"]):
            bar_chart(results, temps["chart"])
        for key, path in paths.items():
            if temps[key].exists():
                os.replace(temps[key], path)
            else:  # nothing to chart: no stale chart of an earlier run beside the new figures
                path.unlink(missing_ok=True)
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)
    return paths


def _sample_line(row: dict) -> str:
    """One JSON line; a row holding a lone surrogate (an answer that is not valid Unicode) is written ASCII-escaped,
    which parses back to the same values."""
    try:  # most rows hold no NaN/inf: skip the recursive copy for them
        line = json.dumps(row, allow_nan=False, ensure_ascii=False)
    except (ValueError, TypeError):
        line = json.dumps(jsonable(row), allow_nan=False, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(jsonable(row), allow_nan=False, ensure_ascii=True)
    return line
