"""Constant-baseline cases the mutation run (``make mutation``, docs/mutation.md) showed untested.

Every constant is worked out by hand from a crafted training split (counts, means and medians written next to the
numbers); predictions are checked record by record and the written file byte by byte.
"""

import json

import pytest

from mevlip.baselines import fit_constants, main, predict
from mevlip.flare import FlareDataError


def _write(root, split, dataset, task_type, answers, kind="train", with_gt=False, questions=None):
    folder = root / split / "Category" / dataset
    folder.mkdir(parents=True, exist_ok=True)
    records = [{"ImageName": f"images/{i}.png", "Question": (questions or [f"Q{i}?"] * len(answers))[i], "Answer": a,
                "TaskType": task_type, "Modality": "X-ray", "Split": kind} for i, a in enumerate(answers)]
    name = f"{dataset}_questions_{kind}{'_withGT' if with_gt else ''}.json"
    (folder / name).write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return records


def test_majority_answer_of_every_text_task_and_empty_answers_are_not_votes(tmp_path):
    _write(tmp_path, "training", "dental", "Multi-label Classification", ["A; B", "C", "A; B"])
    _write(tmp_path, "training", "iu", "Report_Generation", ["Effusion.", "Normal.", "Normal."])
    _write(tmp_path, "training", "busi", "Classification", ["B", "", "", "A"])  # two blank answers are skipped
    assert fit_constants(tmp_path) == {("busi", "classification"): "B",
                                       ("dental", "multi_label_classification"): "A; B",
                                       ("iu", "report_generation"): "Normal."}


def test_unparsable_training_answers_give_zero_and_no_box(tmp_path):
    _write(tmp_path, "training", "cells", "Counting", ["many", "few"])
    _write(tmp_path, "training", "abr", "Regression", ["high"])
    _write(tmp_path, "training", "det", "Detection", ["no lesion", "none"])
    assert fit_constants(tmp_path) == {("abr", "regression"): "0.0", ("cells", "counting"): "0",
                                       ("det", "detection"): "[]"}


def test_instance_constant_by_hand(tmp_path):
    _write(tmp_path, "training", "chromo", "instance_detection", [
        '{"1": [[0, 0, 10, 10]], "2": [[0, 0, 2, 2], [4, 4, 6, 6]]}',
        '{"1": [[10, 10, 20, 20]]}',
        "no chromosomes",  # not an instance answer: contributes nothing
        '{"1": [[2, 2, 4, 4]], "2": [[0, 0, 2, 2]]}'])
    # id 1: mean of 3 boxes (4, 4, 11.33, 11.33), median count 1; id 2: mean (1.33, 1.33, 3.33, 3.33) of 3 boxes,
    # counts [2, 1] -> median 1.5 -> round() -> 2 copies
    assert json.loads(fit_constants(tmp_path)[("chromo", "instance_detection")]) == {
        "1": [[4, 4, 11, 11]], "2": [[1, 1, 3, 3], [1, 1, 3, 3]]}


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "flare"
    _write(root, "training", "busi", "Classification", ["B", "B", "A"])
    _write(root, "validation-public", "busi", "Classification", ["", ""], kind="val", questions=["Q é?", "Q2?"])
    _write(root, "validation-hidden", "busi", "Classification", [""], kind="val")
    _write(root, "validation-hidden", "busi", "Classification", ["A"], kind="val", with_gt=True)
    _write(root, "validation-public", "unseen", "Counting", [""], kind="val")  # no training data: empty answer
    _write(root, "validation-hidden", "gt_only", "Counting", ["3"], kind="val", with_gt=True)  # never an input
    return root


def test_predict_answers_the_blank_files_of_the_splits_asked(root):
    constants = fit_constants(root)
    preds = predict(constants, root)
    assert [(p["Question"], p["Answer"], p["Split"]) for p in preds] == [
        ("Q é?", "B", "val"), ("Q2?", "B", "val"), ("Q0?", "", "val"), ("Q0?", "B", "val")]
    # the order: validation-public (busi, unseen), then validation-hidden (busi's blank file only)
    assert [p["ImageName"] for p in preds] == ["images/0.png", "images/1.png", "images/0.png", "images/0.png"]
    assert predict(constants, root, ("training", "validation-hidden")) == [preds[3]]  # training files are skipped
    assert predict(constants, root, ("validation-public",)) == preds[:3]


def test_unreadable_question_file_is_named(root):
    path = root / "validation-public" / "Category" / "busi" / "busi_questions_val.json"
    path.write_text("[{", encoding="utf-8")
    with pytest.raises(FlareDataError, match=r"busi_questions_val.json: cannot read questions \(JSONDecodeError: "):
        predict(fit_constants(root), root)


def test_main_writes_the_file_as_documented(root, tmp_path, capsys):
    out = tmp_path / "new" / "dir" / "p.json"
    preds = main(["--base_dataset_path", str(root), "--output_file", str(out), "--splits", "validation-public"])
    assert len(preds) == 3
    first = ('[\n  {\n    "ImageName": "images/0.png",\n    "Question": "Q é?",\n    "Answer": "B",\n'
             '    "TaskType": "Classification",\n    "Modality": "X-ray",\n    "Split": "val"\n  },\n')
    assert out.read_text(encoding="utf-8").startswith(first) and out.read_text(encoding="utf-8").endswith("}\n]\n")
    assert capsys.readouterr().out == f"wrote 3 constant predictions (1 dataset/task constants) to {out}\n"
