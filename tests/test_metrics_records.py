"""Matching predictions to ground truth by key: missing, duplicate, unknown and invalid records."""

import json

import pytest

from mevlip.metrics.records import PredictionFileError, Sample, load_predictions, match_predictions


def _gt(key_answers):
    return [Sample(key=f"img{k}.png||Q{k}", dataset="d", split="validation-public", task="classification", target=a)
            for k, a in key_answers]


def _pred(k, answer, **extra):
    return {"ImageName": f"img{k}.png", "Question": f"Q{k}", "Answer": answer, **extra}


def test_matching_by_key_not_by_order():
    gt = _gt([(1, "A"), (2, "B"), (3, "C")])
    match = match_predictions(gt, [_pred(3, "c"), _pred(1, "a"), _pred(2, "b")])
    assert [(s.key, s.prediction, s.status) for s in match.samples] == [
        ("img1.png||Q1", "a", "ok"), ("img2.png||Q2", "b", "ok"), ("img3.png||Q3", "c", "ok")]
    assert match.summary()["n_matched"] == 3


def test_missing_unknown_duplicate_invalid():
    gt = _gt([(1, "A"), (2, "B"), (3, "C")])
    preds = [_pred(1, "a"), _pred(1, "a2"), _pred(9, "z"), ["not", "a", "record"], {"Question": "no image"},
             _pred(3, "c")]
    wrong = match_predictions(gt, preds, "wrong")
    assert wrong.missing_keys == ["img2.png||Q2"] and wrong.unknown_keys == ["img9.png||Q9"]
    assert wrong.duplicate_prediction_keys == ["img1.png||Q1"]
    assert len(wrong.invalid_predictions) == 2 and "record 3" in wrong.invalid_predictions[0]
    assert [(s.prediction, s.status) for s in wrong.samples] == [("a", "ok"), (None, "missing"), ("c", "ok")]
    skip = match_predictions(_gt([(1, "A"), (2, "B"), (3, "C")]), preds, "skip")
    assert [s.key for s in skip.samples] == ["img1.png||Q1", "img3.png||Q3"] and skip.missing_keys == ["img2.png||Q2"]
    summary = wrong.summary()
    assert summary["missing_keys"] == {"count": 1, "items": ["img2.png||Q2"]}
    assert summary["n_gt"] == 3 and summary["n_predictions"] == 6


def test_duplicate_ground_truth_keys_take_predictions_in_occurrence_order():
    # the real hidden set repeats one periapical question (flare_format.md 5)
    gt = _gt([(1, "A"), (1, "B"), (1, "C")])
    match = match_predictions(gt, [_pred(1, "first"), _pred(1, "second")])
    assert [s.prediction for s in match.samples] == ["first", "second", None]
    assert match.duplicate_gt_keys == ["img1.png||Q1"] and match.missing_keys == ["img1.png||Q1"]
    assert match.duplicate_prediction_keys == []


def test_empty_ground_truth_is_listed_not_scored():
    match = match_predictions(_gt([(1, ""), (2, None), (3, "C")]), [_pred(1, "a"), _pred(3, "c")])
    assert [s.key for s in match.samples] == ["img3.png||Q3"]
    assert match.empty_gt_keys == ["img1.png||Q1", "img2.png||Q2"]


def test_list_image_names_use_the_python_repr_key():
    gt = [Sample(key="['a.png', 'b.png']||Q", dataset="d", split="s", task="classification", target="A")]
    match = match_predictions(gt, [{"ImageName": ["a.png", "b.png"], "Question": "Q", "Answer": "A"}])
    assert match.samples[0].status == "ok"


def test_prediction_answer_without_answer_field_is_an_empty_answer():
    match = match_predictions(_gt([(1, "A")]), [{"ImageName": "img1.png", "Question": "Q1"}])
    assert match.samples[0].status == "ok" and match.samples[0].prediction is None


@pytest.mark.parametrize("content,message", [("{not json", "not valid JSON"), ('{"a": 1}', "expected a JSON list"),
                                             ("", "not valid JSON")])
def test_bad_prediction_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "predictions.json"
    path.write_text(content)
    with pytest.raises(PredictionFileError, match=message) as err:
        load_predictions(path)
    assert str(path) in str(err.value)
    with pytest.raises(PredictionFileError, match="not found"):
        load_predictions(tmp_path / "absent.json")


def test_prediction_file_round_trip(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([_pred(1, "A")]))
    assert load_predictions(path) == [_pred(1, "A")]
