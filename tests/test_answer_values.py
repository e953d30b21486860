"""Answer values JSON allows but no task's answer can be: reported per record, never stringified or dropped unsaid.

Data preparation skips such a training record and lists it with its reason; evaluation lists such a reference in
``gt_problems``, counts it, and scores without it (its prediction is neither unknown nor missing).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from mevlip.answers import answer_value_problem

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("task,value,problem", [
    ("counting", 3, None), ("regression", 20.5, None), ("classification", "A", None),
    ("detection", [[1, 2, 3, 4]], None), ("multi_label_classification", ["Caries", "Impacted tooth"], None),
    ("instance_detection", {"1": [[1, 2, 3, 4]]}, None),
    ("counting", math.nan, "Answer is not a finite number (nan)"),
    ("counting", json.loads("1e309"), "Answer is not a finite number (inf)"),
    ("regression", -math.inf, "Answer is not a finite number (-inf)"),
    ("classification", True, "Answer is true, not an answer"),
    ("counting", None, "Answer is null, not an answer"),
    ("classification", ["A"], "Answer is a list, which a classification answer cannot be"),
    ("detection", [1, 2], "Answer is a list, which a detection answer cannot be"),
    ("multi_label_classification", [], None),  # empty: reported as an empty answer by the caller
    ("multi_label_classification", ["a", 3], "Answer is a list, which a multi_label_classification answer cannot be"),
    ("report_generation", {"finding": "x"}, "Answer is an object, which a report_generation answer cannot be"),
])
def test_answer_value_problems(task, value, problem):
    assert answer_value_problem(task, value) == problem


def _training_root(tmp_path: Path, records: list[dict]) -> Path:
    from PIL import Image

    folder = tmp_path / "root" / "training" / "Xray" / "ds"
    (folder / "imagesTr").mkdir(parents=True)
    Image.new("RGB", (8, 8), "white").save(folder / "imagesTr" / "a.png")
    full = [{"Modality": "X-ray", "Split": "train", "ImageName": "imagesTr/a.png", **r} for r in records]
    (folder / "ds_questions_train.json").write_text(json.dumps(full, allow_nan=True))
    return tmp_path / "root"


def test_data_preparation_skips_and_lists_unusable_answers(tmp_path):
    from mevlip.prepare import PrepareConfig, prepare

    records = [
        {"Question": "How many? 0", "Answer": 3, "TaskType": "Counting"},  # a JSON number: the count "3"
        {"Question": "Which? 1", "Answer": ["A"], "TaskType": "Classification"},
        {"Question": "Which? 2", "Answer": {"a": 1}, "TaskType": "Classification"},
        {"Question": "Which? 3", "Answer": True, "TaskType": "Classification"},
        {"Question": "How many? 4", "Answer": math.inf, "TaskType": "Counting"},
        {"Question": "How many? 5", "Answer": -math.inf, "TaskType": "Regression"},
        {"Question": "How many? 6", "Answer": math.nan, "TaskType": "Counting"},
        {"Question": "Which? 7", "Answer": "B", "TaskType": "Classification"},
    ]
    root = _training_root(tmp_path, records)
    out = tmp_path / "out"
    stats = prepare(PrepareConfig(str(root), str(out), workers=1))
    rows = {t: json.loads((out / "flare" / "train" / f"{t}.json").read_text()) for t in ("counting", "classification")}
    assert [r["conversations"][1]["value"] for r in rows["counting"]] == ["3"]
    assert [r["conversations"][1]["value"] for r in rows["classification"]] == ["B"]
    skipped = {s["index"]: (s["kind"], s["reason"]) for part in stats["parts"].values() for s in part["skipped"]}
    assert skipped == {
        1: ("unusable answer", "Answer is a list, which a classification answer cannot be"),
        2: ("unusable answer", "Answer is an object, which a classification answer cannot be"),
        3: ("unusable answer", "Answer is true, not an answer"),
        4: ("unusable answer", "Answer is not a finite number (inf)"),
        5: ("unusable answer", "Answer is not a finite number (-inf)"),
        6: ("unusable answer", "Answer is not a finite number (nan)"),
    }


def test_evaluation_lists_unscorable_references_and_scores_without_them(mini_flare_tiny, tmp_path):
    import shutil

    sys.path.insert(0, str(REPO / "evaluation"))
    import evaluation

    root = tmp_path / "gt"
    shutil.copytree(Path(mini_flare_tiny) / "validation-public", root / "validation-public")
    [path] = [p for p in root.rglob("*_questions_val.json")
              if any(r["TaskType"].lower().endswith("counting") for r in json.loads(p.read_text()))][:1]
    data = json.loads(path.read_text())
    counting = [i for i, r in enumerate(data) if r["TaskType"].lower().endswith("counting")]
    assert len(counting) >= 3
    data[counting[0]]["Answer"] = math.nan  # JSON NaN
    data[counting[1]]["Answer"] = "nan"  # a text with no finite number
    path.write_text(json.dumps(data, allow_nan=True))
    predictions = []
    for qfile in root.rglob("*_questions_val.json"):
        predictions += [{**r, "Answer": "5"} for r in json.loads(qfile.read_text())]
    (tmp_path / "p.json").write_text(json.dumps(predictions, allow_nan=True))
    out = tmp_path / "out"
    assert evaluation.main(["--base_dataset_path", str(root), "--prediction_file", str(tmp_path / "p.json"),
                            "--output_dir", str(out), "--splits", "validation-public", "--bootstrap", "0"]) == 0
    results = json.loads((out / "metrics_predictions.json").read_text())
    problems = results["matching"]["gt_problems"]
    assert problems["count"] == 2
    assert problems["items"] == [
        f"{path} record {counting[0]}: Answer is not a finite number (nan); not scored",
        f"{path} record {counting[1]}: Answer 'nan' holds no finite number to measure an error against; not scored"]
    assert results["matching"]["unknown_keys"]["count"] == 0 and results["matching"]["missing_keys"]["count"] == 0
    n_counting = sum(1 for p in predictions if p["TaskType"].lower().endswith("counting"))
    assert results["primary_metrics"]["counting"]["n"] == n_counting - 2


def test_a_training_record_needs_no_split_or_modality(tmp_path):
    """Neither field is read by any stage (the original converter read question, answer and image only)."""
    from mevlip.prepare import PrepareConfig, prepare

    root = _training_root(tmp_path, [{"Question": "Which? A or B", "Answer": "B", "TaskType": "Classification"}])
    path = root / "training" / "Xray" / "ds" / "ds_questions_train.json"
    records = json.loads(path.read_text())
    path.write_text(json.dumps([{k: v for k, v in r.items() if k not in ("Split", "Modality")} for r in records]))
    stats = prepare(PrepareConfig(str(root), str(tmp_path / "out"), workers=1))
    rows = json.loads((tmp_path / "out" / "flare" / "train" / "classification.json").read_text())
    assert [r["conversations"][1]["value"] for r in rows] == ["B"] and not stats["parts"]["train"]["skipped"]
