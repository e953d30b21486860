"""Inference on a tiny mini-FLARE with the stand-in: complete, resumable, robust to bad records, batched = single,
sharded = unsharded, and the challenge entry point."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scripts import load_script

from mevlip.flare import discover, load_records, record_key
from mevlip.inference.run import Journal, plan
from mevlip.synth import generate

REPO = Path(__file__).resolve().parents[1]
INFER = REPO / "docker_internvl" / "inference.py"
DATASETS = ["BUSI", "neojaundice", "dental", "chestdr", "neurips22cell"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Five datasets (single- and multi-image, public and hidden, val and test files)."""
    root = tmp_path_factory.mktemp("infer_data")
    generate(root, "tiny", seed=2, datasets=DATASETS)
    return root


def _infer(data, standin_dir, out, *extra):
    return load_script("docker_internvl/inference.py").main([
        "--base_dataset_path", str(data), "--output_dir", str(out), "--device", "cpu", "--routing", "record",
        "--base_model", str(standin_dir), "--max_new_tokens", "6", "--no_progress", *extra])


def _inputs(data):
    return [r for f in discover(data, gt="exclude") if f.kind != "train" for r in load_records(f).records]


def _predictions(out):
    return json.loads((Path(out) / "predictions.json").read_text())


@pytest.fixture(scope="module")
def reference(data, standin_dir, tmp_path_factory):
    """One uninterrupted batched run, the yardstick for the others."""
    out = tmp_path_factory.mktemp("ref")
    summary = _infer(data, standin_dir, out, "--batch_size", "4")
    return out, summary


def test_every_record_answered_once_in_input_order(data, reference):
    out, summary = reference
    inputs, preds = _inputs(data), _predictions(out)
    assert [record_key(p) for p in preds] == [record_key(r) for r in inputs]
    for pred, rec in zip(preds, inputs, strict=True):  # unchanged but for the answer
        assert {k: v for k, v in pred.items() if k != "Answer"} == {k: v for k, v in rec.items() if k != "Answer"}
    assert not any(f.with_gt for f in discover(data, gt="exclude"))
    details = [json.loads(line) for line in (out / "predictions.details.jsonl").read_text().splitlines()]
    assert [d["i"] for d in details] == list(range(len(inputs)))
    assert all(d["error"] is None and d["raw"] is not None for d in details)
    assert {d["task"] for d in details} == {"classification", "multi_label_classification", "counting"}
    assert summary["records"] == len(inputs) and summary["errors"] == 0 and summary["missing"] == 0


def test_batched_equals_one_at_a_time(data, standin_dir, reference, tmp_path):
    _infer(data, standin_dir, tmp_path, "--batch_size", "1")
    assert _predictions(tmp_path) == _predictions(reference[0])


def test_shards_merge_into_the_unsharded_result(data, standin_dir, reference, tmp_path):
    """Two shards into one folder (each its own file, journal and lock), merged."""
    merge = load_script("docker_internvl/merge_predictions.py").main

    out = tmp_path / "out"
    shards = []
    for i in range(2):
        summary = _infer(data, standin_dir, out, "--num_shards", "2", "--shard_index", str(i))
        shards.append(out / f"predictions.shard-{i}-of-2.json")
        assert summary["output"] == str(shards[-1]) and summary["resumed"] == 0
    assert not (out / "predictions.json").exists()
    halves = [json.loads(s.read_text()) for s in shards]
    assert len(halves[0]) + len(halves[1]) == len(_inputs(data))
    merge(["--base_dataset_path", str(data), "--inputs", *map(str, shards), "--output", str(tmp_path / "merged.json")])
    assert json.loads((tmp_path / "merged.json").read_text()) == _predictions(reference[0])
    with pytest.raises(SystemExit, match="answered by no shard"):
        merge(["--base_dataset_path", str(data), "--inputs", str(shards[0]), "--output", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit, match="answered by two shards"):
        merge(["--base_dataset_path", str(data), "--inputs", *map(str, shards), str(shards[0]), "--output",
               str(tmp_path / "x.json")])


def test_resume_after_kill_loses_and_duplicates_nothing(data, standin_dir, reference, tmp_path):
    cmd = [sys.executable, str(INFER), "--base_dataset_path", str(data), "--output_dir", str(tmp_path), "--device",
           "cpu", "--routing", "record", "--base_model", str(standin_dir), "--max_new_tokens", "6", "--no_progress",
           "--batch_size", "1"]
    journal = tmp_path / "predictions.journal.jsonl"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 6:  # header + >= 5 records done
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "predictions.json").exists()
    done_before = len(journal.read_text().splitlines()) - 1
    assert 5 <= done_before < len(_inputs(data))
    summary = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert summary.returncode == 0, summary.stderr[-2000:]
    assert _predictions(tmp_path) == _predictions(reference[0])
    entries = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    assert sorted(e["i"] for e in entries) == list(range(len(_inputs(data))))  # each record exactly once
    info = json.loads((tmp_path / "predictions.summary.json").read_text())
    assert info["resumed"] >= 5 and info["resumed"] + info["answered_now"] == len(_inputs(data))


def test_journal_of_other_inputs_is_refused(data, tmp_path):
    the_plan = plan(data)
    Journal(tmp_path / "j.jsonl", the_plan.fingerprint()).close()
    with pytest.raises(ValueError, match="belongs to other inputs"):
        Journal(tmp_path / "j.jsonl", "0000")
    Journal(tmp_path / "j.jsonl", "0000", overwrite=True).close()


def test_bad_records_get_an_empty_answer_and_a_clear_error(data, standin_dir, reference, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data, root)
    plan(root)  # extracts the zips
    busi = root / "validation-public" / "Ultrasound" / "BUSI"
    records = json.loads((busi / "BUSI_questions_val.json").read_text())
    (busi / records[1]["ImageName"]).write_bytes(b"not an image")  # corrupt
    (busi / records[2]["ImageName"]).unlink()  # missing
    (busi / "imagesVal.zip").unlink()  # so the missing image is not re-extracted
    records[3]["TaskType"] = "Segmentation"  # unknown task
    (busi / "BUSI_questions_val.json").write_text(json.dumps(records))
    summary = _infer(root, standin_dir, tmp_path / "out", "--batch_size", "4")
    details = [json.loads(line) for line in (tmp_path / "out" / "predictions.details.jsonl").read_text().splitlines()]
    errors = {d["record_index"]: d["error"] for d in details if d["error"] and "BUSI_questions_val" in d["file"]}
    assert sorted(errors) == [1, 2] and summary["errors"] == 2
    assert "BUSI_questions_val.json record 1" in errors[1] and "UnidentifiedImageError" in errors[1]
    assert "not found" in errors[2]
    preds = _predictions(tmp_path / "out")
    assert len(preds) == len(_predictions(reference[0]))
    bad = {record_key(r) for r in records[1:3]}
    assert [p["Answer"] for p in preds if record_key(p) in bad] == ["", ""]
    ok = [d for d in details if not d["error"]]
    assert len(ok) == len(details) - 2 and all(d["raw"] is not None for d in ok)
    # an unknown TaskType is still answered, as the original answered it: under --routing record (no task to route
    # by) by the general adapter, the output kept as generated; the summary says so
    unknown = next(d for d in details if "BUSI_questions_val" in d["file"] and d["record_index"] == 3)
    # (no --adapters_dir here: the base model stands for every adapter, so adapter is None)
    assert unknown["adapter"] is None and unknown["task"] is None and unknown["task_source"] is None
    assert unknown["answer"] == unknown["raw"].strip()
    assert summary["records_without_task_type"] == 1 and "general adapter" in summary[
        "records_without_task_type_handling"]


def test_predict_sh_with_env_overrides(data, standin_dir, tmp_path):
    inputs = tmp_path / "inputs"  # the final-phase layout: <Category>/<dataset>/ directly under the input folder
    import shutil

    shutil.copytree(data / "testing", inputs)
    env = {**os.environ, "INPUT_DIR": str(inputs), "OUTPUT_DIR": str(tmp_path / "outputs"), "DEVICE": "cpu",
           "MEVLIP_BASE_MODEL": str(standin_dir), "MEVLIP_ADAPTERS_DIR": "", "ROUTING": "record", "MAX_NEW_TOKENS": "4",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    run = subprocess.run(["sh", str(REPO / "docker_internvl" / "predict.sh"), "--no_progress"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    preds = json.loads((tmp_path / "outputs" / "predictions.json").read_text())
    expected = [r for f in discover(data, ["testing"], gt="exclude") for r in load_records(f).records]
    assert [record_key(p) for p in preds] == [record_key(r) for r in expected] and len(preds) > 0


@pytest.mark.parametrize("tool,target", [("hadolint", "docker_internvl/Dockerfile"),
                                         ("shellcheck", "docker_internvl/predict.sh")])
def test_container_files_lint_clean(tool, target):
    exe = Path(sys.executable).parent / tool
    assert exe.exists(), f"{tool} is installed by requirements.txt"
    run = subprocess.run([str(exe), str(REPO / target)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_limit_answers_the_first_records_of_each_file(data, standin_dir, tmp_path):
    files = [f for f in discover(data, gt="exclude") if f.kind != "train"]
    summary = _infer(data, standin_dir, tmp_path / "out", "--limit", "2")
    preds = _predictions(tmp_path / "out")
    expected = [r for f in files for r in load_records(f).records[:2]]
    assert [record_key(p) for p in preds] == [record_key(r) for r in expected]
    assert summary["records"] == len(expected) < len(_inputs(data)) and summary["question_files"] == len(files)
