"""IoU and the organisers' prediction-order greedy matcher, on cases worked out by hand."""

import pytest

from mevlip.metrics.matching import INSTANCE_THRESHOLDS, iou, match_boxes, match_instances, prf


def test_iou_hand_values():
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0  # touching edges: zero-area intersection
    assert iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
    assert iou([5, 5, 5, 5], [5, 5, 5, 5]) == 0.0  # union 0
    assert iou([0, 0, 10], [0, 0, 10, 10]) == 0.0  # malformed box
    assert iou([0, 0, 10**400, 1], [0, 0, 1, 1]) == 0.0  # overflow -> 0, as Q25's try/except


def test_iou_exactly_half_is_not_a_match():
    # [0,0,10,10] vs [0,0,10,20]: inter 100, union 200 -> IoU 0.5, and the rule is strictly greater than 0.5
    assert iou([0, 0, 10, 10], [0, 0, 10, 20]) == 0.5
    assert match_boxes([[0, 0, 10, 10]], [[0, 0, 10, 20]], 0.5) == (0, 1, 1)
    assert match_boxes([[0, 0, 10, 10]], [[0, 0, 10, 19]], 0.5) == (1, 0, 0)  # IoU 100/190 > 0.5


def test_prediction_order_greedy_three_boxes():
    # refs R0=[0,0,10,10], R1=[4,0,14,10]. P0=[2,0,12,10] overlaps R0 (IoU 8/12) and R1 (IoU 8/12): tie -> R0.
    # P1=[1,0,11,10] (IoU with R0 9/11, with R1 7/13) arrives second, finds R0 taken, R1 at 7/13 > 0.5 -> TP.
    refs = [[0, 0, 10, 10], [4, 0, 14, 10]]
    assert match_boxes([[2, 0, 12, 10], [1, 0, 11, 10]], refs) == (2, 0, 0)
    # A third prediction finds both taken: FP.
    assert match_boxes([[2, 0, 12, 10], [1, 0, 11, 10], [0, 0, 10, 10]], refs) == (2, 1, 0)
    # Order matters: P=[3,0,13,10] first takes R1 (IoU R0 7/13, R1 9/11); then [4,0,14,10] finds R1 taken and R0
    # at 6/14 <= 0.5 -> FP, and R0 stays unmatched -> FN. Reversed, [4,0,14,10] takes R1 (IoU 1) and
    # [3,0,13,10] still gets R0 at 7/13 > 0.5.
    assert match_boxes([[3, 0, 13, 10], [4, 0, 14, 10]], refs) == (1, 1, 1)
    assert match_boxes([[4, 0, 14, 10], [3, 0, 13, 10]], refs) == (2, 0, 0)


def test_empty_sides():
    assert match_boxes([], [[0, 0, 1, 1], [2, 2, 3, 3]]) == (0, 0, 2)
    assert match_boxes([[0, 0, 1, 1]], []) == (0, 1, 0)
    assert match_boxes([], []) == (0, 0, 0)


def test_instances_match_within_ids_only():
    refs = {"1": [[0, 0, 10, 10], [20, 0, 30, 10]], "X": [[40, 0, 50, 10]]}
    preds = {"1": [[20, 0, 30, 10]], "2": [[0, 0, 10, 10]], "X": [[40, 0, 50, 16]]}  # X: IoU 100/160 = 0.625
    counts = dict(zip(INSTANCE_THRESHOLDS, match_instances(preds, refs), strict=True))
    # id 1: one TP, one FN; id 2: one FP (its box equals a ref of id 1 but ids differ); X: TP while t < 0.625
    assert counts[0.5] == (2, 1, 1)
    assert counts[0.6] == (2, 1, 1)
    assert counts[0.7] == (1, 2, 2)
    assert match_instances({}, refs)[0] == (0, 0, 3)
    assert match_instances({"1": "garbage"}, {"1": [[0, 0, 1, 1]]})[0] == (0, 0, 1)
    assert match_instances({"x": [[0, 0, 1, 1]]}, {"X": [[0, 0, 1, 1]]})[0] == (0, 1, 1)  # case-sensitive ids


def test_prf_zero_denominators():
    assert prf(0, 0, 0) == (0.0, 0.0, 0.0)
    assert prf(2, 2, 0) == (0.5, 1.0, pytest.approx(2 / 3))


def test_instance_matching_shortcut_equals_per_threshold_greedy():
    import random

    rng = random.Random(0)

    def box():
        x, y = rng.randint(0, 40), rng.randint(0, 40)
        return [x, y, x + rng.randint(0, 12), y + rng.randint(0, 12)]

    def jitter(b):
        return [v + rng.randint(-3, 3) for v in b]

    for _ in range(300):
        refs = {k: [box() for _ in range(rng.randint(0, 3))] for k in "12XY" if rng.random() < 0.8}
        preds = {k: [jitter(b) for b in v if rng.random() < 0.8] + [box() for _ in range(rng.randint(0, 1))]
                 for k, v in refs.items()}
        expected = []
        for t in INSTANCE_THRESHOLDS:
            counts = [match_boxes(preds.get(k, []), refs.get(k, []), t) for k in set(refs) | set(preds)]
            expected.append(tuple(sum(c[i] for c in counts) for i in range(3)))
        assert match_instances(preds, refs) == expected
