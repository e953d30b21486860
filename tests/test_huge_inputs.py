"""Huge and special inputs: a record too big for a path, the model's context or the training cutoff is refused with
its file and index while the run goes on; a question file that is not a regular file is never opened.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from PIL import Image
from scripts import load_script

from mevlip.flare import validate_question, validate_record

LONG_NAME = "imagesTr/" + "x" * 5000 + ".png"
HUGE_QUESTION = "Which class is shown? " + "word " * 40000  # about 120k tokens: four times a 32k context


def _root(tmp_path: Path) -> Path:
    folder = tmp_path / "root" / "training" / "Xray" / "ds"
    (folder / "imagesTr").mkdir(parents=True)
    Image.new("RGB", (8, 8), "white").save(folder / "imagesTr" / "a.png")
    base = {"TaskType": "Classification", "Modality": "X-ray", "Answer": "A", "Split": "train"}
    records = [{**base, "ImageName": "imagesTr/a.png", "Question": "Which class? A or B"},
               {**base, "ImageName": LONG_NAME, "Question": "Which class? A or B, again"},
               {**base, "ImageName": "imagesTr/a.png", "Question": HUGE_QUESTION}]
    (folder / "ds_questions_train.json").write_text(json.dumps(records))
    os.mkfifo(folder / "stuck_questions_train.json")  # opening it for reading would wait for ever
    return tmp_path / "root"


def test_a_name_longer_than_a_file_name_is_a_record_problem():
    for check in (validate_question, lambda r: validate_record({**r, "TaskType": "Counting", "Modality": "X",
                                                                     "Answer": "1", "Split": "val"})):
        reason = check({"ImageName": LONG_NAME, "Question": "Q?"})
        assert reason == ("ImageName 'imagesTr/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... is 5,013 bytes, longer than a "
                          "file name can be (a part at most 255 bytes, the path 4096)")
        assert check({"ImageName": "a/" * 2100 + "b.png", "Question": "Q?"}).endswith("the path 4096)")
        # the limit is in bytes: 126 two-byte letters and ".png" are 256 bytes in 130 characters
        assert check({"ImageName": "d/" + "é" * 126 + ".png", "Question": "Q?"}).endswith("the path 4096)")
        assert check({"ImageName": "d/" + "é" * 125 + ".png", "Question": "Q?"}) is None  # 254 bytes


def test_data_preparation_skips_each_and_prepares_the_rest(tmp_path):
    root, out = _root(tmp_path), tmp_path / "out"
    stats = load_script("llama_factory_internvl/scripts/data_preparation.py").main(
        ["--base_dataset_path", str(root), "--output_dir", str(out), "--workers", "1", "--no_progress"])
    skipped = {(s["file"].split("/")[-1], s["index"]): (s["kind"], s["reason"])
               for s in stats["parts"]["train"]["skipped"]}
    assert skipped[("ds_questions_train.json", 1)][0] == "invalid record"
    assert "longer than a file name can be" in skipped[("ds_questions_train.json", 1)][1]
    assert skipped[("ds_questions_train.json", 2)][0] == "over cutoff_len"
    assert skipped[("ds_questions_train.json", 2)][1].endswith("over --cutoff_len 2048")
    assert skipped[("stuck_questions_train.json", -1)] == (
        "unreadable file", f"{root}/training/Xray/ds/stuck_questions_train.json: not a regular file; skipped")
    rows = json.loads((out / "flare" / "train" / "classification.json").read_text())
    assert [r["index"] for r in rows] == [0]
    assert stats["parts"]["train"]["records"]["used"] == 1


def test_inference_refuses_each_and_answers_the_rest_in_bounded_memory(tmp_path, standin_dir):
    root, out = _root(tmp_path), tmp_path / "out"
    summary = load_script("docker_internvl/inference.py").main([
        "--base_dataset_path", str(root), "--splits", "training", "--output_dir", str(out), "--device", "cpu",
        "--routing", "record", "--base_model", str(standin_dir), "--max_new_tokens", "3", "--no_progress"])
    details = [json.loads(x) for x in (out / "predictions.details.jsonl").read_text().splitlines()]
    assert [d["record_index"] for d in details] == [0, 1, 2] and summary["errors"] == 2
    assert details[0]["error"] is None
    assert "longer than a file name can be" in details[1]["error"]
    assert details[2]["error"].endswith("over the model's context of 32,768 tokens; not answered")
    assert "stuck_questions_train.json" in str(summary["skipped_inputs"])  # the FIFO, named, never opened
