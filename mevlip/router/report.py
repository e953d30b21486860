"""How well a router routes: accuracy, per-class precision/recall, confusion matrix, below-threshold count.

Two steps, as the metrics elsewhere: :func:`evaluate` scores each row (true task, predicted task, score), then
reduces; an empty slice reports ``n=0`` and ``None``, never ``0.0``. :func:`write_report` writes ``report.json``,
``report.md`` and ``confusion.png``, with the leave-one-dataset-out figures (:mod:`mevlip.router.lodo`) when the
run has them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mevlip.router.portable import relativize


def confusion(labels: list[str], trues: list[str], preds: list[str]) -> list[list[int]]:
    """Counts ``matrix[i][j]`` of rows whose true label is ``labels[i]`` and predicted label ``labels[j]``."""
    index = {x: i for i, x in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for t, p in zip(trues, preds, strict=True):
        matrix[index[t]][index[p]] += 1
    return matrix


def summarize(labels: list[str], trues: list[str], preds: list[str], scores: list[float],
              threshold: float) -> dict:
    """Accuracy, per-class precision/recall, confusion matrix and the rows scoring below ``threshold``."""
    n = len(trues)
    matrix = confusion(labels, trues, preds)
    per_class = {}
    for i, label in enumerate(labels):
        support, predicted, hit = sum(matrix[i]), sum(row[i] for row in matrix), matrix[i][i]
        per_class[label] = {"support": support, "predicted": predicted,
                            "precision": hit / predicted if predicted else None,
                            "recall": hit / support if support else None}
    correct = sum(t == p for t, p in zip(trues, preds, strict=True))
    return {"n": n, "accuracy": correct / n if n else None, "errors": n - correct,
            "threshold": threshold, "below_threshold": sum(s < threshold for s in scores),
            "per_class": per_class, "confusion": {"labels": list(labels), "matrix": matrix}}


def evaluate(router, rows: list[dict], threshold: float | None = None, seen: set[str] | None = None,
             batch_size: int = 64, max_errors: int = 50) -> dict:
    """Route contract-format rows and summarise; ``seen`` (training texts) adds an ``unseen`` slice."""
    threshold = router.threshold if threshold is None else threshold
    texts = [r["text"] for r in rows]
    trues = [r["true_labels"][0] for r in rows]
    unknown = sorted(set(trues) - set(router.labels))
    if unknown:
        raise ValueError(f"true labels {unknown} are not in the router's label set {router.labels}")
    results = router.classify(texts, batch_size=batch_size)
    preds, scores = [p for p, _ in results], [s for _, s in results]
    report = summarize(router.labels, trues, preds, scores, threshold)
    if seen is not None:
        keep = [i for i, t in enumerate(texts) if t not in seen]
        hits = sum(trues[i] == preds[i] for i in keep)
        report["unseen"] = {"n": len(keep), "accuracy": hits / len(keep) if keep else None}
    report["error_rows"] = [{"text": texts[i], "true": trues[i], "predicted": preds[i], "score": round(scores[i], 4)}
                            for i in range(len(texts)) if trues[i] != preds[i]][:max_errors]
    return report


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)


def confusion_markdown(summary: dict) -> str:
    """The confusion matrix as a Markdown table (rows: true task, columns: predicted task)."""
    labels, matrix = summary["confusion"]["labels"], summary["confusion"]["matrix"]
    lines = ["| true \\ predicted | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for label, row in zip(labels, matrix, strict=True):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def report_markdown(title: str, summary: dict) -> str:
    """One evaluation as Markdown: headline figures, per-class table, confusion matrix, a few errors."""
    lines = [f"### {title}", "", f"- questions: {summary['n']}", f"- accuracy: {_fmt(summary['accuracy'])}"]
    if "unseen" in summary:
        lines.append(f"- accuracy on texts not in training: {_fmt(summary['unseen']['accuracy'])} "
                     f"(n={summary['unseen']['n']})")
    lines += [f"- below the routing threshold {summary['threshold']}: {summary['below_threshold']} "
              "(these go to the general adapter)", "", "| task | support | predicted | precision | recall |",
              "|---|---|---|---|---|"]
    for label, c in summary["per_class"].items():
        lines.append(f"| {label} | {c['support']} | {c['predicted']} | {_fmt(c['precision'])} | {_fmt(c['recall'])} |")
    lines += ["", confusion_markdown(summary)]
    if summary.get("error_rows"):
        lines += ["", "Misrouted (first few):", ""]
        lines += [f"- {e['true']} -> {e['predicted']} ({e['score']:.3f}): {e['text'][:120]!r}"
                  for e in summary["error_rows"][:10]]
    return "\n".join(lines)


def lodo_markdown(lodo: dict) -> str:
    """Leave-one-dataset-out figures as Markdown: overall, targets, and one row per held-out dataset."""
    targets = lodo["targets"]
    seeds = lodo.get("seeds") or []
    several = len(seeds) > 1
    lines = ["### leave-one-dataset-out", "",
             *([f"- each fold trained with router seeds {', '.join(map(str, seeds))}: n counts every seed's "
                "questions, a dataset's accuracy is its mean over the seeds (range beside it)"] if several else []),
             f"- questions held out: {lodo['n']}, accuracy {_fmt(lodo['accuracy'])} (target >= "
             f"{targets['overall']}); mean over datasets {_fmt(lodo['mean_dataset_accuracy'])}",
             f"- weakest dataset: {lodo['worst_dataset']} {_fmt(lodo['worst_accuracy'])} (target: none below "
             f"{targets['per_dataset']}); targets met: {'yes' if lodo['meets_targets'] else 'no'}",
             f"- {len(lodo['folds'])} folds, {lodo['seconds']} s of training and routing", "",
             "| held-out dataset | what was held out | n | accuracy | routed to |", "|---|---|---|---|---|"]
    for f in lodo["folds"]:
        routed = ", ".join(f"{k} {v}" for k, v in sorted(f["predicted"].items(), key=lambda kv: -kv[1]))
        accuracy = _fmt(f["accuracy"])
        if several and f.get("accuracy_min") is not None:
            accuracy += f" ({_fmt(f['accuracy_min'])}-{_fmt(f['accuracy_max'])})"
        lines.append(f"| {f['dataset']} | {f['held_out']} | {f['n']} | {accuracy} | {routed} |")
    errors = [(f["dataset"], e) for f in lodo["folds"] for e in f["error_rows"][:3]]
    if errors:
        lines += ["", "Misrouted (first few per dataset):", ""]
        lines += [f"- {d}{' (seed ' + str(e['seed']) + ')' if several else ''}: {e['true']} -> {e['predicted']} "
                  f"({e['score']:.3f}): {e['text'][:110]!r}" for d, e in errors]
    return "\n".join(lines)


def plot_confusion(summary: dict, path: str | os.PathLike, title: str = "router confusion matrix") -> Path:
    """Save the confusion matrix as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, matrix = summary["confusion"]["labels"], summary["confusion"]["matrix"]
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 2, 1.0 * len(labels) + 1.5))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > peak / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def write_report(out_dir: str | os.PathLike, report: dict, evaluations: dict[str, dict]) -> list[Path]:
    """Write ``report.json``, ``report.md`` and one ``confusion_<name>.png`` per evaluation.

    Args:
        out_dir: the router folder (or any folder).
        report: provenance and training figures (config, data, departures, timing).
        evaluations: name (``test``, ``paraphrases``) -> :func:`evaluate` output.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    full = relativize({**report, "evaluations": evaluations}, out.resolve())  # the folder names no absolute path
    written = [out / "report.json"]
    written[0].write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    md = ["# Task router report", ""]
    for key in ("encoder", "label_model", "architecture", "train_rows", "training_seconds", "steps"):
        if key in report:
            md.append(f"- {key}: {report[key]}")
    if report.get("departures"):
        md += ["", "Departures from the paper:", ""] + [f"- {d}" for d in report["departures"]]
    if report.get("unstated"):
        md += ["", "Settings the paper does not state: " + ", ".join(report["unstated"])]
    for name, summary in evaluations.items():
        png = plot_confusion(summary, out / f"confusion_{name}.png", f"router: {name}")
        written.append(png)
        md += ["", report_markdown(name, summary), "", f"![confusion matrix]({png.name})"]
    if report.get("leave_one_dataset_out"):
        md += ["", lodo_markdown(report["leave_one_dataset_out"])]
    written.append(out / "report.md")
    written[-1].write_text("\n".join(md) + "\n", encoding="utf-8")
    return written
