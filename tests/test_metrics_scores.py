"""Aggregates against sklearn oracles and hand-computed values; bootstrap weights against explicit resampling."""

import math

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, mean_absolute_error

from mevlip.metrics.profiles import score_flare25, score_strict
from mevlip.metrics.scores import (
    aggregate,
    bootstrap_weights,
    build_columns,
    masked_mean,
    point_weights,
    quantile_ci,
    take,
)

pytestmark = pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")


def _classification_rows(gt, pred):
    return [{"parsed": p, "target": g, "scored": True, "correct": p == g} for g, p in zip(gt, pred, strict=True)]


def _point(task, rows, profile="flare25"):
    cols = build_columns(task, rows)
    return {k: float(v[0]) for k, v in aggregate(task, cols, point_weights(len(rows)), profile).items()}


def test_balanced_accuracy_and_weighted_f1_match_sklearn():
    rng = np.random.default_rng(0)
    labels = np.array(["A", "B", "C", "D", "luminal b", "x"])
    for _ in range(20):
        n = int(rng.integers(1, 60))
        gt = rng.choice(labels[:5], n).tolist()
        pred = np.where(rng.random(n) < 0.6, gt, rng.choice(labels, n)).tolist()
        metrics = _point("classification", _classification_rows(gt, pred))
        assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(gt, pred))
        assert metrics["accuracy"] == pytest.approx(np.mean(np.array(gt) == np.array(pred)))
        assert metrics["f1_weighted"] == pytest.approx(f1_score(gt, pred, average="weighted", zero_division=0))


def test_balanced_accuracy_hand_case():
    # class A: 2 of 3 right, class B: 1 of 1, predicted-only class C adds nothing -> (2/3 + 1) / 2
    metrics = _point("classification", _classification_rows(["A", "A", "A", "B"], ["A", "A", "C", "B"]))
    assert metrics["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)


def test_multilabel_mean_f1_skips_empty_references():
    rows = [score_flare25("multi_label_classification", p, g) for p, g in [
        ("Pneumonia, Nodule", "Pneumonia"),  # P 1/2, R 1 -> F1 2/3
        ("Nodule", "Pneumonia"),  # 0
        ("Normal", ""),  # empty reference: skipped
        ("nodule", "Nodule"),  # case-sensitive: 0
    ]]
    metrics = _point("multi_label_classification", rows)
    assert metrics["f1"] == pytest.approx((2 / 3 + 0 + 0) / 3)
    assert metrics["precision"] == pytest.approx(0.5 / 3) and metrics["recall"] == pytest.approx(1 / 3)
    assert build_columns("multi_label_classification", rows)["scored"].tolist() == [True, True, False, True]


def test_detection_micro_f1():
    rows = [score_flare25("detection", p, g) for p, g in [
        ("[[0, 0, 10, 10]]", "[[0, 0, 10, 10], [20, 20, 30, 30]]"),  # TP 1, FN 1
        ("[[50, 50, 60, 60]]", "[[0, 0, 10, 10]]"),  # FP 1, FN 1
        ("garbage", "[[0, 0, 10, 10]]"),  # unparsable -> FN 1
    ]]
    metrics = _point("detection", rows)
    p, r = 1 / 2, 1 / 4
    assert metrics["precision"] == pytest.approx(p) and metrics["recall"] == pytest.approx(r)
    assert metrics["f1"] == pytest.approx(2 * p * r / (p + r))


def test_instance_average_f1_is_mean_over_thresholds():
    ref = '{"1": [[0, 0, 10, 10]], "2": [[0, 0, 10, 10]]}'
    rows = [score_flare25("instance_detection", '{"1": [[0, 0, 10, 16]], "2": [[0, 0, 10, 10]]}', ref)]
    metrics = _point("instance_detection", rows)  # id 1 has IoU 0.625: TP at 0.3-0.6, not at 0.7
    assert metrics["f1@0.5"] == metrics["f1"] == 1.0 and metrics["f1@0.7"] == pytest.approx(0.5)
    assert metrics["average_f1"] == pytest.approx((4 * 1.0 + 0.5) / 5)


def test_mae_flare25_drops_unparsable_and_is_inf_when_nothing_is_left():
    rows = [score_flare25("counting", p, g) for p, g in [("40", "50"), ("cannot tell", "10"), ("15", "20")]]
    metrics = _point("counting", rows)
    assert metrics["mae"] == pytest.approx(mean_absolute_error([50, 20], [40, 15]))
    assert metrics["rmse"] == pytest.approx(math.sqrt((100 + 25) / 2))
    assert math.isinf(_point("counting", [score_flare25("counting", "?", "10")])["mae"])
    assert math.isinf(_point("regression", [score_flare25("regression", "inf", "10"),
                                            score_flare25("regression", "12", "10")])["mae"])
    assert math.isinf(_point("regression", [score_flare25("regression", "nan", "10")])["mae"])


def test_mae_strict_penalises_and_caps():
    rows = [score_strict("counting", p, g, error_cap=1000) for p, g in [
        ("40", "50"), ("cannot tell", "10"), (None, "30"), ("1e8", "20"), ("1e250", "5")]]
    errors = [10, 10, 30, 1000, 5]  # unparsable/missing/1e250 (>= 1e9) -> predicted 0; 1e8 capped
    assert _point("counting", rows, "strict")["mae"] == pytest.approx(np.mean(errors))


def test_empty_slice_reports_none_not_zero():
    for task, row in [("classification", _classification_rows(["A"], ["A"])[0]),
                      ("counting", score_flare25("counting", "1", "1")),
                      ("detection", score_flare25("detection", "[[0,0,1,1]]", "[[0,0,1,1]]"))]:
        cols = take(build_columns(task, [row]), np.zeros(1, bool))
        values = aggregate(task, cols, point_weights(0), "flare25")
        assert values and all(np.isnan(v).all() for v in values.values())


def test_masked_mean_nan_and_inf():
    W = np.array([[1.0, 1.0, 1.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]])
    x = np.array([np.nan, 2.0, np.inf])
    out = masked_mean(W, x, empty=-1.0)
    assert math.isinf(out[0]) and out[1] == 2.0 and math.isinf(out[2])
    assert masked_mean(np.array([[3.0, 0.0, 0.0]]), x, empty=-1.0)[0] == -1.0


def test_bootstrap_weights_equal_explicit_resampling():
    rng = np.random.default_rng(1)
    n = 40
    gt = rng.choice(["A", "B", "C"], n).tolist()
    pred = np.where(rng.random(n) < 0.5, gt, rng.choice(["A", "B", "C"], n)).tolist()
    cols = build_columns("classification", _classification_rows(gt, pred))
    W = bootstrap_weights(n, 50, np.random.default_rng(7))
    assert W.shape == (50, n) and (W.sum(axis=1) == n).all()
    fast = aggregate("classification", cols, W)["balanced_accuracy"]
    for b in range(50):  # expand each weight row into the resampled list and ask sklearn
        idx = np.repeat(np.arange(n), W[b].astype(int))
        assert fast[b] == pytest.approx(balanced_accuracy_score(np.array(gt)[idx], np.array(pred)[idx]))


def test_quantile_ci():
    assert quantile_ci(np.array([np.nan, np.nan])) is None
    lo, hi = quantile_ci(np.arange(1, 1001, dtype=float))
    assert lo in (25.0, 26.0) and hi in (975.0, 976.0)  # the 2.5% and 97.5% order statistics
    assert quantile_ci(np.array([1.0, np.inf, np.inf, np.inf]))[1] == math.inf
