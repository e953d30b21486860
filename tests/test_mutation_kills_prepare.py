"""Data preparation cases the mutation run (``make mutation``, docs/mutation.md) showed untested; each expected value
is worked out by hand or is a property any correct version has (a staged folder gone after discarding it)."""

import json

import pytest

from mevlip.prepare import core
from mevlip.prepare.io import DATASET_INFO, Staging, update_dataset_info
from mevlip.prepare.stats import TokenCounter


def test_one_worker_per_core_at_least_one_at_most_eight(monkeypatch):
    for cores, workers in ((None, 1), (1, 1), (2, 2), (8, 8), (64, 8)):
        monkeypatch.setattr(core.os, "cpu_count", lambda c=cores: c)
        assert core.default_workers() == workers


def test_discarding_the_staging_folder_removes_it_even_twice(tmp_path):
    staging = Staging(tmp_path)
    staging.path("flare").mkdir(parents=True)
    staging.path("flare/train.json").write_text("[]")
    assert staging.root.is_dir()
    staging.discard()
    assert not staging.root.exists() and tmp_path.is_dir()
    staging.discard()  # nothing left to remove: no error


def test_dataset_info_update_keeps_other_entries_and_writes_ours(tmp_path):
    (tmp_path / DATASET_INFO).write_text(json.dumps({"mine": {"file_name": "mine.json"}}))
    ours = {"flare_general": {"file_name": "flare/train.json", "formatting": "sharegpt"}}
    info = update_dataset_info(tmp_path, ours)
    assert info == {"mine": {"file_name": "mine.json"}, **ours}
    assert json.loads((tmp_path / DATASET_INFO).read_text()) == info


def test_the_system_prompt_is_counted_once_in_the_overhead():
    plain, with_system = TokenCounter(), TokenCounter(system="You are a careful radiologist.")
    assert with_system.overhead > plain.overhead


# ----------------------------------------------------------------------------------------------- image zips
def test_a_dataset_outside_the_root_gets_its_own_fallback_folder(tmp_path):
    from pathlib import Path

    from mevlip.prepare.images import fallback_folder

    root, out = tmp_path / "root", tmp_path / "out"
    assert fallback_folder(out, root, root / "Train" / "X" / "ds") == out / "extracted_images" / "Train" / "X" / "ds"
    assert fallback_folder(out, root, tmp_path / "elsewhere" / "ds") == out / "extracted_images" / "_outside" / "ds"
    assert fallback_folder(Path("o"), Path("/r"), Path("/r/../up/ds")) == Path("o/extracted_images/_outside/ds")


def _zip_folder(tmp_path):
    import zipfile

    folder = tmp_path / "ds"
    folder.mkdir()
    with zipfile.ZipFile(folder / "images.zip", "w") as zf:
        zf.writestr("imgs/a.png", b"aaa")
        zf.writestr("imgs/b.png", b"bbbbb")
    return folder


def test_a_read_only_folder_is_extracted_once_under_the_fallback(tmp_path, monkeypatch, caplog):
    """The dataset folder refuses writes (EROFS, faked: the unit is the decision, tests/test_faults.py mounts a real
    read-only folder): the zip goes under the fallback, and a second run finds it there and extracts nothing."""
    import errno

    from mevlip.prepare import images

    real = images.safe_extract
    calls = []

    def read_only_folder(archive, dest=None, limits=None):
        calls.append(dest)
        if dest is None:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(archive, dest, limits)

    monkeypatch.setattr(images, "safe_extract", read_only_folder)
    folder, fallback = _zip_folder(tmp_path), tmp_path / "out" / "ds"
    with caplog.at_level("WARNING"):
        assert images.extract_folder(folder, None, fallback) == (str(folder), 2, None)
    assert f"extracting images.zip under {fallback}" in caplog.text
    assert (fallback / "imgs" / "b.png").read_bytes() == b"bbbbb" and not (folder / "imgs").exists()
    calls.clear()
    assert images.extract_folder(folder, None, fallback) == (str(folder), 0, None)
    assert calls == []  # found complete under the fallback: not even tried
    (fallback / "imgs" / "b.png").write_bytes(b"bb")  # a file of another size: extracted again
    assert images.extract_folder(folder, None, fallback)[1] == 1
    assert images.extract_folder(folder, None, None)[2].endswith("cannot extract (Read-only file system)")


def test_a_complete_folder_is_not_extracted_again(tmp_path, monkeypatch, caplog):
    from mevlip.prepare import images

    folder = _zip_folder(tmp_path)
    with caplog.at_level("INFO"):
        images.extract_images([_question_file(folder)])
    assert "image zips of 1 dataset folder(s) checked, 2 file(s) extracted" in caplog.text
    calls = []
    monkeypatch.setattr(images, "safe_extract", lambda *a, **k: calls.append(a) or 0)
    assert images.extract_folder(folder) == (str(folder), 0, None) and calls == []


def _question_file(folder):
    from mevlip.flare import QuestionFile

    return QuestionFile(folder / "ds_questions_train.json", "Training", "X", "ds", "train", False)


# ----------------------------------------------------------------------------------------------- messages
def test_a_question_labelled_twice_keeps_the_first_task_and_says_so(caplog):
    questions, counts = {}, {"duplicates": 0, "conflicts": 0}
    with caplog.at_level("WARNING"):
        for task in ("classification", "classification", "counting"):
            core._add_question(questions, counts, "How many?", task)
    assert questions == {"How many?": "classification"} and counts == {"duplicates": 1, "conflicts": 1}
    assert "question 'How many?' is labelled classification and counting; keeping classification" in caplog.text


def test_an_interrupted_swap_is_completed_and_said(tmp_path, caplog):
    import mevlip.prepare.io as io_module
    from mevlip.prepare.io import recover_outputs

    staging = Staging(tmp_path)  # killed right after writing the manifest (the commit point), before the renames
    staging.path("flare").mkdir(parents=True)
    staging.path("flare/train.json").write_text("[2]")
    io_module.write_json(staging.root / io_module.COMMIT_FILE, {"replace": ["flare/train.json"], "delete": [],
                                                                 "remove_if_empty": []})
    with caplog.at_level("WARNING"):
        assert recover_outputs(tmp_path) == "completed"
    assert f"{tmp_path}: completing the swap of an interrupted data preparation run" in caplog.text
    assert (tmp_path / "flare" / "train.json").read_text() == "[2]"


def test_an_absent_file_to_delete_is_no_error_when_the_swap_is_redone(tmp_path):
    import mevlip.prepare.io as io_module

    staging = Staging(tmp_path)
    staging.path("flare").mkdir(parents=True)
    staging.path("flare/val.json").write_text("[]")
    (tmp_path / "flare").mkdir()
    (tmp_path / "flare" / "old.json").write_text("[]")
    staging.commit(delete=["flare/old.json", "flare/never_written.json"])
    assert sorted(p.name for p in (tmp_path / "flare").iterdir()) == ["val.json"]
    assert not staging.root.exists() and io_module.recover_outputs(tmp_path) is None


# ----------------------------------------------------------------------------------------------- router set, stats
def test_router_split_by_hand():
    from mevlip.prepare.io import split_router_set

    questions = {"only one?": "counting", "a?": "classification", "b?": "classification", "c?": "classification",
                 "d?": "classification"}
    train, test = split_router_set(questions, 0.25, seed=0)
    # one classification question of four held out (round(0.25 * 4) = 1); a task with one question stays in train
    assert len(test) == 1 and test[0]["true_labels"] == ["classification"]
    assert sorted(r["text"] for r in train) == sorted(set(questions) - {test[0]["text"]})
    train, test = split_router_set(questions, 0.0, seed=0)  # nothing held out
    assert test == [] and len(train) == 5


def test_percentiles_by_hand():
    from mevlip.prepare.stats import percentiles

    assert percentiles([], cutoff=10) == {"n": 0, "p50": None, "p90": None, "p95": None, "p99": None, "mean": None,
                                          "max": None, "over_cutoff": 0}
    assert percentiles([]) == {"n": 0, "p50": None, "p90": None, "p95": None, "p99": None, "mean": None, "max": None}
    assert percentiles([7]) == {"n": 1, "p50": 7, "p90": 7, "p95": 7, "p99": 7, "mean": 7.0, "max": 7}
    # nearest rank: p50 of 1..10 is the 5th value, p90 the 9th, p95 and p99 the 10th
    assert percentiles([10, 9, 8, 7, 6, 5, 4, 3, 2, 1], cutoff=8) == {
        "n": 10, "p50": 5, "p90": 9, "p95": 10, "p99": 10, "mean": 5.5, "max": 10, "over_cutoff": 2}


# ----------------------------------------------------------------------------------------------- image checks
def test_a_jpeg_end_marker_counts_with_trailing_padding(tmp_path):
    from mevlip.prepare.images import _jpeg_has_eoi

    cases = {b"\xff\xd8" + b"x" * 200 + b"\xff\xd9": True, b"\xff\xd8xx\xff\xd9\x00\x00\r\n ": True,
             b"\xff\xd8" + b"x" * 200 + b"\xff\xd9\x00\x00": True, b"\xff\xd8" + b"x" * 200: False,
             b"\xff\xd9" + b"x" * 100: False, b"\r\n\xff\xd8xx": False}
    for i, (data, complete) in enumerate(cases.items()):
        (tmp_path / f"{i}.jpg").write_bytes(data)
        assert _jpeg_has_eoi(str(tmp_path / f"{i}.jpg")) is complete, data


def test_the_pool_is_made_once_and_its_workers_watch_their_parent():
    from concurrent.futures import ProcessPoolExecutor

    from mevlip.prepare import images

    assert images.ImageChecker(1).pool() is None
    with images.ImageChecker(2) as checker:
        pool = checker.pool()
        assert isinstance(pool, ProcessPoolExecutor) and checker.pool() is pool
        # each worker runs the watchdog that ends it with its parent (tests/test_faults.py kills a real parent)
        assert pool._initializer is images._exit_with_parent
    assert checker._pool is None  # closed on leaving


def test_image_check_messages_and_what_a_quick_check_decodes(tmp_path):
    """A quick check opens and verifies every image, decodes nothing but a JPEG without its end marker; the full
    decode (``--full_decode``) finds damage a header check cannot (here a BMP cut short)."""
    import numpy as np
    from PIL import Image

    from mevlip.prepare.images import check_image

    (tmp_path / "x.png").write_bytes(b"not an image")
    assert check_image(str(tmp_path / "x.png")) == "UnidentifiedImageError: cannot identify image file '<file>'"
    assert check_image(str(tmp_path / "absent.png")) == "missing file"
    pixels = (np.arange(48 * 48 * 3) % 251).astype("uint8").reshape(48, 48, 3)
    Image.fromarray(pixels).save(tmp_path / "whole.bmp")
    data = (tmp_path / "whole.bmp").read_bytes()
    (tmp_path / "cut.bmp").write_bytes(data[: len(data) // 2])
    assert check_image(str(tmp_path / "whole.bmp")) is None and check_image(str(tmp_path / "cut.bmp")) is None
    assert check_image(str(tmp_path / "cut.bmp"), full_decode=True).startswith("OSError: image file is truncated")


def test_list_answers_are_joined_with_the_files_separator():
    assert core.label_separator([{"Answer": "Caries, Impacted tooth"}, {"Answer": 3}]) == ", "
    assert core.label_separator([{"Answer": "Caries; Bone loss"}]) == "; "
    assert core.label_separator([{"Answer": ["a", "b"]}, {}]) == "; "  # no string answer: the default
    assert core.answer_text("multi_label_classification", ["Caries", "Impacted tooth"], label_sep=", ") \
        == "Caries, Impacted tooth"
    assert core.answer_text("multi_label_classification", ["Caries", "Impacted tooth"]) == "Caries; Impacted tooth"
    assert core.answer_text("classification", "  B ") == "  B " and core.answer_text("classification", " ") is None


def test_a_list_writer_makes_its_staging_folders(tmp_path):
    from mevlip.prepare.io import JsonListWriter

    writer = JsonListWriter(tmp_path / "out" / "flare" / "train.json", tmp_path / "stage" / "deep" / "parts")
    writer.write({"a": 1})
    writer.close()
    assert json.loads((tmp_path / "out" / "flare" / "train.json").read_text()) == [{"a": 1}]


# ----------------------------------------------------------------------------------------------- a crafted run
def _root(tmp_path):
    """One dataset, four training records (the second with a blank answer, the fourth with an empty list: the
    loader refuses the first, the answer writer the second), images in a zip."""
    answers = [("a", "A"), ("a", ""), ("b", "B"), ("b", [])]
    root, _ = _one_dataset(tmp_path, "ds", [{"ImageName": f"imagesTr/{n}.png", "Question": f"Q{i}? A. x B. y",
                                             "Answer": a, "TaskType": "classification"}
                                            for i, (n, a) in enumerate(answers)])
    return root


def test_a_crafted_run_reports_its_skips_shows_progress_and_obeys_the_zip_limits(tmp_path, capsys, caplog):
    from mevlip.flare import ZipLimits
    from mevlip.prepare import PrepareConfig, prepare

    root = _root(tmp_path)
    with caplog.at_level("INFO"):
        stats = prepare(PrepareConfig(str(root), str(tmp_path / "out"), workers=1, progress=True))
    assert "prepare train" in capsys.readouterr().err
    assert "no training rows were written" not in caplog.text
    assert stats["parts"]["train"]["skipped"] == [
        {"file": "training/Xray/ds/ds_questions_train.json", "index": 1, "kind": "empty answer",
         "reason": "Answer is empty", "key": None},
        {"file": "training/Xray/ds/ds_questions_train.json", "index": 3, "kind": "empty answer",
         "reason": "Answer is empty", "key": "imagesTr/b.png||Q3? A. x B. y"}]
    assert stats["archive_errors"] == []
    # the same zip under a 10-byte limit is refused before anything is written (a fresh copy: nothing extracted)
    fresh = _root(tmp_path / "again")
    with caplog.at_level("INFO"):
        stats = prepare(PrepareConfig(str(fresh), str(tmp_path / "out2"), workers=1), limits=ZipLimits(max_bytes=10))
    [error] = stats["archive_errors"]
    assert error["folder"] == "training/Xray/ds" and "images.zip" in error["error"]
    assert not (fresh / "training" / "Xray" / "ds" / "imagesTr").exists()
    assert "no training rows were written" in caplog.text


# ----------------------------------------------------------------------------------------------- second triage
def test_a_task_with_two_router_questions_has_one_in_each_part():
    from mevlip.prepare.io import split_router_set

    train, test = split_router_set({"a?": "counting", "b?": "counting"}, 0.1, seed=0)
    # round(0.1 * 2) = 0, at least 1, at most 2 - 1: one held out
    assert len(train) == 1 and len(test) == 1 and {train[0]["text"], test[0]["text"]} == {"a?", "b?"}


def test_a_long_conflicting_question_is_named_by_its_first_80_characters(caplog):
    question = "Q" * 79 + "xy" + "z" * 20
    questions, counts = {}, {"duplicates": 0, "conflicts": 0}
    with caplog.at_level("WARNING"):
        for task in ("classification", "counting"):
            core._add_question(questions, counts, question, task)
    assert f"question {question[:80]!r} is labelled classification and counting" in caplog.text
    assert "xy" not in caplog.text


def test_answers_with_no_task_form_are_written_as_json():
    assert core.canonical_answer("classification", {"größe": 1}) == '{"größe": 1}'  # not ASCII-escaped
    assert core.canonical_answer("report_generation", ["Heart normal.", "Lungs clear."]) == \
        '["Heart normal.", "Lungs clear."]'


def test_config_messages_and_absolute_image_paths():
    import pytest

    assert core.PrepareConfig("root", "out", image_paths="absolute").image_paths == "absolute"
    with pytest.raises(ValueError) as err:
        core.PrepareConfig("root", "out", multi_image="all")
    assert str(err.value).startswith(f"--multi_image must be one of {', '.join(core.MULTI_IMAGE_MODES)}, got 'all'")


def test_a_two_byte_end_marker_is_an_end_marker(tmp_path):
    from mevlip.prepare.images import _jpeg_has_eoi

    (tmp_path / "a.jpg").write_bytes(b"\xff\xd9")  # shorter than the tail read: read from its first byte
    assert _jpeg_has_eoi(str(tmp_path / "a.jpg"))


def test_an_image_found_only_under_the_fallback_folder(tmp_path):
    from mevlip.prepare.images import FolderIndex

    dataset, fallback = tmp_path / "ds", tmp_path / "fallback"
    dataset.mkdir()
    (fallback / "imagesTr").mkdir(parents=True)
    (fallback / "imagesTr" / "a.png").write_bytes(b"x")
    # not in either listing as named ("a.png"): the dataset folder has no candidate, the fallback's imagesTr has
    assert FolderIndex(dataset, fallback).find("a.png") == (str(fallback / "imagesTr" / "a.png"), "imagesTr/a.png",
                                                            fallback)
    assert FolderIndex(dataset, fallback).find("b.png") is None


def test_an_unreadable_folder_is_named_and_skipped(tmp_path, monkeypatch, caplog):
    import os

    from mevlip.prepare import images

    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "a.png").write_bytes(b"x")
    (tmp_path / "locked").mkdir()
    real = os.scandir

    def scandir(path):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(images.os, "scandir", scandir)
    with caplog.at_level("WARNING"):
        assert images.scan_folder(tmp_path) == {"ok/a.png": -1}
    assert f"cannot list {tmp_path / 'locked'}: Permission denied" in caplog.messages


def test_dataset_entries_of_a_validation_part_alone():
    from mevlip.prepare.io import dataset_entries
    from mevlip.tasks import TASKS

    entries = dataset_entries({"train": [], "val": ["counting"]})
    assert set(entries) == {"flare_all_val", TASKS["counting"].dataset_entry + "_val"}
    assert entries["flare_all_val"]["file_name"] == "flare/val"


@pytest.mark.parametrize(("text", "why"), [
    ("[]", "expected a JSON object of dataset entries, got list"),
    ("{", "not valid JSON (JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 "
          "(char 1))")])
def test_a_dataset_info_that_is_no_json_object_is_named(tmp_path, text, why):
    from mevlip.prepare.io import read_dataset_info

    (tmp_path / DATASET_INFO).write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as err:
        read_dataset_info(tmp_path)
    assert str(err.value) == f"{tmp_path / DATASET_INFO}: {why}; fix or delete it"


def test_a_list_writer_keeps_non_ascii_text_and_aborts_cleanly(tmp_path):
    from mevlip.prepare.io import JsonListWriter

    writer = JsonListWriter(tmp_path / "out" / "a.json", tmp_path / "stage")
    writer.write({"q": "größe"})
    writer.close()
    assert (tmp_path / "out" / "a.json").read_text(encoding="utf-8") == '[\n{"q": "größe"}\n]\n'
    writer = JsonListWriter(tmp_path / "out" / "b.json", tmp_path / "stage")
    writer.write({"q": 1})
    writer.tmp.unlink()  # the staging folder already cleared (a run stopping on an error)
    writer.abort()  # no error: nothing left to drop
    assert not (tmp_path / "out" / "b.json").exists()


def test_a_named_staging_folder_recovers_its_own_interrupted_swap(tmp_path):
    import mevlip.prepare.io as io_module

    old = Staging(tmp_path, name=".other_tmp")  # killed after the manifest (the commit point), before the renames
    old.path("flare").mkdir(parents=True)
    old.path("flare/train.json").write_text("[3]")
    io_module.write_json(old.root / io_module.COMMIT_FILE, {"replace": ["flare/train.json"], "delete": [],
                                                            "remove_if_empty": []})
    Staging(tmp_path, name=".other_tmp")  # the next run under the same name completes it first
    assert (tmp_path / "flare" / "train.json").read_text() == "[3]"


def test_a_run_into_a_new_nested_folder_with_a_numeric_answer(tmp_path, capsys):
    from mevlip.prepare import PrepareConfig, prepare

    root = _root(tmp_path)
    qfile = root / "training" / "Xray" / "ds" / "ds_questions_train.json"
    records = json.loads(qfile.read_text())
    records.append({**records[0], "Question": "How many?", "Answer": 42.0, "TaskType": "counting"})
    qfile.write_text(json.dumps(records))
    out = tmp_path / "new" / "nested" / "out"  # its parents do not exist yet
    prepare(PrepareConfig(str(root), str(out), workers=1, progress=True))
    assert "file/s" in capsys.readouterr().err  # the progress bar counts question files
    rows = json.loads((out / "flare" / "train" / "counting.json").read_text())
    assert [r["conversations"][-1]["value"] for r in rows] == ["42"]  # a whole count, written as one


def test_zips_extracted_through_a_pool_and_a_failure_named(tmp_path, caplog):
    from concurrent.futures import ThreadPoolExecutor

    from mevlip.prepare import images

    good = _zip_folder(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "images.zip").write_bytes(b"not a zip")
    with ThreadPoolExecutor(2) as pool, caplog.at_level("ERROR"):
        results = images.extract_images([_question_file(good), _question_file(bad)], pool)
    assert [r[:2] for r in results] == [(str(good), 2), (str(bad), 0)]
    assert (good / "imgs" / "a.png").read_bytes() == b"aaa"
    [error] = [r[2] for r in results if r[2]]
    assert f"cannot extract images of {bad}: {error}" in caplog.messages


# ----------------------------------------------------------------------------------------------- full run survivors
def _one_dataset(tmp_path, folder_name, records):
    """A root with one training dataset folder ``folder_name``: images ``a.png`` and ``b.png`` in a zip, and
    ``records`` (ImageName, Question, Answer, TaskType; the other fields filled in)."""
    import io
    import zipfile

    from PIL import Image

    folder = tmp_path / "root" / "training" / "Xray" / folder_name
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "images.zip", "w") as zf:
        for name in ("a.png", "b.png"):
            buffer = io.BytesIO()
            Image.new("RGB", (8, 8), "white").save(buffer, "PNG")
            zf.writestr(f"imagesTr/{name}", buffer.getvalue())
    full = [{"Modality": "X-ray", "Split": "train", **r} for r in records]
    (folder / "ds_questions_train.json").write_text(json.dumps(full))
    return tmp_path / "root", folder


def _rows(out, task):
    return json.loads((out / "flare" / "train" / f"{task}.json").read_text())


def test_absolute_image_paths_and_the_stats_returned_are_those_written(tmp_path):
    import os

    from mevlip.prepare import PrepareConfig, prepare

    root, folder = _one_dataset(tmp_path, "ds", [{"ImageName": "imagesTr/a.png", "Question": "Q? A. x B. y",
                                                  "Answer": "A", "TaskType": "classification"}])
    out = tmp_path / "out"
    stats = prepare(PrepareConfig(str(root), str(out), workers=1, image_paths="absolute"))
    [row] = _rows(out, "classification")
    assert row["images"] == [os.path.realpath(folder) + "/imagesTr/a.png"]  # from the filesystem root, one slash
    # the returned stats are the file's content (the options as JSON has them: lists, not tuples)
    assert stats == json.loads((out / core.STATS_FILE).read_text())
    assert stats["config"]["splits"] == ["training"] and stats["config"]["image_paths"] == "absolute"


def test_relative_image_paths_keep_the_folders_own_name(tmp_path):
    """Folder names ending in a letter or a space are written as they are (nothing stripped but the separator)."""
    from mevlip.prepare import PrepareConfig, prepare

    for name in ("scans X", "scans "):
        root, _ = _one_dataset(tmp_path / name.replace(" ", "_"), name, [
            {"ImageName": "imagesTr/a.png", "Question": "Q? A. x B. y", "Answer": "A", "TaskType": "classification"}])
        out = root.parent / "out"
        prepare(PrepareConfig(str(root), str(out), workers=1))
        [row] = _rows(out, "classification")
        assert row["images"] == [f"../root/training/Xray/{name}/imagesTr/a.png"], name
        assert (out / row["images"][0]).is_file()


def test_a_list_answer_is_joined_with_its_files_separator_in_a_run(tmp_path):
    """The file writes its labels with ", " (chestdr's way), so a list-valued answer is joined the same way."""
    from mevlip.prepare import PrepareConfig, prepare

    task = "multi_label_classification"
    root, _ = _one_dataset(tmp_path, "ds", [
        {"ImageName": "imagesTr/a.png", "Question": "Which findings?", "Answer": "Effusion, Nodule", "TaskType": task},
        {"ImageName": "imagesTr/b.png", "Question": "Which findings?", "Answer": ["Mass", "Nodule"], "TaskType": task}])
    prepare(PrepareConfig(str(root), str(tmp_path / "out"), workers=1))
    assert [r["conversations"][1]["value"] for r in _rows(tmp_path / "out", task)] == ["Effusion, Nodule",
                                                                                       "Mass, Nodule"]


def test_a_missing_image_of_two_is_named_and_the_other_still_gives_its_row(tmp_path):
    """The paper's rows are one per image: the record's second image still makes a row when its first is gone, and
    the skip names the file, the record, the image and why."""
    from mevlip.prepare import PrepareConfig, prepare

    names = ["imagesTr/gone.png", "imagesTr/a.png"]
    root, _ = _one_dataset(tmp_path, "ds", [{"ImageName": names, "Question": "Q? A. x B. y", "Answer": "B",
                                             "TaskType": "classification"}])
    stats = prepare(PrepareConfig(str(root), str(tmp_path / "out"), workers=1))["parts"]["train"]
    assert [r["images"] for r in _rows(tmp_path / "out", "classification")] == [
        ["../root/training/Xray/ds/imagesTr/a.png"]]
    assert stats["skipped"] == [{"file": "training/Xray/ds/ds_questions_train.json", "index": 0,
                                 "kind": "missing image", "reason": "image 'imagesTr/gone.png': not found",
                                 "key": "['imagesTr/gone.png', 'imagesTr/a.png']||Q? A. x B. y"}]


def test_an_unreadable_question_file_is_counted_once_and_planned_empty(tmp_path):
    from mevlip.flare import QuestionFile
    from mevlip.prepare.images import ImageChecker
    from mevlip.prepare.stats import PartStats

    folder = tmp_path / "root" / "Training" / "X" / "ds"
    folder.mkdir(parents=True)
    (folder / "ds_questions_train.json").write_bytes(b"\xff\xfe not UTF-8")
    qfile = QuestionFile(folder / "ds_questions_train.json", "Training", "X", "ds", "train", False)
    stats = PartStats(files=3)
    plan = core.plan_file(qfile, core.PrepareConfig(str(tmp_path / "root"), str(tmp_path / "out")), ImageChecker(0),
                          stats)
    assert stats.files == 4 and plan.qfile is qfile and plan.rel_file == "Training/X/ds/ds_questions_train.json"
    assert plan.records == [] and plan.verdicts() == {}
    [skip] = stats.skipped
    assert (skip["file"], skip["index"], skip["kind"]) == ("Training/X/ds/ds_questions_train.json", -1,
                                                           "unreadable file")


def test_answer_writer_defaults_and_a_path_outside_the_root():
    from pathlib import Path

    assert core.canonical_answer("multi_label_classification", [" Caries", "Bone loss "]) == "Caries; Bone loss"
    assert core.canonical_answer("classification", True) == "True"
    assert core._relative(Path("/data/x/q.json"), Path("/data/x")) == "q.json"
    assert core._relative(Path("/data/x/q.json"), Path("/elsewhere")) == "/data/x/q.json"


def test_files_in_a_part_folder_that_are_not_ours_are_named():
    import tempfile
    from pathlib import Path

    from mevlip.prepare.io import stale_files

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "flare" / "train"
        folder.mkdir(parents=True)
        for name in ("classification.json", "counting.json", "mine.json"):
            (folder / name).write_text("[]")
        assert stale_files(Path(tmp), "train", ["classification"]) == (["flare/train/counting.json"], ["mine.json"])


def test_the_end_marker_is_looked_for_in_the_last_64_bytes_only(tmp_path):
    """``_JPEG_TAIL``: a marker followed by 62 padding bytes is inside the window; behind 100 it is not seen (the
    image is then decoded to decide, the safe side); bytes other than NUL, CR, LF and space are not padding."""
    from mevlip.prepare.images import _jpeg_has_eoi

    body = b"\xff\xd8" + b"x" * 200 + b"\xff\xd9"
    cases = {body + b"\x00" * 62: True, body + b"\x00" * 100: False, body + b"XX": False, body + b"\n X": False}
    for i, (data, complete) in enumerate(cases.items()):
        (tmp_path / f"{i}.jpg").write_bytes(data)
        assert _jpeg_has_eoi(str(tmp_path / f"{i}.jpg")) is complete, data[-8:]


def test_the_naive_checker_decodes_in_full_only_when_asked(tmp_path):
    """The benchmark's baseline checks as the real checker does: a BMP cut short passes a quick check and fails a
    full decode."""
    import numpy as np
    from PIL import Image

    from mevlip.prepare.images import NaiveImageChecker

    Image.fromarray((np.arange(48 * 48 * 3) % 251).astype("uint8").reshape(48, 48, 3)).save(tmp_path / "w.bmp")
    cut = tmp_path / "cut.bmp"
    cut.write_bytes((tmp_path / "w.bmp").read_bytes()[:3000])
    assert NaiveImageChecker().submit([str(cut), str(cut)])() == {str(cut): None}
    assert NaiveImageChecker(full_decode=True).submit([str(cut)])()[str(cut)].startswith(
        "OSError: image file is truncated")


def test_token_lengths_by_hand():
    """No system prompt: ``<|im_start|>user\\n<|im_end|>\\n<|im_start|>assistant\\n<|im_end|>\\n`` is 4 special
    tokens, user, assistant (9 letters: 3), 4 newlines = 12. One image: 256 context tokens + <img> + </img>."""
    counter = TokenCounter()
    assert counter.overhead == 12
    # "How many?": How, many, ? = 3; "3": 1
    assert counter.rows(["<image>How many?", "How many?"], ["3", "3"]) == [(4, 12 + 4 + 258), (4, 12 + 4)]


def test_a_tokenizer_folder_is_read_locally_and_named(monkeypatch):
    """``--tokenizer`` never reaches the network (local files only); the stats name the tokenizer's class."""
    import transformers

    calls = []

    class WordTokenizer:
        def __call__(self, texts, add_special_tokens):
            assert add_special_tokens is False
            return {"input_ids": [t.split() for t in texts]}

    def from_pretrained(path, **kwargs):
        calls.append((path, kwargs))
        return WordTokenizer()

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)
    counter = TokenCounter("tokenizers/qwen2")
    assert calls == [("tokenizers/qwen2", {"local_files_only": True})]
    assert counter.method == "tokenizer WordTokenizer (turns tokenized separately, summed)"
    assert counter.count(["a b c", ""]) == [3, 0] and counter.count([]) == []


def test_every_conflict_is_counted_and_its_message_is_whole(caplog):
    questions, counts = {}, {"duplicates": 0, "conflicts": 0}
    with caplog.at_level("WARNING"):
        for task in ("classification", "counting", "detection"):
            core._add_question(questions, counts, "How many?", task)
    assert counts == {"duplicates": 0, "conflicts": 2}
    assert caplog.messages == [f"question 'How many?' is labelled classification and {t}; keeping classification"
                               for t in ("counting", "detection")]


def test_a_semicolon_separates_labels_even_when_a_label_holds_a_comma():
    """Periapical's labels are joined by "; " and one of them holds a comma (flare_format.md 3.2)."""
    assert core.label_separator([{"Answer": "Caries; Periapical lesion, chronic"}]) == "; "


def test_an_image_index_looks_in_its_folder_then_its_fallback(tmp_path):
    from mevlip.prepare.images import FolderIndex

    folder, fallback = tmp_path / "ds", tmp_path / "fb"
    for path in (folder / "a.png", fallback / "imgs" / "b.png"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    index = FolderIndex(folder)  # no fallback
    assert index.find("a.png") == (f"{folder}/a.png", "a.png", folder) and index.find("imgs/b.png") is None
    both = FolderIndex(folder, fallback)
    assert both.find("imgs/b.png") == (f"{fallback}/imgs/b.png", "imgs/b.png", fallback)
    assert both.find("c.png") is None
    assert FolderIndex(folder, tmp_path / "absent").find("a.png") == (f"{folder}/a.png", "a.png", folder)



def test_a_large_held_out_fraction_still_leaves_one_question_to_train_on():
    from mevlip.prepare.io import split_router_set

    train, test = split_router_set({"a?": "counting", "b?": "counting"}, 0.9, seed=0)
    # round(0.9 * 2) = 2, at most 2 - 1: one in each part
    assert len(train) == 1 and len(test) == 1


def test_every_zip_that_needs_it_is_extracted_and_counted(tmp_path):
    """Three zips: the first already extracted (skipped), the other two extracted (2 + 3 files); a folder without
    zips writes nothing."""
    import zipfile

    from mevlip.prepare import images

    folder = tmp_path / "ds"
    folder.mkdir()
    contents = {"images1.zip": {"imgs/a.png": b"a"}, "images2.zip": {"imgs/b.png": b"bb", "imgs/c.png": b"cc"},
                "images3.zip": {"more/d.png": b"d", "more/e.png": b"e", "more/f.png": b"f"}}
    for zip_name, members in contents.items():
        with zipfile.ZipFile(folder / zip_name, "w") as zf:
            for member, data in members.items():
                zf.writestr(member, data)
    (folder / "imgs").mkdir()
    (folder / "imgs" / "a.png").write_bytes(b"a")
    assert images.extract_folder(folder) == (str(folder), 5, None)
    assert (folder / "more" / "f.png").read_bytes() == b"f"
    (tmp_path / "empty").mkdir()
    assert images.extract_folder(tmp_path / "empty") == (str(tmp_path / "empty"), 0, None)


def test_a_full_disk_is_an_error_not_a_read_only_folder(tmp_path, monkeypatch, caplog):
    """Only a folder that refuses writes goes to the fallback; a disk that is full is reported as it is."""
    import errno
    import os

    from mevlip.prepare import images

    real, calls = images.safe_extract, []

    def failing(errno_code):
        def extract(archive, dest=None, limits=None):
            calls.append(dest)
            if dest is None:
                raise OSError(errno_code, os.strerror(errno_code))
            return real(archive, dest, limits)
        return extract

    folder, fallback = _zip_folder(tmp_path), tmp_path / "out" / "ds"
    monkeypatch.setattr(images, "safe_extract", failing(errno.ENOSPC))
    assert images.extract_folder(folder, None, fallback) == (
        str(folder), 0, f"{folder / 'images.zip'}: cannot extract (No space left on device)")
    assert calls == [None] and not fallback.exists()
    monkeypatch.setattr(images, "safe_extract", failing(errno.EROFS))
    with caplog.at_level("WARNING"):
        assert images.extract_folder(folder, None, fallback) == (str(folder), 2, None)
    assert caplog.messages == [f"{folder} cannot be written (Read-only file system): extracting images.zip under "
                               f"{fallback}"]


def test_the_pool_given_runs_the_extraction_and_the_summary_is_logged(tmp_path, caplog):
    from concurrent.futures import ThreadPoolExecutor

    from mevlip.prepare import images

    class CountingPool(ThreadPoolExecutor):
        maps = 0

        def map(self, *args, **kwargs):
            CountingPool.maps += 1
            return super().map(*args, **kwargs)

    folder = _zip_folder(tmp_path)
    with CountingPool(1) as pool, caplog.at_level("INFO"):
        images.extract_images([_question_file(folder)], pool)
    assert CountingPool.maps == 1
    assert "image zips of 1 dataset folder(s) checked, 2 file(s) extracted" in caplog.messages


def test_small_json_files_keep_non_ascii_text_and_make_their_folders(tmp_path):
    from mevlip.prepare.io import dumps, write_json

    assert dumps({"q": "Größe?"}) == '{\n  "q": "Größe?"\n}'
    write_json(tmp_path / "a" / "b" / "c.json", {"q": "Größe?"})
    assert (tmp_path / "a" / "b" / "c.json").read_text(encoding="utf-8") == '{\n  "q": "Größe?"\n}\n'


def test_an_unfinished_staging_folder_is_dropped_and_said(tmp_path, caplog):
    from mevlip.prepare.io import STAGING, recover_outputs

    (tmp_path / STAGING / "new" / "flare").mkdir(parents=True)  # killed before the commit point
    (tmp_path / STAGING / "new" / "flare" / "train.json").write_text("[")
    with caplog.at_level("WARNING"):
        assert recover_outputs(tmp_path) == "discarded"
    assert caplog.messages == [f"{tmp_path}: dropping the unfinished outputs of an interrupted run (the previous "
                               "outputs are whole)"]
    assert not (tmp_path / STAGING).exists() and recover_outputs(tmp_path) is None


def test_an_interrupted_swap_is_said_in_one_whole_line(tmp_path, caplog):
    import mevlip.prepare.io as io_module

    staging = Staging(tmp_path)
    staging.path("x.json").parent.mkdir(parents=True, exist_ok=True)
    staging.path("x.json").write_text("[]")
    io_module.write_json(staging.root / io_module.COMMIT_FILE, {"replace": ["x.json"], "delete": [],
                                                                 "remove_if_empty": []})
    with caplog.at_level("WARNING"):
        assert io_module.recover_outputs(tmp_path) == "completed"
    assert caplog.messages == [f"{tmp_path}: completing the swap of an interrupted data preparation run"]


def _two_zips(tmp_path):
    import zipfile

    folder = tmp_path / "ds"
    folder.mkdir()
    for zip_name, members in (("images1.zip", {"a/x.png": b"aaa", "a/y.png": b"bbbbb"}),
                              ("images2.zip", {"b/z.png": b"cc"})):
        with zipfile.ZipFile(folder / zip_name, "w") as zf:
            for member, data in members.items():
                zf.writestr(member, data)
    return folder


def test_every_zip_of_a_read_only_folder_goes_to_the_fallback_within_the_limits(tmp_path, monkeypatch):
    import errno

    from mevlip.flare import ZipLimits
    from mevlip.prepare import images

    real = images.safe_extract

    def read_only_folder(archive, dest=None, limits=None):
        if dest is None:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(archive, dest, limits)

    monkeypatch.setattr(images, "safe_extract", read_only_folder)
    folder = _two_zips(tmp_path)
    assert images.extract_folder(folder, None, tmp_path / "fb") == (str(folder), 3, None)
    assert (tmp_path / "fb" / "b" / "z.png").read_bytes() == b"cc"
    # the limits hold under the fallback too; each refused archive is named, "; " between them
    assert images.extract_folder(folder, ZipLimits(max_bytes=1), tmp_path / "fb2") == (str(folder), 0, "; ".join(
        f"{folder / name}: expands to {size} bytes, over --zip_max_bytes 1; refusing to extract (raise the limit if "
        "it is real data)" for name, size in (("images1.zip", 8), ("images2.zip", 2))))
    assert not (tmp_path / "fb2").exists()


def test_no_question_files_names_the_root_and_every_split(tmp_path):
    import pytest

    from mevlip.prepare import PrepareConfig, prepare

    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(FileNotFoundError) as err:
        prepare(PrepareConfig(str(root), str(tmp_path / "out"), splits=("training", "validation-public")))
    assert str(err.value) == (f"no question files under {root} for split(s) training, validation-public; download "
                              f"FLARE there (original_dataset/README.md) or write mini-FLARE: python -m mevlip.synth "
                              f"--out {root} --scale small")


def test_full_decode_reaches_the_run_and_leaves_out_a_damaged_image(tmp_path):
    import numpy as np
    from PIL import Image

    from mevlip.prepare import PrepareConfig, prepare

    root, folder = _one_dataset(tmp_path, "ds", [{"ImageName": "imagesTr/cut.bmp", "Question": "Q? A. x B. y",
                                                  "Answer": "A", "TaskType": "classification"}])
    (folder / "imagesTr").mkdir()
    Image.fromarray((np.arange(48 * 48 * 3) % 251).astype("uint8").reshape(48, 48, 3)).save(folder / "w.bmp")
    (folder / "imagesTr" / "cut.bmp").write_bytes((folder / "w.bmp").read_bytes()[:3000])
    quick = prepare(PrepareConfig(str(root), str(tmp_path / "quick"), workers=1))["parts"]["train"]
    assert quick["rows"]["total"] == 1 and quick["skipped"] == []
    full = prepare(PrepareConfig(str(root), str(tmp_path / "full"), workers=1, full_decode=True))["parts"]["train"]
    [skip] = full["skipped"]
    assert full["rows"]["total"] == 0 and skip["kind"] == "unreadable image"
    assert skip["reason"].startswith("image 'imagesTr/cut.bmp': OSError: image file is truncated")


def test_a_checker_passed_in_does_the_work_and_stays_open_an_own_one_is_closed(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from mevlip.prepare import PrepareConfig, prepare
    from mevlip.prepare.images import ImageChecker

    class CountingPool(ThreadPoolExecutor):
        def map(self, *args, **kwargs):
            SpyChecker.maps += 1
            return super().map(*args, **kwargs)

    class SpyChecker(ImageChecker):
        maps, closed = 0, 0

        def pool(self):
            self._pool = self._pool or CountingPool(1)
            return self._pool

        def close(self):
            SpyChecker.closed += 1
            super().close()

    root = _root(tmp_path)
    with SpyChecker(0) as checker:
        prepare(PrepareConfig(str(root), str(tmp_path / "out")), checker=checker)
        assert SpyChecker.maps == 1 and SpyChecker.closed == 0  # the zips went through its pool; left open
    monkeypatch.setattr(core, "ImageChecker", SpyChecker)
    SpyChecker.closed = 0
    prepare(PrepareConfig(str(root), str(tmp_path / "out2"), workers=1))
    assert SpyChecker.closed == 1


@pytest.mark.parametrize("failing", ["extract_images", "split_router_set"])  # before any part / after every part
def test_a_run_that_fails_raises_its_own_error_and_keeps_the_previous_outputs(tmp_path, monkeypatch, failing):
    from mevlip.prepare import PrepareConfig, prepare
    from mevlip.prepare.io import STAGING

    root, out = _root(tmp_path), tmp_path / "out"
    prepare(PrepareConfig(str(root), str(out), workers=1))
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def disk_gone(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(core, failing, disk_gone)
    with pytest.raises(OSError) as err:
        prepare(PrepareConfig(str(root), str(out), workers=1))
    assert str(err.value) == "disk gone"
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not (out / STAGING).exists()



def test_a_rerun_keeps_its_own_task_files_and_drops_only_the_stale_ones(tmp_path):
    """Run 1 writes classification and counting rows; run 2, after the counting record is gone, writes
    classification again (kept, with its new rows) and deletes the stale counting file."""
    from mevlip.prepare import PrepareConfig, prepare

    records = [{"ImageName": "imagesTr/a.png", "Question": "Q? A. x B. y", "Answer": "A", "TaskType": "classification"},
               {"ImageName": "imagesTr/b.png", "Question": "How many?", "Answer": "3", "TaskType": "counting"}]
    root, folder = _one_dataset(tmp_path, "ds", records)
    out = tmp_path / "out"
    prepare(PrepareConfig(str(root), str(out), workers=1))
    assert sorted(p.name for p in (out / "flare" / "train").iterdir()) == ["classification.json", "counting.json"]
    (folder / "ds_questions_train.json").write_text(json.dumps(
        [{"Modality": "X-ray", "Split": "train", **records[0], "Answer": "B"}]))
    prepare(PrepareConfig(str(root), str(out), workers=1))
    assert sorted(p.name for p in (out / "flare" / "train").iterdir()) == ["classification.json"]
    assert [r["conversations"][1]["value"] for r in _rows(out, "classification")] == ["B"]


@pytest.mark.parametrize(("options", "message"), [
    ({"preset": "x"}, "--preset must be one of paper, ours, got 'x'"),
    ({"answers": "raw"}, "--answers must be one of as_given, canonical, got 'raw'"),
    ({"splits": ()}, "--splits: give at least one split"),
    ({"splits": ("train",)}, "--splits: unknown split(s) train; known: training, validation-public, "
                             "validation-hidden, testing"),
    ({"val_splits": ("x", "y")}, "--val_splits: unknown split(s) x, y; known: training, validation-public, "
                                 "validation-hidden, testing"),
    ({"splits": ("training", "testing"), "val_splits": ("testing", "training")},
     "--val_splits: testing, training also in --splits (held-out must be apart)"),
    ({"image_paths": "rel"}, "--image_paths must be relative or absolute, got 'rel'"),
    ({"max_per_dataset": 0}, "--max_per_dataset must be >= 1, got 0"),
    ({"image_tokens": -1}, "--image_tokens must be >= 0 and --cutoff_len >= 1"),
    ({"cutoff_len": 0}, "--image_tokens must be >= 0 and --cutoff_len >= 1"),
    ({"router_test_fraction": 1.0}, "--router_test_fraction must be in [0, 1), got 1.0"),
    ({"router_test_fraction": 1.5}, "--router_test_fraction must be in [0, 1), got 1.5"),
])
def test_each_bad_option_is_named_in_one_line(options, message):
    with pytest.raises(ValueError) as err:
        core.PrepareConfig("root", "out", **options)
    assert str(err.value) == message


def test_the_smallest_allowed_options_are_allowed():
    config = core.PrepareConfig("root", "out", max_per_dataset=1, image_tokens=0, cutoff_len=1,
                                router_test_fraction=0.0)
    assert (config.max_per_dataset, config.image_tokens, config.cutoff_len) == (1, 0, 1)


def test_foreign_files_and_an_empty_run_are_warned_about_in_whole_lines(tmp_path, caplog):
    from mevlip.prepare import PrepareConfig, prepare

    root, out = _root(tmp_path), tmp_path / "out"
    (out / "flare" / "train").mkdir(parents=True)
    (out / "flare" / "train" / "mine.json").write_text("[]")
    with caplog.at_level("WARNING"):
        prepare(PrepareConfig(str(root), str(out), workers=1))
    assert f"{out / 'flare' / 'train'} holds mine.json, which flare_all will also load" in caplog.messages
    caplog.clear()
    empty, _ = _one_dataset(tmp_path / "empty", "ds", [
        {"ImageName": "imagesTr/gone.png", "Question": "Q?", "Answer": "A", "TaskType": "classification"}])
    with caplog.at_level("ERROR"):
        prepare(PrepareConfig(str(empty), str(tmp_path / "out2"), workers=1))
    assert caplog.messages == [f"no training rows were written (see {tmp_path / 'out2' / core.STATS_FILE})"]


def _cut_bmp(path):
    import numpy as np
    from PIL import Image

    Image.fromarray((np.arange(48 * 48 * 3) % 251).astype("uint8").reshape(48, 48, 3)).save(path)
    path.write_bytes(path.read_bytes()[:3000])
    return str(path)


def test_checker_defaults_check_quickly_and_serially(tmp_path):
    from mevlip.prepare.images import ImageChecker, check_images

    cut = _cut_bmp(tmp_path / "cut.bmp")
    assert check_images([cut]) == [None]  # a quick check by default
    checker = ImageChecker()
    assert checker.pool() is None and checker.submit([cut])() == {cut: None}


def test_a_pooled_check_is_spawned_with_its_workers_and_decodes_when_asked(tmp_path):
    """64 images or more go to the pool: spawned processes (a parent holding torch threads is safe), as many as
    asked, each chunk checked with the same full decode."""
    from mevlip.prepare.images import _MIN_POOLED, ImageChecker

    first = _cut_bmp(tmp_path / "0.bmp")
    paths = [first] + [str(tmp_path / f"{i}.bmp") for i in range(1, _MIN_POOLED)]
    for path in paths[1:]:
        (tmp_path / path).write_bytes((tmp_path / "0.bmp").read_bytes())
    with ImageChecker(3, full_decode=True) as checker:
        verdicts = checker.submit(paths)()
        pool = checker.pool()
        assert pool._max_workers == 3 and pool._mp_context.get_start_method() == "spawn"
    assert sorted(verdicts) == sorted(paths)
    assert all(v.startswith("OSError: image file is truncated") for v in verdicts.values())
