"""A resumed answer is reused only if everything that produced it is unchanged: its record and its images' bytes.

The faults planted here are the ones that leave names unchanged: a new images zip with the same member names, two
image files swapped, a record's TaskType changed. A rerun into the same output must answer exactly those records
again, resume the rest, and count them.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from PIL import Image
from scripts import load_script

from mevlip.inference.run import Journal, record_digest


def _bmp(path: Path, colour: tuple[int, int, int]) -> bytes:
    """An uncompressed image: the same size in bytes whatever its colour, so only its content tells two apart."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 16), colour).save(path, format="BMP")
    return path.read_bytes()


def _zip(archive: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _inputs(root: Path) -> None:
    """Dataset Z: images only in imagesTs.zip; dataset P: plain image files. Four records each, one image apiece."""
    tmp = root / "_src"
    members = {f"imagesTs/z{k}.bmp": _bmp(tmp / f"z{k}.bmp", (60 * k, 10, 10)) for k in range(4)}
    (root / "Z").mkdir(parents=True)
    _zip(root / "Z" / "imagesTs.zip", members)
    for k in range(4):
        _bmp(root / "P" / "imagesTs" / f"p{k}.bmp", (10, 60 * k, 10))
    for ds in "ZP":
        records = [{"ImageName": f"imagesTs/{ds.lower()}{k}.bmp", "Question": f"{ds} question {k}?",
                    "TaskType": ["Classification", "Counting", "Regression", "Detection"][k]} for k in range(4)]
        (root / ds / f"{ds}_questions_test.json").write_text(json.dumps(records))
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()


def _infer(root: Path, out: Path, standin_dir: Path) -> dict:
    return load_script("docker_internvl/inference.py").main([
        "--base_dataset_path", str(root), "--output_dir", str(out), "--device", "cpu", "--routing", "record",
        "--base_model", str(standin_dir), "--max_new_tokens", "3", "--no_progress"])


def test_changed_images_and_task_types_are_answered_again(tmp_path, standin_dir):
    root, out = tmp_path / "in", tmp_path / "out"
    _inputs(root)
    first = _infer(root, out, standin_dir)
    assert first["answered_now"] == 8 and first["changed_since_journal"] == 0
    again = _infer(root, out, standin_dir)  # nothing changed: everything resumed
    assert again["answered_now"] == 0 and again["resumed"] == 8 and again["changed_since_journal"] == 0

    # 1. a new images zip with the same member names and sizes: z0 has new bytes, the others are the same
    tmp = tmp_path / "src"
    members = {f"imagesTs/z{k}.bmp": _bmp(tmp / f"z{k}.bmp", (60 * k, 10, 10) if k else (0, 0, 255))
               for k in range(4)}
    _zip(root / "Z" / "imagesTs.zip", members)
    # 2. two image files swapped under their names
    p1, p2 = root / "P" / "imagesTs" / "p1.bmp", root / "P" / "imagesTs" / "p2.bmp"
    b1, b2 = p1.read_bytes(), p2.read_bytes()
    p1.write_bytes(b2)
    p2.write_bytes(b1)
    # 3. a record's TaskType changed (Classification -> Counting)
    questions = root / "P" / "P_questions_test.json"
    records = json.loads(questions.read_text())
    records[0]["TaskType"] = "Counting"
    questions.write_text(json.dumps(records))

    rerun = _infer(root, out, standin_dir)
    assert rerun["changed_since_journal"] == 4 and rerun["answered_now"] == 4 and rerun["resumed"] == 4
    details = [json.loads(x) for x in (out / "predictions.details.jsonl").read_text().splitlines()]
    by_question = {d["key"].split("||")[1]: d for d in details}
    # the new zip's bytes were extracted over the old ones (same size, another CRC)
    assert (root / "Z" / "imagesTs" / "z0.bmp").read_bytes() == members["imagesTs/z0.bmp"]
    # the changed record's answer is parsed as its new task, not left beside its old one
    assert by_question["P question 0?"]["task"] == "counting"
    preds = json.loads((out / "predictions.json").read_text())
    assert [p["TaskType"] for p in preds if p["Question"] == "P question 0?"] == ["Counting"]
    assert all(d["error"] is None and d["rd"] for d in details)


def test_the_journal_keeps_only_answers_whose_digest_still_holds(tmp_path):
    path = tmp_path / "p.journal.jsonl"
    journal = Journal(path, "x", digests={0: "a", 1: "b"})
    journal.add({"i": 0, "key": "k0", "rd": "a", "answer": "A", "error": None})
    journal.add({"i": 1, "key": "k1", "rd": "b", "answer": "B", "error": None})
    journal.close()
    resumed = Journal(path, "x", digests={0: "a", 1: "changed"})
    assert list(resumed.done) == [0] and resumed.changed == 1
    resumed.close()
    # an entry without a digest (written by another version) is answered again when digests are checked
    path.write_text(path.read_text() + json.dumps({"i": 1, "key": "k1", "answer": "B", "error": None}) + "\n")
    again = Journal(path, "x", digests={0: "a", 1: "b"})
    assert list(again.done) == [0] and again.changed == 1
    again.close()


def test_the_record_digest_covers_what_shapes_an_answer():
    base = {"ImageName": "a.png", "Question": "Q?", "TaskType": "Counting", "Answer": "", "Split": "test"}
    d = record_digest(base, ["img"])
    assert record_digest({**base, "Answer": "3", "Split": "val", "Modality": "CT"}, ["img"]) == d  # not read
    for changed in ({"Question": "Q!"}, {"ImageName": "b.png"}, {"TaskType": "Regression"}):
        assert record_digest({**base, **changed}, ["img"]) != d
    assert record_digest(base, ["other bytes"]) != d
    assert record_digest({k: v for k, v in base.items() if k != "TaskType"}, ["img"]) != d
