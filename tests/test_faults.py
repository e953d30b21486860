"""Fault injection: bad archives, files, records and paths, kills, locks and reruns, across every stage.

Each test plants one fault class of issue #14 in a tiny mini-FLARE copy (or a crafted zip / JSON) and checks what
the stage does with it: skip and report it (file and record), refuse it, or stop with one line, never a traceback
and never a silent wrong answer. The README's "Reliability" table lists the same cases.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
from conftest_metrics import ground_truth_records, write_predictions
from scripts import load_script

from mevlip.flare import (
    FlareDataError,
    UnsafeArchiveError,
    UnsafePathError,
    ZipLimits,
    load_records,
    resolve_image,
    safe_extract,
)
from mevlip.inference import Journal, ResumeError, plan, run_fingerprint
from mevlip.prepare_images import scan_folder
from mevlip.prepare_io import recover_outputs

REPO = Path(__file__).resolve().parents[1]
PREP = "llama_factory_internvl/scripts/data_preparation.py"
BUSI_TRAIN = Path("training/Ultrasound/BUSI")
BUSI_VAL = Path("validation-public/Ultrasound/BUSI")


def prep(root: Path, out: Path, *args: str) -> dict:
    """data_preparation.py in-process, serial."""
    argv = ["--dataset_root", str(root), "--output_dir", str(out), "--no-progress", "--log_level", "ERROR",
            "--workers", "1", *args]
    return load_script(PREP).main(argv)


def tree(folder: Path) -> dict[str, bytes]:
    """Every published file under an output folder (the staging folder left out)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".prepare_tmp" not in p.relative_to(folder).parts}


def corrupt_member(archive: Path, member: str) -> None:
    """Flip one data byte of a stored member: its CRC no longer matches (the zip directory stays valid)."""
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    with open(archive, "r+b") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = int.from_bytes(fh.read(2), "little"), int.from_bytes(fh.read(2), "little")
        data_at = info.header_offset + 30 + name_len + extra_len + info.compress_size // 2
        fh.seek(data_at)
        byte = fh.read(1)
        fh.seek(data_at)
        fh.write(bytes([byte[0] ^ 0xFF]))


def skipped(stats: dict, part: str = "train") -> dict[tuple[str, int], str]:
    return {(s["file"], s["index"]): f"{s['kind']}: {s['reason']}" for s in stats["parts"][part]["skipped"]}


# ----------------------------------------------------------------------------------------------- archives
def test_damaged_member_is_skipped_and_the_rest_extracted(tmp_path):
    archive = tmp_path / "imagesTr.zip"
    with zipfile.ZipFile(archive, "w") as zf:  # stored members, as mini-FLARE writes them
        for name in ("a", "b", "c"):
            zf.writestr(f"imagesTr/{name}.png", name.encode() * 1000)
    corrupt_member(archive, "imagesTr/b.png")
    with pytest.raises(FlareDataError, match=r"imagesTr.zip: 1 damaged member.*imagesTr/b.png.*CRC"):
        safe_extract(archive)
    assert sorted(p.name for p in (tmp_path / "imagesTr").iterdir()) == ["a.png", "c.png"]  # no .part left


def test_zip_bomb_is_refused_before_writing(tmp_path):
    archive = tmp_path / "imagesTr.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("imagesTr/bomb.png", "w") as fh:
        for _ in range(20):
            fh.write(bytes(1 << 20))  # 20 MiB of zeros: ~20 kB compressed, ratio ~1000
    assert archive.stat().st_size < 100_000
    with pytest.raises(UnsafeArchiveError, match=r"expands \d+x .*--zip_max_ratio 100"):
        safe_extract(archive)
    with pytest.raises(UnsafeArchiveError, match="over --zip_max_bytes 1,000"):
        safe_extract(archive, limits=ZipLimits(max_bytes=1000, max_ratio=10_000))
    assert not (tmp_path / "imagesTr").exists()
    assert safe_extract(archive, limits=ZipLimits(max_ratio=10_000)) == 1  # the user can raise the limit


# ----------------------------------------------------------------------------------------------- paths
def test_image_names_and_links_leaving_the_dataset_folder_are_refused(tmp_path):
    dataset, outside = tmp_path / "dataset", tmp_path / "outside"
    (dataset / "imagesVal").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    (dataset / "imagesVal" / "ok.png").write_bytes(b"x")
    (dataset / "imagesVal" / "link.png").symlink_to(outside / "secret.png")
    (dataset / "imagesVal" / "inside.png").symlink_to(dataset / "imagesVal" / "ok.png")
    (dataset / "root").symlink_to("/")
    (dataset / "loop").symlink_to(dataset)
    assert resolve_image(dataset, "imagesVal/inside.png").name == "inside.png"  # a link inside is fine
    with pytest.raises(UnsafePathError, match="link.png is a symbolic link to .*secret.png, outside"):
        resolve_image(dataset, "imagesVal/link.png")
    for name in ("../outside/secret.png", "imagesVal/../../outside/secret.png", str(outside / "secret.png")):
        with pytest.raises(UnsafePathError, match="absolute path|leaves the dataset folder"):
            resolve_image(dataset, name)
    with pytest.raises(UnsafePathError, match="outside"):
        resolve_image(dataset, "root/etc/hostname")
    start = time.perf_counter()
    assert set(scan_folder(dataset)) == {"imagesVal/ok.png"}  # no link followed: not "/", not the loop
    assert time.perf_counter() - start < 1


def test_bad_records_and_files_are_skipped_in_data_preparation(flare, tmp_path):
    """CRC error, non-UTF-8 byte, lone surrogate, absolute and climbing ImageName, 100k-deep JSON, symlink loop."""
    busi = flare / BUSI_TRAIN
    records = json.loads((busi / "BUSI_questions_train.json").read_text())
    corrupt_member(busi / "imagesTr.zip", records[0]["ImageName"])
    chestdr = flare / "training/Xray/chestdr/chestdr_questions_train.json"
    data = json.loads(chestdr.read_text())
    data[0]["Question"] = "\ud800 lone surrogate"
    data[1]["ImageName"] = "/etc/hostname"
    data[2]["ImageName"] = "../../../../etc/hostname"
    chestdr.write_text(json.dumps(data))  # ensure_ascii: the surrogate is written as \ud800, valid JSON
    endo = flare / "training/Endoscopy/endo/endo_questions_train.json"
    endo.write_bytes(endo.read_bytes().replace(b'"', b'\xff"', 1))  # one non-UTF-8 byte
    deep = flare / "training/Xray/dental/dental_questions_train.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    (flare / "training/Xray/chestdr/loop").symlink_to(flare / "training")

    out = tmp_path / "data"
    stats = prep(flare, out)
    bad = skipped(stats)
    rel = {p: p.relative_to(flare).as_posix() for p in (chestdr, endo, deep)}
    assert bad[(rel[chestdr], 0)].startswith("invalid record: Question holds a lone surrogate")
    assert "absolute path" in bad[(rel[chestdr], 1)] and "leaves the dataset folder" in bad[(rel[chestdr], 2)]
    assert bad[(rel[endo], -1)].startswith("unreadable file:") and "not UTF-8" in bad[(rel[endo], -1)]
    assert "nested too deeply" in bad[(rel[deep], -1)]
    busi_rel = (BUSI_TRAIN / "BUSI_questions_train.json").as_posix()
    assert bad[(busi_rel, 0)].startswith("missing image")
    [archive_error] = stats["archive_errors"]
    assert archive_error["folder"] == BUSI_TRAIN.as_posix() and "damaged member" in archive_error["error"]
    # everything else was prepared: every other BUSI record, every other dataset
    per_dataset = stats["parts"]["train"]["rows"]["per_dataset"]
    assert per_dataset["BUSI"] >= len(records) - 1 and "endo" not in per_dataset and "dental" not in per_dataset
    assert len(per_dataset) == 19 - 2


def test_read_only_dataset_and_corrupt_dataset_info(flare, tmp_path, capsys):
    out = tmp_path / "data"
    prep(flare, out)
    before = tree(out)
    (out / "dataset_info.json").write_text("{" * 100_000)  # corrupt: too deep to parse
    before["dataset_info.json"] = (out / "dataset_info.json").read_bytes()
    with pytest.raises(SystemExit, match=r"^data_preparation.py: .*dataset_info.json: not valid JSON.*fix or delete"):
        prep(flare, out, "--val_splits", "validation-public")
    assert tree(out) == before  # nothing rewritten


# ----------------------------------------------------------------------------------------------- atomic outputs
_KILLER = textwrap.dedent("""
    import json, os, signal, sys
    sys.path.insert(0, {tests!r})
    import mevlip.prepare as prepare
    import mevlip.prepare_io as pio
    from scripts import load_script

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    def half_commit(output_dir, root):  # rename the first staged file, then die mid-swap
        rel = json.loads((root / pio.COMMIT_FILE).read_text())["replace"][0]
        os.replace(root / "new" / rel, output_dir / rel)
        die()

    if sys.argv[1] == "build":
        prepare.split_router_set = die  # after the row files are staged, before the swap
    else:
        pio._apply_commit = half_commit
    load_script({prep!r}).main(sys.argv[2:])
""")


def test_killed_preparation_leaves_whole_outputs_and_is_completed_next_run(flare, tmp_path):
    out, clean = tmp_path / "data", tmp_path / "clean"
    prep(flare, out)
    old = tree(out)
    killer = tmp_path / "killer.py"
    killer.write_text(_KILLER.format(tests=str(REPO / "tests"), prep=PREP))
    argv = ["--dataset_root", str(flare), "--output_dir", str(out), "--no-progress", "--workers", "1",
            "--val_splits", "validation-public"]
    done = subprocess.run([sys.executable, str(killer), "build", *argv], cwd=REPO, timeout=300)
    assert done.returncode == -signal.SIGKILL
    assert tree(out) == old and (out / ".prepare_tmp").is_dir()  # old outputs whole, the partial run apart

    done = subprocess.run([sys.executable, str(killer), "commit", *argv], cwd=REPO, timeout=300)
    assert done.returncode == -signal.SIGKILL
    assert (out / ".prepare_tmp" / "COMMIT.json").is_file()  # killed mid-swap: the manifest marks the mix
    assert recover_outputs(out) == "completed"
    prep(flare, clean, "--val_splits", "validation-public")
    assert tree(out) == tree(clean) and not (out / ".prepare_tmp").exists()


def test_user_files_in_the_output_folder_survive(flare, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "README.md").write_text("mine")
    prep(flare, out, "--val_splits", "validation-public")
    (out / "flare" / "val" / "notes.txt").write_text("mine too")
    prep(flare, out)  # no held-out part now: our val files go, the user's stay
    assert (out / "README.md").read_text() == "mine" and (out / "flare" / "val" / "notes.txt").exists()
    assert [p.name for p in (out / "flare" / "val").iterdir()] == ["notes.txt"]


def test_pool_workers_die_with_their_parent(tmp_path):
    script = textwrap.dedent("""
        import os, sys, time
        from mevlip.prepare_images import ImageChecker
        checker = ImageChecker(workers=2)
        pool = checker.pool()
        assert pool.submit(os.getpid).result() > 0
        print(" ".join(str(p) for p in pool._processes), flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    def alive(pid: int) -> bool:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return False
        return "\nState:\tZ" not in status  # a zombie has exited (an init that does not reap keeps it listed)

    deadline = time.time() + 10
    while time.time() < deadline and any(alive(p) for p in workers):
        time.sleep(0.1)
    still = [p for p in workers if alive(p)]
    for pid in still:  # clean up before failing
        os.kill(pid, signal.SIGKILL)
    assert not still, f"orphaned pool workers {still}"


# ----------------------------------------------------------------------------------------------- inference
@pytest.fixture
def infer_root(tmp_path, mini_flare_tiny) -> Path:
    """Two validation datasets (single image, zipped)."""
    root = tmp_path / "inputs"
    for rel in (BUSI_VAL, Path("validation-public/Endoscopy/endo")):
        shutil.copytree(mini_flare_tiny / rel, root / rel)
    return root


def test_inference_plan_survives_bad_archives_and_records(infer_root, tmp_path):
    busi, endo = infer_root / BUSI_VAL, infer_root / "validation-public/Endoscopy/endo"
    (busi / "imagesVal.zip").write_bytes(b"this is not a zip")
    with zipfile.ZipFile(endo / "imagesExtra.zip", "w") as zf:
        zf.writestr("../../escape.txt", b"x")
    records = json.loads((endo / "endo_questions_val.json").read_text())
    del records[1]["Question"]
    (endo / "endo_questions_val.json").write_text(json.dumps(records))

    the_plan = plan(infer_root, scratch=tmp_path / "scratch")
    assert any("imagesVal.zip: not a zip archive" in e for e in the_plan.file_errors.values())
    assert any("escapes the folder" in e for e in the_plan.file_errors.values())
    assert not (infer_root / "escape.txt").exists() and not (infer_root.parent / "escape.txt").exists()
    busi_items = [i for i in the_plan.items if "BUSI" in i.path]
    endo_items = [i for i in the_plan.items if "endo" in i.path]
    assert busi_items and all("not found" in i.error and "not a zip archive" in i.error for i in busi_items)
    assert "record 1: missing field(s) Question" in endo_items[1].error
    assert [i.error for i in endo_items if i.record_index != 1] == [None] * (len(endo_items) - 1)


def test_read_only_inputs_extract_under_the_output_folder(infer_root, tmp_path, monkeypatch):
    import mevlip.inference as inference

    real = inference.safe_extract

    def read_only(archive, dest=None, limits=None):
        if dest is None:  # in place: the mounted input is read-only
            raise OSError(errno.EROFS, "Read-only file system", str(archive))
        return real(archive, dest, limits)

    monkeypatch.setattr(inference, "safe_extract", read_only)
    scratch = tmp_path / "out" / ".images"
    the_plan = plan(infer_root, scratch=scratch)
    assert not the_plan.file_errors and all(i.error is None for i in the_plan.items)
    assert all(Path(p).is_relative_to(scratch) for i in the_plan.items for p in i.images)


SETTINGS = {"base_model": "OpenGVLab/InternVL3-8B-hf", "routing": "general", "threshold": None,
            "preset": "paper", "max_new_tokens": 512, "multi_image": None, "crop_to_patches": None,
            "system": None, "quantization": "auto", "device": "cuda:0", "batch_size": 8}


def test_resume_refuses_another_configuration_naming_what_changed(infer_root, tmp_path):
    the_plan = plan(infer_root)
    adapters = tmp_path / "adapters" / "general"
    adapters.mkdir(parents=True)
    (adapters / "adapter_model.safetensors").write_bytes(b"weights v1")
    settings = {**SETTINGS, "adapters_dir": str(adapters.parent)}
    journal = tmp_path / "out" / "predictions.journal.jsonl"
    Journal(journal, run_fingerprint(the_plan, settings)).close()
    Journal(journal, run_fingerprint(the_plan, {**settings, "batch_size": 2, "device": "cuda:1"})).close()
    with pytest.raises(ResumeError, match=r'another configuration: routing "general" -> "router".*--overwrite'):
        Journal(journal, run_fingerprint(the_plan, {**settings, "routing": "router", "router_dir": None}))
    (adapters / "adapter_model.safetensors").write_bytes(b"weights v2")
    with pytest.raises(ResumeError, match=r"adapter_files changed"):
        Journal(journal, run_fingerprint(the_plan, settings))
    Journal(journal, run_fingerprint(the_plan, settings), overwrite=True).close()


def test_inference_cli_refuses_a_journal_of_other_routing(infer_root, tmp_path):
    cli = load_script("docker_internvl/inference.py")
    base = ["--base_dataset_path", str(infer_root), "--output_dir", str(tmp_path / "out"), "--device", "cpu",
            "--base_model", str(tmp_path / "model"), "--no_progress"]
    args = cli.build_parser().parse_args([*base, "--routing", "general"])
    the_plan = plan(infer_root, scratch=tmp_path / "out" / ".images")
    Journal(tmp_path / "out" / "predictions.journal.jsonl", run_fingerprint(the_plan, vars(args))).close()
    with pytest.raises(SystemExit, match=r'^inference.py: .*another configuration: routing "general" -> "record"'):
        cli.main([*base, "--routing", "record"])
    with pytest.raises(SystemExit, match=r"^inference.py: dataset root .* does not exist"):
        cli.main([*base[:1], str(tmp_path / "nowhere"), *base[2:], "--routing", "record"])


def test_failed_records_are_retried_and_a_second_run_is_locked_out(infer_root, tmp_path):
    the_plan = plan(infer_root)
    path = tmp_path / "out" / "predictions.journal.jsonl"
    journal = Journal(path, the_plan.fingerprint())
    with pytest.raises(ResumeError, match=rf"in use by another inference run \(pid {os.getpid()} on "):
        Journal(path, the_plan.fingerprint())
    journal.add({"i": 0, "key": the_plan.items[0].key, "answer": "A", "error": None})
    journal.add({"i": 1, "key": the_plan.items[1].key, "answer": "", "error": "x record 1: image not found"})
    journal.close()
    resumed = Journal(path, the_plan.fingerprint())
    assert sorted(resumed.done) == [0]  # the failed record is answered again
    resumed.close()


def test_missing_image_restored_is_answered_on_rerun(infer_root, tmp_path):
    the_plan = plan(infer_root)
    image = Path(the_plan.items[0].images[0])
    saved = image.read_bytes()
    image.unlink()
    (image.parent.parent / "imagesVal.zip").unlink()  # so the rerun cannot re-extract it
    assert "not found" in plan(infer_root).items[0].error
    image.write_bytes(saved)
    assert plan(infer_root).items[0].error is None


# ----------------------------------------------------------------------------------------------- evaluation
def _evaluate(root, tmp_path, records, *extra):
    sys.path.insert(0, str(REPO / "evaluation"))
    import evaluation

    pred = write_predictions(tmp_path / "predictions.json", records)
    return evaluation.main(["--base_dataset_path", str(root), "--prediction_file", pred, "--output_dir",
                            str(tmp_path / "out"), "--bootstrap", "0", *extra])


def test_missing_answers_are_counted_next_to_the_flare25_figure(mini_flare_tiny, tmp_path, caplog):
    records = ground_truth_records(mini_flare_tiny)
    counting = [i for i, r in enumerate(records) if r["TaskType"].lower() == "counting"]
    dropped = set(counting[: len(counting) // 2])
    keep = [r for i, r in enumerate(records) if i not in dropped]
    with caplog.at_level(logging.INFO, logger="evaluation"):
        assert _evaluate(mini_flare_tiny, tmp_path, keep) == 0
    results = json.loads((tmp_path / "out" / "metrics_predictions.json").read_text())
    row = results["primary_metrics"]["counting"]
    assert row["n"] == len(counting) and row["n_missing"] == len(dropped)
    assert row["flare25"] == 0.0 and row["flare25_n_scored"] == len(counting) - len(dropped)  # the organisers' rule
    assert row["strict"] > 0 and row["strict_n_scored"] == len(counting)  # missing counted as 0: wrong
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("counting"))
    assert f"missing={len(dropped)}" in line and f"flare25=0.0 (scored {len(counting) - len(dropped)}," in line
    md = (tmp_path / "out" / "metrics_predictions.md").read_text()
    assert f"| Counting | mae ↓ | {len(counting)} | {len(dropped)} | 0.0000 | – | {len(counting) - len(dropped)} (0)" \
        in md


def test_a_split_without_ground_truth_is_an_error(mini_flare_tiny, tmp_path, caplog):
    root = tmp_path / "hidden_only"
    shutil.copytree(mini_flare_tiny / "validation-hidden", root / "validation-hidden",
                    ignore=shutil.ignore_patterns("*_withGT.json"))
    records = [r for f in root.rglob("*_questions_val.json") for r in load_records(f).records]
    with caplog.at_level(logging.ERROR, logger="evaluation"):
        assert _evaluate(root, tmp_path, records, "--splits", "validation-hidden") == 2
    assert "--splits validation-hidden: no ground truth" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="evaluation"):
        assert _evaluate(root, tmp_path, records, "--splits", "validation-public", "validation-hidden") == 2
    assert "--splits validation-public: no question files" in caplog.text


def test_lone_surrogate_in_an_input_record_cannot_stop_inference(infer_root, tmp_path):
    from mevlip.inference import write_outputs

    qfile = infer_root / BUSI_VAL / "BUSI_questions_val.json"
    records = json.loads(qfile.read_text())
    records[0]["Question"] = "\ud800 which class?"
    qfile.write_text(json.dumps(records))  # valid JSON (escaped), invalid Unicode once loaded
    the_plan = plan(infer_root)
    item = next(i for i in the_plan.items if i.path == str(qfile) and i.record_index == 0)
    assert "lone surrogate" in item.error
    journal = Journal(tmp_path / "out" / "predictions.journal.jsonl", the_plan.fingerprint())
    journal.add({"i": item.index, "key": item.key, "answer": "", "error": item.error})
    journal.close()
    summary = write_outputs(the_plan, journal.done, tmp_path / "out" / "predictions.json")
    assert summary["records"] == len(the_plan.items)
    written = json.loads((tmp_path / "out" / "predictions.json").read_text(encoding="utf-8"))
    assert written[item.index]["Question"] == "\ud800 which class?"
