"""Box matching shared by both profiles: IoU and the organisers' prediction-order greedy matcher.

Rule (``docs/flare_format.md`` 4.A; Q25 ``evaluate_model.py`` ``calculate_metrics`` detection branch and
``calculate_instance_detection_metrics``): walk the predicted boxes in output order; each takes the not-yet-matched
reference box with the highest IoU (ties: the first such box; an IoU of 0 never matches); it is a true positive
when that IoU is strictly greater than the threshold. Unmatched predictions are false positives, unmatched
references false negatives. IoU uses plain areas (no +1) and is 0 when the union is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Thresholds of the Q25 instance-detection report (strict ``>``); F1@0.5 is the primary metric.
INSTANCE_THRESHOLDS: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``[x1, y1, x2, y2]`` boxes; 0.0 for a malformed box or arithmetic overflow (Q25 catches both)."""
    try:
        ax1, ay1, ax2, ay2 = a
        bx1, by1, bx2, by2 = b
        left, top, right, bottom = max(ax1, bx1), max(ay1, by1), min(ax2, bx2), min(ay2, by2)
        if right < left or bottom < top:
            return 0.0
        inter = (right - left) * (bottom - top)
        union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
        return inter / union if union > 0 else 0.0
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        return 0.0


def iou_matrix(preds: Sequence[Sequence[float]], refs: Sequence[Sequence[float]]) -> list[list[float]]:
    """``m[i][j]`` = IoU of prediction ``i`` and reference ``j``."""
    return [[iou(p, r) for r in refs] for p in preds]


def greedy_counts(ious: list[list[float]], n_refs: int, threshold: float = 0.5) -> tuple[int, int, int]:
    """``(tp, fp, fn)`` of the prediction-order greedy matching on a precomputed IoU matrix.

    Args:
        ious: ``ious[i][j]`` for prediction ``i`` (in output order) and reference ``j``.
        n_refs: number of reference boxes (needed when there are no predictions).
        threshold: a match needs IoU strictly greater than this.
    """
    matched: set[int] = set()
    tp = 0
    for row in ious:
        best, best_j = 0.0, -1
        for j, value in enumerate(row):
            if j not in matched and value > best:
                best, best_j = value, j
        if best > threshold:
            matched.add(best_j)
            tp += 1
    return tp, len(ious) - tp, n_refs - len(matched)


def match_boxes(preds: Sequence[Sequence[float]], refs: Sequence[Sequence[float]],
                threshold: float = 0.5) -> tuple[int, int, int]:
    """``(tp, fp, fn)`` for one image's predicted and reference boxes at one IoU threshold."""
    return greedy_counts(iou_matrix(preds, refs), len(refs), threshold)


def match_instances(preds: dict, refs: dict,
                    thresholds: Sequence[float] = INSTANCE_THRESHOLDS) -> list[tuple[int, int, int]]:
    """``(tp, fp, fn)`` per threshold, matching separately within each instance id (union of both key sets).

    Keys must match exactly (case-sensitive, as Q25). A value that is not a list counts as no boxes.
    Thresholds must be ascending. Speed: the greedy pass at the lowest threshold is reused for all of them when
    no accepted IoU lies in ``(lowest, highest]`` and no rejected best IoU exceeds the lowest: every decision of
    the walk is then the same at each threshold.
    """
    low, high = thresholds[0], thresholds[-1]
    totals = [[0, 0, 0] for _ in thresholds]
    for key in set(refs) | set(preds):
        ref_boxes = refs.get(key, [])
        pred_boxes = preds.get(key, [])
        ref_boxes = ref_boxes if isinstance(ref_boxes, list) else []
        pred_boxes = pred_boxes if isinstance(pred_boxes, list) else []
        if not pred_boxes or not ref_boxes:
            for total in totals:
                total[1] += len(pred_boxes)
                total[2] += len(ref_boxes)
            continue
        ious = iou_matrix(pred_boxes, ref_boxes)
        tp, fp, fn, stable = _greedy_once(ious, len(ref_boxes), low, high)
        for t, threshold in enumerate(thresholds):
            if t and not stable:
                tp, fp, fn = greedy_counts(ious, len(ref_boxes), threshold)
            totals[t][0] += tp
            totals[t][1] += fp
            totals[t][2] += fn
    return [tuple(t) for t in totals]  # type: ignore[misc]


def _greedy_once(ious: list[list[float]], n_refs: int, low: float, high: float) -> tuple[int, int, int, bool]:
    """:func:`greedy_counts` at ``low``, plus whether its decisions hold for every threshold up to ``high``."""
    matched: set[int] = set()
    tp = 0
    stable = True
    for row in ious:
        best, best_j = 0.0, -1
        for j, value in enumerate(row):
            if j not in matched and value > best:
                best, best_j = value, j
        if best > low:
            matched.add(best_j)
            tp += 1
            stable = stable and best > high
    return tp, len(ious) - tp, n_refs - len(matched), stable


def prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """Micro precision, recall and F1 from summed counts; each is 0.0 when its denominator is 0 (Q25)."""
    p = tp / (tp + fp) if tp + fp > 0 else 0.0
    r = tp / (tp + fn) if tp + fn > 0 else 0.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f
