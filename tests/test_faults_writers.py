"""Writers under faults: a full disk ends in one line naming the file and keeps what was complete; evaluation's
output set is written all or nothing; an answer that is not valid Unicode is written, not a crash.

A full disk is planted with ``/dev/full`` (every write to it fails with ENOSPC) behind the temporary file name a
writer uses, so the fault is real at the system-call level without filling a disk.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest_metrics import ground_truth_records
from PIL import Image

from mevlip.cli import is_user_error, one_line, run_cli, writing

REPO = Path(__file__).resolve().parents[1]
FULL = Path("/dev/full")


def _inputs(root: Path, n: int = 3) -> None:
    (root / "imagesTs").mkdir(parents=True)
    for k in range(n):
        Image.new("RGB", (16, 16), (40 * k, 90, 10)).save(root / "imagesTs" / f"i{k}.png")
    records = [{"ImageName": f"imagesTs/i{k}.png", "Question": f"How many cells? {k}", "TaskType": "Counting"}
               for k in range(n)]
    (root / "q.json").write_text(json.dumps(records))


def _infer(root: Path, out: Path, standin_dir: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "inference.py", "--base_dataset_path", str(root), "--output_dir", str(out),
           "--device", "cpu", "--routing", "record", "--base_model", str(standin_dir), "--max_new_tokens", "3",
           "--no_progress"]
    return subprocess.run(cmd, cwd=REPO / "docker_internvl", capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_inference_on_a_full_disk_names_the_file_and_keeps_its_answers(tmp_path, standin_dir):
    root, out = tmp_path / "in", tmp_path / "out"
    _inputs(root)
    out.mkdir()
    (out / "predictions.json.tmp").symlink_to(FULL)  # writing predictions.json fails for lack of space
    run = _infer(root, out, standin_dir)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert run.stderr.strip().splitlines()[-1] == (
        f"inference.py: error: {out / 'predictions.json.tmp'}: No space left on device")
    assert not (out / "predictions.json").exists()
    journal = (out / "predictions.journal.jsonl").read_text().splitlines()
    assert len(journal) == 1 + 3  # every answer made before the write failed is kept
    assert not (out / "predictions.json.tmp").exists()  # the half-written temporary file is removed
    rerun = _infer(root, out, standin_dir)  # space again: the rerun resumes every answer
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads((out / "predictions.summary.json").read_text())
    assert summary["resumed"] == 3 and summary["answered_now"] == 0


def _evaluate(argv: list[str]) -> None:
    sys.path.insert(0, str(REPO / "evaluation"))
    import evaluation

    run_cli(evaluation.main, argv)


def test_evaluation_writes_all_its_files_or_none(mini_flare_tiny, tmp_path, capsys):
    records = ground_truth_records(mini_flare_tiny)
    (tmp_path / "p.json").write_text(json.dumps(records))
    out = tmp_path / "out"
    argv = ["--base_dataset_path", str(mini_flare_tiny), "--prediction_file", str(tmp_path / "p.json"),
            "--output_dir", str(out), "--bootstrap", "0"]
    with pytest.raises(SystemExit) as done:
        _evaluate(argv)
    assert done.value.code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.endswith(".lock")}
    assert sorted(before) == ["metrics_predictions.json", "metrics_predictions.md", "metrics_predictions.png",
                              "metrics_predictions_samples.jsonl"]
    # the disk fills while the third of the four files is written: the previous set stays whole
    wrong = [{**r, "Answer": "nothing"} for r in records]
    (tmp_path / "p.json").write_text(json.dumps(wrong))
    (out / f".metrics_predictions_samples.jsonl.{os.getpid()}.tmp").symlink_to(FULL)
    with pytest.raises(SystemExit) as failed:
        _evaluate(argv)
    assert failed.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(f"error: cannot write the outputs into {out} (the previous ones, if any, are kept): "
                            f"{out / f'.metrics_predictions_samples.jsonl.{os.getpid()}.tmp'}: No space left on device")
    after = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.endswith(".lock")}
    assert after == before  # same files, same bytes, no temporaries


def test_evaluation_writes_an_answer_that_is_not_valid_unicode(mini_flare_tiny, tmp_path):
    records = ground_truth_records(mini_flare_tiny)
    records[0] = {**records[0], "Answer": "A\ud800"}  # a lone surrogate: loads from JSON, cannot be UTF-8
    (tmp_path / "p.json").write_text(json.dumps(records))  # ASCII-escaped, as json writes it
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as done:
        _evaluate(["--base_dataset_path", str(mini_flare_tiny), "--prediction_file", str(tmp_path / "p.json"),
                   "--output_dir", str(out), "--bootstrap", "0"])
    assert done.value.code == 0
    rows = [json.loads(line) for line in (out / "metrics_predictions_samples.jsonl").read_text().splitlines()]
    assert len(rows) == len(records) and any(r.get("raw") == "A\ud800" or "A\ud800" in json.dumps(r, ensure_ascii=False)
                                             for r in rows)


def test_write_failures_are_user_errors_naming_the_file(tmp_path):
    with pytest.raises(OSError) as err, writing(tmp_path / "x.json"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert err.value.filename == str(tmp_path / "x.json") and is_user_error(err.value)
    assert one_line(err.value) == f"{tmp_path / 'x.json'}: No space left on device"
    for code in (errno.EROFS, errno.EDQUOT, errno.EACCES, errno.ENAMETOOLONG):
        assert is_user_error(OSError(code, os.strerror(code), "f"))
    assert not is_user_error(OSError(errno.EIO, "I/O error"))  # a failing disk is not the user's to fix
