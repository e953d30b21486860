"""Per-sample scoring: each documented strict-vs-flare25 difference, and garbage that must never crash."""

import math

import pytest

from mevlip.metrics.profiles import STRICT_DIFFERENCES, score_flare25, score_sample, score_strict
from mevlip.tasks import TASK_NAMES

COMMA = "Endodontic Treatment, Restorative Treatment, and Complications"


@pytest.mark.parametrize("prediction,target,flare25,strict", [
    ("F", "F", True, True),
    ("F. Segmented neutrophil", "F", False, True),  # letters beyond E
    ("Luminal b", "Luminal b", False, True),  # CMMD class word vs itself
    ("Triple negative", "Triple negative", False, True),
    ("luminal B", "Luminal b", False, True),
    ("Malignant", "Malignant", True, True),
    ("T", "T", True, True),  # endo label bug: GT-as-prediction still matches
    ("A large mass is seen. Answer: C", "C", True, True),
    ("", "A", False, False),
    (None, "A", False, False),
])
def test_classification_profiles(prediction, target, flare25, strict):
    assert score_flare25("classification", prediction, target)["correct"] is flare25
    assert score_strict("classification", prediction, target)["correct"] is strict


def test_multilabel_comma_label_and_case():
    same = score_flare25("multi_label_classification", COMMA, COMMA)
    assert same["f1"] == 1.0 and len(same["target"]) == 3  # flare25: three pieces on both sides
    part_f, part_s = (score("multi_label_classification", "Endodontic Treatment", COMMA)
                      for score in (score_flare25, score_strict))
    assert part_f["f1"] == pytest.approx(0.5)  # P 1, R 1/3
    assert part_s["f1"] == 0.0 and part_s["target"] == [COMMA.casefold()]
    assert score_flare25("multi_label_classification", "dental caries", "Dental Caries")["f1"] == 0.0
    assert score_strict("multi_label_classification", "dental caries", "Dental Caries")["f1"] == 1.0
    assert math.isnan(score_strict("multi_label_classification", "x", "")["f1"])


def test_detection_readers():
    ref = "[[10, 20, 30, 40]]"
    assert score_flare25("detection", "[10.2, 20.1, 30.4, 39.6]", ref)["tp"] == 0  # decimals misread
    assert score_strict("detection", "[10.2, 20.1, 30.4, 39.6]", ref)["tp"] == 1
    assert score_strict("detection", [[10, 20, 30, 40]], ref)["tp"] == 1  # a JSON list as the Answer
    assert score_flare25("detection", [[10, 20, 30, 40]], ref)["tp"] == 1
    unparsable = score_strict("detection", "I cannot see it", "[[1, 2, 3, 4], [5, 6, 7, 8]]")
    assert (unparsable["tp"], unparsable["fp"], unparsable["fn"]) == (0, 0, 2)


def test_instance_readers():
    ref = '{"1": [[0, 0, 10, 10]]}'
    wrapped = 'Sure! {"1": [[0, 0, 10, 10]]}'
    assert score_flare25("instance_detection", wrapped, ref)["counts"][2] == (0, 0, 1)
    assert score_strict("instance_detection", wrapped, ref)["counts"][2] == (1, 0, 0)
    assert score_flare25("instance_detection", {"1": [[0, 0, 10, 10]]}, ref)["counts"][2] == (1, 0, 0)


def test_numbers():
    assert score_flare25("counting", "about 35 cells visible", "40")["abs_error"] == 5
    assert math.isnan(score_flare25("counting", "no idea", "40")["abs_error"])  # dropped
    assert score_strict("counting", "no idea", "40")["abs_error"] == 40  # predicted 0
    assert score_strict("counting", "1e8", "40", error_cap=10_000)["abs_error"] == 10_000
    assert score_flare25("counting", "9" * 400, "40")["abs_error"] == math.inf  # float() overflow: inf
    assert score_strict("regression", 20.0, "20.0")["abs_error"] == 0.0  # a JSON number as the Answer
    assert score_flare25("regression", 20.5, "20.0")["abs_error"] == 0.5


def test_report_empty_prediction():
    ref = "Degenerative changes of the spine."
    assert score_flare25("report_generation", "", ref)["green_flare25_rule"] == pytest.approx(0.885)
    assert score_strict("report_generation", "", ref)["green_flare25_rule"] == 0.0
    both = [score("report_generation", "Answer: " + ref, ref) for score in (score_flare25, score_strict)]
    assert both[0]["green_flare25_rule"] == pytest.approx(0.9)  # flare25 keeps what follows "Answer:"
    assert both[1]["parsed"].startswith("Answer:")


_GARBAGE = ["", " ", None, 0, -1, 1e308, float("nan"), float("inf"), True, [], {}, [1, 2], {"a": [1, 2, 3, 4]},
            "[[1, 2, 3", "{\"1\": [[1, 2, 3, 4]]", "9" * 5000, "1e999", "-" * 10000, "[" * 3000, "{" * 3000,
            "\x00\ud800", "A" * 100000, [[1, 2, 3, 4]] * 50, {"1": "x", "2": [None]}, [[float("nan")] * 4]]


@pytest.mark.parametrize("task", TASK_NAMES)
@pytest.mark.parametrize("profile", ["flare25", "strict"])
def test_garbage_predictions_never_crash(task, profile):
    targets = {"classification": "B", "multi_label_classification": "Dental Caries; Pulp Diseases",
               "detection": "[[1, 2, 30, 40]]", "instance_detection": '{"1": [[1, 2, 30, 40]]}', "counting": "12",
               "regression": "20.0", "report_generation": "No pleural effusion."}
    for garbage in _GARBAGE:
        value = score_sample(profile, task, garbage, targets[task])
        assert {"parsed", "target", "scored"} <= set(value)


def test_unknown_profile():
    with pytest.raises(ValueError, match="unknown profile"):
        score_sample("nope", "classification", "A", "A")
    assert len(STRICT_DIFFERENCES) == 7
