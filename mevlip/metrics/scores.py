"""Aggregate metrics over per-sample values, for any slice and for bootstrap resamples at once.

Step 2 of the two-step design: :mod:`mevlip.metrics.profiles` turns each sample into values (correct, tp/fp/fn,
absolute error, ...); :func:`build_columns` stacks them into numpy columns per task, and :func:`aggregate`
reduces a slice. A slice is given as a weight matrix ``W`` of shape ``(B, m)``: one row of ones for the point
estimate, or one row of multinomial resampling counts per bootstrap replicate, so every metric of every replicate
is a few matrix products. Each metric comes back as a ``(B,)`` array; NaN means "undefined" (reported as None).

Definitions (flare_format.md 4.A; Q25 ``evaluate_model.py`` ``calculate_metrics``):

* balanced accuracy = mean recall over the reference classes present in the slice (= sklearn
  ``balanced_accuracy_score``; predicted classes absent from the references add nothing);
* multi-label F1 = mean of per-sample F1 over samples with a non-empty reference label set;
* detection F1 = micro F1 from summed TP/FP/FN at IoU > 0.5; instance detection likewise per threshold, primary
  at 0.5, ``average_f1`` = mean over 0.3-0.7;
* MAE over scored samples; flare25 gives inf when no sample is left (Q25) and whenever one error is inf;
* report: mean rule score and components, corpus BLEU-4 from summed counts, mean ROUGE-L, mean LLM GREEN.
"""

from __future__ import annotations

import numpy as np

from mevlip.metrics.green_rule import COMPONENTS
from mevlip.metrics.matching import INSTANCE_THRESHOLDS
from mevlip.metrics.text_metrics import (
    BLEU_COLUMNS,
    FLARE25_BLEU_COLUMNS,
    corpus_bleu_from_counts,
    flare25_bleu_from_stats,
)

#: Primary metric of each canonical task.
PRIMARY: dict[str, str] = {
    "classification": "balanced_accuracy", "multi_label_classification": "f1", "detection": "f1",
    "instance_detection": "f1", "counting": "mae", "regression": "mae", "report_generation": "green_flare25_rule",
}
#: Direction of every metric name reported (error metrics are the only lower-is-better ones).
HIGHER_IS_BETTER: dict[str, bool] = {name: True for name in (
    "balanced_accuracy", "accuracy", "f1_weighted", "f1", "precision", "recall", "average_f1", "green_flare25_rule",
    "green_llm", "bleu4_nltk", "rougeL", "bleu_score", "clinical_efficacy", "green_severity_correlation",
    *(f"f1@{t}" for t in INSTANCE_THRESHOLDS), *(f"rule_{c}" for c in COMPONENTS))}
HIGHER_IS_BETTER.update({"mae": False, "rmse": False})


# ----------------------------------------------------------------------------------------------- columns
def build_columns(task: str, rows: list[dict]) -> dict[str, np.ndarray]:
    """Stack per-sample values (from :mod:`mevlip.metrics.profiles`) of one task into numpy columns."""
    n = len(rows)
    cols: dict[str, np.ndarray] = {"scored": np.fromiter((bool(r["scored"]) for r in rows), bool, n)}
    if task == "classification":
        codes: dict[str, int] = {}
        gt = [r["target"] for r in rows]
        for label in gt:  # reference classes first, so codes < n_ref_classes are reference classes
            if label is not None:
                codes.setdefault(label, len(codes))
        cols["gt_code"] = np.fromiter((codes.get(g, -1) if g is not None else -1 for g in gt), np.int64, n)
        cols["pred_code"] = np.fromiter((codes.setdefault(r["parsed"], len(codes)) for r in rows), np.int64, n)
        cols["correct"] = np.fromiter((bool(r["correct"]) for r in rows), bool, n)
    elif task == "multi_label_classification":
        for name in ("precision", "recall", "f1"):
            cols[name] = np.fromiter((r[name] for r in rows), np.float64, n)
    elif task == "detection":
        cols["counts"] = np.array([(r["tp"], r["fp"], r["fn"]) for r in rows], np.float64).reshape(n, 3)
    elif task == "instance_detection":
        cols["counts"] = np.array([r["counts"] for r in rows], np.float64).reshape(n, len(INSTANCE_THRESHOLDS), 3)
    elif task in ("counting", "regression"):
        cols["abs_error"] = np.fromiter((r["abs_error"] for r in rows), np.float64, n)
    else:
        cols["green_flare25_rule"] = np.fromiter((r["green_flare25_rule"] for r in rows), np.float64, n)
        cols["components"] = np.array([r["components"] for r in rows], np.float64).reshape(n, len(COMPONENTS))
        cols["bleu"] = np.array([r["bleu"] for r in rows], np.float64).reshape(n, BLEU_COLUMNS)
        cols["rougeL"] = np.fromiter((r["rougeL"] for r in rows), np.float64, n)
        cols["bleu_flare25"] = np.array([r["bleu_flare25"] for r in rows], np.float64).reshape(n, FLARE25_BLEU_COLUMNS)
        cols["clinical_efficacy"] = np.fromiter((r["clinical_efficacy"] for r in rows), np.float64, n)
        cols["severity_correlation"] = np.fromiter((r["severity_correlation"] for r in rows), np.float64, n)
        cols["green_llm"] = np.fromiter((r.get("green_llm", np.nan) for r in rows), np.float64, n)
    return cols


def take(cols: dict[str, np.ndarray], selection: np.ndarray) -> dict[str, np.ndarray]:
    """The rows ``selection`` (indices or a boolean mask) of every column."""
    return {k: v[selection] for k, v in cols.items()}


# ----------------------------------------------------------------------------------------------- weights
def point_weights(m: int) -> np.ndarray:
    """``(1, m)`` weights: the slice itself."""
    return np.ones((1, m))


def bootstrap_weights(m: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """``(B, m)`` multinomial resampling counts (each row sums to ``m``), i.e. ``B`` resamples with replacement."""
    flat = rng.integers(0, m, size=(replicates, m))
    flat += (np.arange(replicates) * m)[:, None]
    return np.bincount(flat.ravel(), minlength=replicates * m).reshape(replicates, m).astype(np.float64)


def masked_mean(W: np.ndarray, x: np.ndarray, empty: float = np.nan) -> np.ndarray:
    """Weighted mean of ``x`` ignoring NaN; ``empty`` where no value is left; inf where an inf is drawn."""
    valid = ~np.isnan(x)
    infinite = np.isinf(x)
    finite = valid & ~infinite
    total = W @ np.where(finite, x, 0.0)
    count = W @ valid.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(count > 0, total / np.where(count > 0, count, 1.0), empty)
    if infinite.any():
        out = np.where(W @ infinite.astype(np.float64) > 0, np.inf, out)
    return out


def _prf(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1), 0.0)
        r = np.where(tp + fn > 0, tp / np.where(tp + fn > 0, tp + fn, 1), 0.0)
        f = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0.0)
    return p, r, f


# ----------------------------------------------------------------------------------------------- aggregate
def balanced_accuracy(W: np.ndarray, gt_code: np.ndarray, correct: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """Mean per-class recall over the reference classes drawn in each row of ``W`` (NaN if none)."""
    keep = scored & (gt_code >= 0)
    classes, inverse = np.unique(gt_code[keep], return_inverse=True)
    if classes.size == 0:
        return np.full(W.shape[0], np.nan)
    onehot = np.zeros((gt_code.size, classes.size))  # (m, K): row i marks the reference class of sample i
    onehot[np.flatnonzero(keep), inverse] = 1.0
    count = W @ onehot  # (B, K) samples drawn per class
    hits = W @ (onehot * correct[:, None])  # (B, K) correct ones among them
    present = count > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        recall_sum = np.where(present, hits / np.where(present, count, 1.0), 0.0).sum(axis=1)
        return np.where(present.any(axis=1), recall_sum / present.sum(axis=1), np.nan)


def _weighted_f1(gt_code: np.ndarray, pred_code: np.ndarray, correct: np.ndarray) -> float:
    """sklearn ``f1_score(average="weighted", zero_division=0)`` from integer codes (point estimate only)."""
    if gt_code.size == 0:
        return float("nan")
    size = int(max(gt_code.max(), pred_code.max())) + 1
    true = np.bincount(gt_code, minlength=size)
    pred = np.bincount(pred_code, minlength=size)
    tp = np.bincount(gt_code[correct], minlength=size)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(true + pred > 0, 2 * tp / np.where(true + pred > 0, true + pred, 1), 0.0)
    return float((true * f1).sum() / true.sum())


def aggregate(task: str, cols: dict[str, np.ndarray], W: np.ndarray, profile: str = "flare25",
              primary_only: bool = False) -> dict[str, np.ndarray]:
    """Metrics of one slice of one task, one value per row of ``W``.

    Args:
        task: canonical task name.
        cols: the slice's columns (:func:`build_columns`, :func:`take`); ``m`` rows.
        W: ``(B, m)`` weights (:func:`point_weights` or :func:`bootstrap_weights`).
        profile: ``flare25`` makes an MAE with no sample left infinite (Q25); ``strict`` leaves it undefined.
        primary_only: compute only :data:`PRIMARY` (bootstrap).

    Returns:
        metric name -> ``(B,)`` array.
    """
    scored = cols["scored"]
    out: dict[str, np.ndarray] = {}
    if task == "classification":
        out["balanced_accuracy"] = balanced_accuracy(W, cols["gt_code"], cols["correct"], scored)
        if not primary_only:
            out["accuracy"] = masked_mean(W, np.where(scored, cols["correct"], np.nan).astype(np.float64))
            keep = scored & (cols["gt_code"] >= 0)
            out["f1_weighted"] = np.array([_weighted_f1(cols["gt_code"][keep], cols["pred_code"][keep],
                                                        cols["correct"][keep])])
    elif task == "multi_label_classification":
        for name in ("f1",) if primary_only else ("f1", "precision", "recall"):
            out[name] = masked_mean(W, cols[name])
    elif task == "detection":
        p, r, f = _prf(W @ cols["counts"])
        out.update({"f1": f} if primary_only else {"f1": f, "precision": p, "recall": r})
    elif task == "instance_detection":
        sums = np.einsum("bm,mtc->btc", W, cols["counts"])  # (B, thresholds, [tp, fp, fn])
        p, r, f = _prf(sums)
        mid = INSTANCE_THRESHOLDS.index(0.5)
        out["f1"] = f[:, mid]
        if not primary_only:
            out.update({"precision": p[:, mid], "recall": r[:, mid], "average_f1": f.mean(axis=1)})
            out.update({f"f1@{t}": f[:, i] for i, t in enumerate(INSTANCE_THRESHOLDS)})
    elif task in ("counting", "regression"):
        empty = np.inf if profile == "flare25" else np.nan
        errors = np.where(scored, cols["abs_error"], np.nan)
        out["mae"] = masked_mean(W, errors, empty)
        if not primary_only:
            out["rmse"] = np.sqrt(masked_mean(W, errors * errors, empty))
    else:
        rule = np.where(scored, cols["green_flare25_rule"], np.nan)
        out["green_flare25_rule"] = masked_mean(W, rule)
        if not primary_only:
            for i, name in enumerate(COMPONENTS):
                out[f"rule_{name}"] = masked_mean(W, np.where(scored, cols["components"][:, i], np.nan))
            out["green_severity_correlation"] = masked_mean(W, np.where(scored, cols["severity_correlation"], np.nan))
            # the organisers' BLEU (macro-averaged precisions) and clinical efficacy, their names
            out["bleu_score"] = flare25_bleu_from_stats(W @ np.where(scored[:, None], cols["bleu_flare25"], 0.0))
            out["clinical_efficacy"] = masked_mean(W, np.where(scored, cols["clinical_efficacy"], np.nan))
            bleu_rows = np.where(scored[:, None], cols["bleu"], 0.0)
            out["bleu4_nltk"] = corpus_bleu_from_counts(W @ bleu_rows)  # nltk's corpus BLEU, not the organisers'
            out["rougeL"] = masked_mean(W, np.where(scored, cols["rougeL"], np.nan))
            if not np.isnan(cols["green_llm"]).all():
                out["green_llm"] = masked_mean(W, np.where(scored, cols["green_llm"], np.nan))
    if W.shape[1] == 0:  # an empty slice reports None, never 0.0 (style.md item 2)
        out = {k: np.full(W.shape[0], np.nan) for k in out}
    return out


def quantile_ci(values: np.ndarray, level: float = 0.95) -> list[float] | None:
    """Percentile interval of bootstrap values (no interpolation, so inf values stay inf); None if undefined."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return None
    tail = (1 - level) / 2
    lo, hi = np.quantile(values, [tail, 1 - tail], method="inverted_cdf")
    return [float(lo), float(hi)]
