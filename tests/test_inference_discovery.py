"""Which inputs inference answers: question files at any depth, records with only a question and an image.

The inputs here are laid out as the organisers' test folder might be, not as mini-FLARE writes them: flat folders,
dataset folders, deeper trees, JSON files that are not questions, records missing the keys answering does not need.
Expected orders and counts are worked out from the rules (the original walked the folder and answered every record
with an ``ImageName`` and a ``Question``), not from the code under test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from mevlip.device import DeviceError, resolve_device
from mevlip.flare import validate_question
from mevlip.inference.discovery import find_question_files
from mevlip.inference.run import GENERAL_ADAPTER, Item, Route, plan, route_items
from mevlip.tasks import TASKS


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)


def _questions(path: Path, records: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))


def _rec(image: str, question: str = "Which class? A or B", **extra) -> dict:
    return {"ImageName": image, "Question": question, **extra}


def _rel(root: Path, paths) -> list[str]:
    return [Path(p).relative_to(root).as_posix() for p in paths]


def test_question_files_are_found_at_every_depth_in_path_order(tmp_path):
    root = tmp_path / "in"
    for rel in ["q.json", "DS/DS_questions_test.json", "Xray/DS2/DS2_questions_test.json",
                "testing/Xray/DS3/DS3_questions_test.json", "a/b/c/d/e/deep.json"]:
        _questions(root / rel, [_rec("x.png")])
    found = find_question_files(root)
    # split folders first (testing), then everything else by path; a file directly in the root sorts by its name
    assert _rel(root, [f.path for f in found.files]) == [
        "testing/Xray/DS3/DS3_questions_test.json", "DS/DS_questions_test.json", "Xray/DS2/DS2_questions_test.json",
        "a/b/c/d/e/deep.json", "q.json"]
    assert [f.rel_dir.as_posix() for f in found.files][-2:] == ["a/b/c/d/e", "."]
    assert not found.skipped and not found.errors


def test_the_public_layout_keeps_the_split_order(tmp_path):
    # the FLARE split order (validation-public before validation-hidden before testing), not the alphabetical one
    root = tmp_path / "in"
    for split in ["testing", "validation-hidden", "validation-public"]:
        _questions(root / split / "Xray" / "D" / "D_questions_val.json", [_rec("x.png")])
    assert [f.path.parts[-4] for f in find_question_files(root).files] == [
        "validation-public", "validation-hidden", "testing"]


def test_what_is_not_a_question_file_is_skipped_and_named(tmp_path):
    root = tmp_path / "in"
    _questions(root / "D" / "D_questions_test.json", [_rec("x.png")])
    (root / "dataset_info.json").write_text(json.dumps({"flare": {"file_name": "x.json"}}))
    (root / "labels.json").write_text(json.dumps([{"label": "cat"}]))
    (root / "numbers.json").write_text("[1, 2, 3]")
    (root / "empty.json").write_text("[]")  # a question list with nothing to answer
    (root / "broken.json").write_text("[{")
    (root / ".hidden").mkdir()
    _questions(root / ".hidden" / "q.json", [_rec("x.png")])
    _questions(root / "._D_questions_test.json", [_rec("x.png")])  # a macOS resource fork beside the data
    os.mkfifo(root / "fifo.json")  # reading it would block for ever
    found = find_question_files(root)
    assert _rel(root, [f.path for f in found.files]) == ["D/D_questions_test.json", "empty.json"]
    skipped = {Path(k).relative_to(root).as_posix(): v for k, v in found.skipped.items()}
    assert skipped == {
        ".hidden": "hidden folder, not searched",
        "._D_questions_test.json": "hidden file",
        "dataset_info.json": "not a question file (a JSON dict, not a list of records)",
        "fifo.json": "not a regular file",
        "labels.json": "not a question file (no record has Question or ImageName)",
        "numbers.json": "not a question file (no record has Question or ImageName)"}
    assert list(found.errors) == [str(root / "broken.json")] and "cannot read as JSON" in found.errors[
        str(root / "broken.json")]


def test_a_withgt_file_is_answered_once(tmp_path):
    root = tmp_path / "in"
    _questions(root / "A" / "A_questions_test.json", [_rec("x.png")])
    _questions(root / "A" / "A_questions_test_withGT.json", [_rec("x.png", Answer="B")])
    _questions(root / "B" / "B_questions_test_withGT.json", [_rec("y.png", Answer="C")])  # alone: the input
    found = find_question_files(root)
    assert _rel(root, [f.path for f in found.files]) == ["A/A_questions_test.json", "B/B_questions_test_withGT.json"]
    assert found.skipped == {str(root / "A" / "A_questions_test_withGT.json"):
                             "ground-truth twin of A_questions_test.json, which is answered instead"}


def test_outputs_training_and_links(tmp_path):
    root = tmp_path / "in"
    _questions(root / "training" / "X" / "T" / "T_questions_train.json", [_rec("t.png")])
    _questions(root / "testing" / "X" / "D" / "D_questions_test.json", [_rec("x.png")])
    _questions(root / "out" / "predictions.json", [_rec("x.png", Answer="B")])  # an output folder inside the input
    _questions(root / "old" / "predictions.json", [_rec("x.png", Answer="B")])  # an older run's output
    (root / "old" / "predictions.details.jsonl").write_text("{}\n")
    (root / "testing" / "X" / "loop").symlink_to(root / "testing", target_is_directory=True)  # a cycle
    found = find_question_files(root, exclude=[root / "out"])
    assert _rel(root, [f.path for f in found.files]) == ["testing/X/D/D_questions_test.json"]
    skipped = {Path(k).relative_to(root).as_posix(): v for k, v in found.skipped.items()}
    assert skipped["training"] == "training split, not answered (--splits training answers it)"
    assert skipped["out"] == "this run's output or image folder, not searched"
    assert skipped["old/predictions.json"].startswith("a predictions file written by inference")
    # --splits names the split folders to walk, training included when asked
    only = find_question_files(root, ["training"])
    assert _rel(root, [f.path for f in only.files]) == ["training/X/T/T_questions_train.json"]
    with pytest.raises(ValueError, match="unknown split 'test'"):
        find_question_files(root, ["test"])
    with pytest.raises(FileNotFoundError, match="^dataset root .*nowhere does not exist"):
        find_question_files(root / "nowhere")


def test_a_record_needs_only_an_image_and_a_question():
    assert validate_question({"ImageName": "a.png", "Question": "Q?"}) is None
    assert validate_question({"Question": "Q?", "ImageName": ["a.png", "b.png"], "TaskType": 5}) is None
    assert validate_question({"ImageName": "a.png"}) == "missing field(s) Question"
    assert validate_question({"Question": "Q?"}) == "missing field(s) ImageName"
    assert validate_question({"ImageName": "a.png", "Question": "  "}) == "Question must be a non-empty string"
    assert validate_question({"ImageName": "../a.png", "Question": "Q?"}).startswith("ImageName '../a.png' leaves")
    assert validate_question({"ImageName": [], "Question": "Q?"}) == "ImageName list must hold non-empty strings"
    assert validate_question(["a.png", "Q?"]) == "expected a JSON object, got list"
    assert validate_question({"ImageName": "a.png", "Question": "Q\ud800?"}) == (
        "Question holds a lone surrogate (not valid Unicode text)")


SPELLINGS = sorted({s for spec in TASKS.values() for s in spec.spellings})


def test_plan_answers_records_of_any_spelling_and_without_task_type(tmp_path):
    root = tmp_path / "in"
    _png(root / "flat" / "imagesTs" / "a.png")
    records = [_rec("imagesTs/a.png", TaskType=s) for s in SPELLINGS]  # every spelling in the data
    records += [_rec("a.png", f"bare name {i}") for i in range(2)]  # no TaskType, a bare image name
    records += [{"TaskType": "Segmentation", "Question": "Unknown?", "ImageName": "imagesTs/a.png", "Extra": 1},
                {"TaskType": "Counting", "ImageName": "imagesTs/a.png"}]  # unknown type; no question
    _questions(root / "flat" / "q.json", records)
    the_plan = plan(root)
    assert len(the_plan.items) == len(records)
    assert [i.error for i in the_plan.items[:-1]] == [None] * (len(records) - 1)
    assert the_plan.items[-1].error.endswith(f"record {len(records) - 1}: missing field(s) Question")
    assert [i.task for i in the_plan.items[:len(SPELLINGS)]] == [
        next(name for name, spec in TASKS.items() if s in spec.spellings) for s in SPELLINGS]
    assert [i.task for i in the_plan.items[len(SPELLINGS):-1]] == [None, None, None]
    assert the_plan.items[-2].task_type == "Segmentation"  # kept for the original preset's parser
    image = str(root / "flat" / "imagesTs" / "a.png")
    assert all(i.images == [image] for i in the_plan.items[:-1])
    # routing by record: no task, no task adapter; the general adapter answers
    routes = route_items(the_plan.items, "record")
    assert [routes[i.index].adapter for i in the_plan.items[len(SPELLINGS):-1]] == [GENERAL_ADAPTER] * 3
    assert routes[0] == Route(the_plan.items[0].task, None, TASKS[the_plan.items[0].task].adapter)


def test_plan_excludes_its_scratch_and_output_folders(tmp_path):
    root = tmp_path / "in"
    _png(root / "D" / "x.png")
    _questions(root / "D" / "D_questions_test.json", [_rec("x.png")])
    _questions(root / "run" / "predictions.json", [_rec("x.png", Answer="B")])
    _questions(root / "scratch" / "D" / "leftover.json", [_rec("x.png")])
    the_plan = plan(root, scratch=root / "scratch", exclude=[root / "run"])
    assert list(the_plan.files) == [str(root / "D" / "D_questions_test.json")]
    assert set(the_plan.skipped) == {str(root / "run"), str(root / "scratch")}
    # an output folder that is the input folder itself excludes nothing
    assert list(plan(root, exclude=[root]).files)[0] == str(root / "D" / "D_questions_test.json")


def test_items_keep_their_file_and_record_index(tmp_path):
    root = tmp_path / "in"
    _png(root / "x.png")
    _questions(root / "b.json", [_rec("x.png", "b0"), _rec("x.png", "b1")])
    _questions(root / "a.json", [_rec("x.png", "a0")])
    the_plan = plan(root)
    assert [(Path(i.path).name, i.record_index, i.index, i.question) for i in the_plan.items] == [
        ("a.json", 0, 0, "a0"), ("b.json", 0, 1, "b0"), ("b.json", 1, 2, "b1")]
    assert isinstance(the_plan.items[0], Item)


@pytest.mark.parametrize("spec,count,expected", [("cpu", 0, "cpu"), (" CPU ", 0, "cpu"), ("auto", 2, "cuda:0"),
                                                 ("cuda", 1, "cuda:0"), ("cuda:1", 2, "cuda:1")])
def test_device_resolution(spec, count, expected):
    assert resolve_device(spec, cuda_count=count) == expected


@pytest.mark.parametrize("spec,count,message", [
    ("banana", 1, "--device 'banana' is not a device; use auto, cpu, cuda or cuda:N"),
    ("cuda:x", 1, "is not a device"),
    ("auto", 0, "--device auto: no CUDA GPU is visible"),
    ("cuda:0", 0, "--device cuda:0: no CUDA GPU is visible"),
    ("cuda:2", 2, "--device cuda:2: only 2 CUDA GPU(s) visible (cuda:0 to cuda:1)"),
])
def test_device_refusals_say_what_to_do(spec, count, message):
    with pytest.raises(DeviceError) as err:
        resolve_device(spec, cuda_count=count)
    assert message in str(err.value)
    if count == 0 and "not a device" not in message:
        assert "--device cpu" in str(err.value)


def test_plan_limit_keeps_the_first_records_of_each_file(tmp_path):
    root = tmp_path / "in"
    _png(root / "x.png")
    _questions(root / "a.json", [_rec("x.png", f"a{i}") for i in range(3)])
    _questions(root / "b.json", [_rec("x.png", "b0")])
    the_plan = plan(root, limit=2)
    assert [i.question for i in the_plan.items] == ["a0", "a1", "b0"]
    assert [len(r) for r in the_plan.files.values()] == [2, 1]  # the predictions hold only these
