"""Fault injection: bad archives, files, records and paths, kills, locks and reruns, across every stage.

Each test plants one fault class in a tiny mini-FLARE copy (or a crafted zip / JSON) and checks what
the stage does with it: skip and report it (file and record), refuse it, or stop with one line, never a traceback
and never a silent wrong answer. The README's "Reliability" table lists the same cases.
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest_metrics import ground_truth_records, write_predictions
from release_standins import build_plain_router, cached
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
from mevlip.inference.run import (
    Journal,
    OutputLock,
    ResumeError,
    journal_path,
    merge_shards,
    plan,
    route_items,
    run,
    run_fingerprint,
    shard_output,
    tree_digest,
    write_outputs,
)
from mevlip.prepare.images import FALLBACK_DIR, scan_folder
from mevlip.prepare.io import recover_outputs

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


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Callable[[list[str]], list[str]]]:
    """Make ``folder`` really read-only for a command: yields ``wrap(argv) -> argv``.

    As root (who may write anywhere) the command runs in a private mount namespace where ``folder`` is a read-only
    bind mount, so writes fail with ``EROFS`` as on the challenge's mounted input; otherwise the folder tree loses
    its write permission (``EACCES``) until the block ends.
    """
    if os.geteuid() != 0:
        dirs = [folder, *(p for p in folder.rglob("*") if p.is_dir() and not p.is_symlink())]
        for d in dirs:
            d.chmod(d.stat().st_mode & ~0o222)
        try:
            yield lambda argv: argv
        finally:
            for d in dirs:
                d.chmod(d.stat().st_mode | 0o200)
        return
    script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
    probe = subprocess.run(["unshare", "-m", "sh", "-c", script, str(folder), "touch", str(folder / ".w")],
                           capture_output=True, text=True)
    if "Read-only file system" not in probe.stderr:
        pytest.skip(f"cannot mount {folder} read-only here (root without mount namespaces): {probe.stderr[-200:]}")
    yield lambda argv: ["unshare", "-m", "sh", "-c", script, str(folder), *argv]


def image_files(folder: Path) -> set[str]:
    """Every file under ``folder`` that is not a question file or a zip (i.e. an extracted image)."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and not p.name.endswith((".json", ".zip"))}


def rows_without_image_roots(out: Path, flare: Path) -> dict[str, list]:
    """The row files with each image path cut to its part inside the dataset root (as read-only and writable runs
    write them from different folders)."""
    roots = (os.path.relpath(flare, out) + "/", FALLBACK_DIR + "/")
    rows = {}
    for path in sorted((out / "flare").rglob("*.json")):
        data = json.loads(path.read_text())
        for row in data:
            assert all((out / image).is_file() for image in row["images"])
            row["images"] = [next(i.removeprefix(r) for r in roots if i.startswith(r)) for i in row["images"]]
        rows[path.relative_to(out).as_posix()] = data
    return rows


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
    with pytest.raises(SystemExit, match=r"dataset_info.json: not valid JSON.*fix or delete"):
        prep(flare, out, "--val_splits", "validation-public")
    assert tree(out) == before  # nothing rewritten


@pytest.mark.parametrize("how", ["simulated", "mounted"])
def test_read_only_dataset_is_extracted_under_the_output_folder(flare, tmp_path, monkeypatch, how):
    """Data preparation on an input it cannot write (the challenge's read-only mount): zips go under the output."""
    import mevlip.prepare.images as prepare_images

    writable = tmp_path / "writable"
    shutil.copytree(flare, writable)
    reference = prep(writable, tmp_path / "reference")
    datasets = {q.parent.relative_to(flare).as_posix() for q in flare.glob("training/*/*/*.json")}
    assert not image_files(flare) and len(datasets) == 19  # nothing extracted yet: every image is in a zip

    out = tmp_path / "data"
    if how == "simulated":  # in-process: the in-place extraction fails as a read-only mount makes it fail
        real = prepare_images.safe_extract

        def erofs(archive, dest=None, limits=None):
            if dest is None:
                raise OSError(errno.EROFS, "Read-only file system", str(archive))
            return real(archive, dest, limits)

        monkeypatch.setattr(prepare_images, "safe_extract", erofs)
        stats = prep(flare, out)
    else:  # a real read-only folder, the CLI with a process pool
        argv = [sys.executable, PREP, "--dataset_root", str(flare), "--output_dir", str(out), "--no-progress",
                "--workers", "2"]
        with read_only(flare) as wrap:
            done = subprocess.run(wrap(argv), cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "read-only, images extracted under extracted_images/training/" in done.stdout
        stats = json.loads((out / "prepare_stats.json").read_text())
    assert stats["archive_errors"] == [] and not image_files(flare)  # nothing written into the input
    assert {e["folder"] for e in stats["extracted_under_output"]} == datasets
    assert all(e["images"] == f"{FALLBACK_DIR}/{e['folder']}" for e in stats["extracted_under_output"])
    assert stats["parts"]["train"]["rows"] == reference["parts"]["train"]["rows"]
    assert rows_without_image_roots(out, flare) == rows_without_image_roots(tmp_path / "reference", writable)


# ----------------------------------------------------------------------------------------------- atomic outputs
_KILLER = textwrap.dedent("""
    import json, os, signal, sys
    sys.path.insert(0, {tests!r})
    import mevlip.prepare.core as prepare
    import mevlip.prepare.io as pio
    from scripts import load_script

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    def half_commit(output_dir, root):  # rename the first staged file, then die mid-swap
        rel = json.loads((root / pio.COMMIT_FILE).read_text())["replace"][0]
        os.replace(root / "new" / rel, output_dir / rel)
        die()

    def pool_then_die(*args, **kwargs):  # the pool is up (extraction used it): note its workers, then die
        import multiprocessing
        workers = [p.pid for p in multiprocessing.active_children()]
        pio.Path(os.environ["WORKERS_FILE"]).write_text(json.dumps(workers))
        die()

    if __name__ == "__main__":  # spawned pool workers import this file too
        if sys.argv[1] == "build":
            prepare.split_router_set = die  # after the row files are staged, before the swap
        elif sys.argv[1] == "pool":
            prepare.split_router_set = pool_then_die
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


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited (an init that does not reap keeps it listed)


def _orphans(workers: list[int], wait_s: float = 10) -> list[int]:
    """The workers still alive after ``wait_s`` (killed before returning, so a failing test leaves none)."""
    deadline = time.time() + wait_s
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    still = [p for p in workers if _alive(p)]
    for pid in still:
        os.kill(pid, signal.SIGKILL)
    return still


def test_pool_workers_die_with_their_parent(tmp_path):
    script = textwrap.dedent("""
        import os, sys, time
        from mevlip.prepare.images import ImageChecker
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
    assert not _orphans(workers), "orphaned pool workers"


def test_killed_data_preparation_leaves_no_pool_workers(flare, tmp_path):
    """``kill -9`` of data_preparation.py itself, with its pool up (--workers 2)."""
    killer, pids = tmp_path / "killer.py", tmp_path / "workers.json"
    killer.write_text(_KILLER.format(tests=str(REPO / "tests"), prep=PREP))
    argv = ["--dataset_root", str(flare), "--output_dir", str(tmp_path / "data"), "--no-progress", "--workers", "2"]
    done = subprocess.run([sys.executable, str(killer), "pool", *argv], cwd=REPO, timeout=300,
                          env={**os.environ, "WORKERS_FILE": str(pids)})
    assert done.returncode == -signal.SIGKILL
    workers = json.loads(pids.read_text())
    assert len(workers) == 2
    assert not _orphans(workers), "data preparation's pool workers outlived it"


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
    records[2]["Question"] = " \t "
    (endo / "endo_questions_val.json").write_text(json.dumps(records))

    the_plan = plan(infer_root, scratch=tmp_path / "scratch")
    assert any("imagesVal.zip: not a zip archive" in e for e in the_plan.file_errors.values())
    assert any("escapes the folder" in e for e in the_plan.file_errors.values())
    assert not (infer_root / "escape.txt").exists() and not (infer_root.parent / "escape.txt").exists()
    busi_items = [i for i in the_plan.items if "BUSI" in i.path]
    endo_items = [i for i in the_plan.items if "endo" in i.path]
    assert busi_items and all("not found" in i.error and "not a zip archive" in i.error for i in busi_items)
    assert "record 1: missing field(s) Question" in endo_items[1].error
    assert "record 2: Question must be a non-empty string" in endo_items[2].error
    assert [i.error for i in endo_items if i.record_index not in (1, 2)] == [None] * (len(endo_items) - 2)


def test_read_only_inputs_extract_under_the_output_folder(infer_root, tmp_path, monkeypatch):
    import mevlip.inference.run as inference

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
    with pytest.raises(SystemExit, match=r'another configuration: routing "general" -> "record"'):
        cli.main([*base, "--routing", "record"])
    with pytest.raises(SystemExit, match=r"^dataset root .* does not exist"):
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


def _echo(batch, adapter):
    """A generation step answering each question with its own text (what is answered matters here, not how)."""
    return [question for question, _ in batch]


def _run_shard(the_plan, final: Path, shard: tuple[int, int], settings: dict, overwrite: bool = False) -> Path:
    """One hand-launched shard through the real run loop and outputs; returns its predictions file."""
    output = shard_output(final, *shard)
    journal = Journal(journal_path(output), run_fingerprint(the_plan, settings), overwrite)
    pending = [i for i in the_plan.items if i.index % shard[0] == shard[1]]
    run(the_plan, _echo, route_items(pending, settings["routing"]), journal, ["general"], shard=shard, progress=False)
    journal.close()
    write_outputs(the_plan, journal.done, output, shard)
    return output


def test_shards_share_an_output_folder_and_the_lock_stops_only_the_same_shard(infer_root, tmp_path):
    the_plan = plan(infer_root)
    final = tmp_path / "out" / "predictions.json"
    fingerprint = run_fingerprint(the_plan, SETTINGS)
    shard0 = Journal(journal_path(shard_output(final, 2, 0)), fingerprint)
    shard1 = Journal(journal_path(shard_output(final, 2, 1)), fingerprint)  # another shard, same folder: runs
    with pytest.raises(ResumeError, match=rf"predictions.shard-0-of-2.journal.jsonl is in use by another inference "
                                          rf"run \(pid {os.getpid()} on "):
        Journal(journal_path(shard_output(final, 2, 0)), fingerprint)  # the same shard twice: refused
    whole = OutputLock(journal_path(final))  # the unsharded output (a torchrun's rank 0) is another output
    with pytest.raises(ResumeError, match="predictions.journal.jsonl is in use by another inference run"):
        Journal(journal_path(final), fingerprint)
    for held in (shard0, shard1):
        held.close()
    whole.release()

    outputs = [_run_shard(the_plan, final, (2, i), SETTINGS) for i in range(2)]
    assert [p.name for p in outputs] == ["predictions.shard-0-of-2.json", "predictions.shard-1-of-2.json"]
    merge_shards(the_plan, outputs, final)
    details = [json.loads(line) for line in final.with_name("predictions.details.jsonl").read_text().splitlines()]
    assert [d["raw"] for d in details] == [i.question for i in the_plan.items]  # each record from its shard
    assert len(json.loads(final.read_text())) == len(the_plan.items)
    # shard 1 redone under another routing: the merge refuses to mix the two configurations
    _run_shard(the_plan, final, (2, 1), {**SETTINGS, "routing": "record"}, overwrite=True)
    with pytest.raises(ValueError, match=r'shard-1-of-2.journal.jsonl ran under another configuration than .*'
                                         r'shard-0-of-2.journal.jsonl: routing "general" -> "record"'):
        merge_shards(the_plan, outputs, final)


def test_merge_cli_errors_are_one_line(infer_root, tmp_path):
    merge = load_script("docker_internvl/merge_predictions.py").main
    the_plan = plan(infer_root)
    final = tmp_path / "out" / "predictions.json"
    shard0 = _run_shard(the_plan, final, (2, 0), SETTINGS)
    base = ["--base_dataset_path", str(infer_root), "--output", str(final)]
    with pytest.raises(SystemExit, match=r"^\d+ record\(s\) answered by no shard") as err:
        merge([*base, "--inputs", str(shard0)])
    assert "\n" not in str(err.value)
    with pytest.raises(SystemExit, match=r"shard-1-of-2.journal.jsonl: missing"):
        merge([*base, "--inputs", str(shard0), str(shard_output(final, 2, 1))])
    assert not final.exists()


def test_large_model_files_are_fingerprinted_by_size_head_and_tail(infer_root, tmp_path):
    """A file over 256 MiB (a base-model shard) is hashed by its size and first and last 4 MiB, as --help says."""
    import mevlip.inference.journal as inference

    cli = load_script("docker_internvl/inference.py")
    assert inference._HASH_WHOLE == 256 * 2**20 and inference._HASH_SAMPLE == 4 * 2**20
    help_text = " ".join(cli.build_parser().format_help().split())
    assert "each file up to 256 MiB hashed whole, a larger one (a base-model shard) by its size and first and " \
           "last 4 MiB" in help_text

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    shard = base / "model-00001-of-00002.safetensors"
    with open(shard, "wb") as fh:  # sparse: 257 MiB on paper, nothing on disk
        fh.truncate(257 * 2**20)

    def poke(offset: int, value: bytes) -> str:
        with open(shard, "r+b") as fh:
            fh.seek(offset)
            fh.write(value)
        return tree_digest(base)

    original = tree_digest(base)
    assert poke(128 * 2**20, b"\x01") == original  # the middle is not read (the documented limit)
    assert poke(4 * 2**20 - 1, b"\x01") != original  # last byte of the head
    poke(4 * 2**20 - 1, b"\x00")
    assert poke(257 * 2**20 - 4 * 2**20, b"\x01") != original  # first byte of the tail
    poke(257 * 2**20 - 4 * 2**20, b"\x00")
    assert tree_digest(base) == poke(128 * 2**20, b"\x00")  # restored

    adapters = tmp_path / "adapters" / "general"
    adapters.mkdir(parents=True)
    (adapters / "adapter_config.json").write_text("{}")
    (adapters / "adapter_model.safetensors").write_bytes(b"weights v1")
    out = tmp_path / "out"
    argv = ["--base_dataset_path", str(infer_root), "--output_dir", str(out), "--device", "cpu", "--routing",
            "general", "--base_model", str(base), "--adapters_dir", str(adapters.parent), "--no_progress"]
    the_plan = plan(infer_root, scratch=out / ".images")
    Journal(out / "predictions.journal.jsonl", run_fingerprint(the_plan, vars(cli.build_parser().parse_args(argv))),
            ).close()
    poke(0, b"\x01")  # the base model's shard changed in its head
    with pytest.raises(SystemExit, match=r"another configuration: base_model_files changed\. "
                                         r"Rerun with --overwrite") as err:
        cli.main(argv)
    assert "\n" not in str(err.value)
    poke(0, b"\x00")
    (adapters / "adapter_model.safetensors").write_bytes(b"weights v2")  # an adapter retrained
    with pytest.raises(SystemExit, match=r"another configuration: adapter_files changed\. Rerun with --overwrite"):
        cli.main(argv)


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


def test_a_split_without_ground_truth_is_an_error(mini_flare_tiny, tmp_path):
    root = tmp_path / "hidden_only"
    shutil.copytree(mini_flare_tiny / "validation-hidden", root / "validation-hidden",
                    ignore=shutil.ignore_patterns("*_withGT.json"))
    records = [r for f in root.rglob("*_questions_val.json") for r in load_records(f).records]
    with pytest.raises(SystemExit, match="--splits validation-hidden: no ground truth"):  # one line, exit code 2
        _evaluate(root, tmp_path, records, "--splits", "validation-hidden")
    with pytest.raises(SystemExit, match="--splits validation-public: no question files"):
        _evaluate(root, tmp_path, records, "--splits", "validation-public", "validation-hidden")


def test_lone_surrogate_in_an_input_record_cannot_stop_inference(infer_root, tmp_path):
    from mevlip.inference.run import write_outputs

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


# ----------------------------------------------------------------------------------------------- every CLI
def test_cli_user_errors_are_one_line(flare, tmp_path):
    """A missing or unreadable input, a model that is not there: one line naming it, never a traceback."""
    (tmp_path / "bad.json").write_bytes(b"[\"\xff\"]")
    cases = [
        ("llama_factory_internvl/scripts/data_preparation.py",
         ["--dataset_root", str(tmp_path / "nowhere"), "--output_dir", str(tmp_path / "d")],
         r"^dataset root .*nowhere does not exist"),
        ("task_classifier/route_questions.py",
         ["--router_dir", str(tmp_path / "r"), "--questions", str(tmp_path / "none.json")],
         r".*none.json: cannot read questions \(FileNotFoundError"),
        ("task_classifier/route_questions.py",
         ["--router_dir", str(tmp_path / "r"), "--questions", str(tmp_path / "bad.json")],
         r".*bad.json: cannot read questions \(UnicodeDecodeError"),
        ("docker_internvl/merge_predictions.py",
         ["--base_dataset_path", str(tmp_path / "nowhere"), "--inputs", "x.json", "--output", "y.json"],
         r"^dataset root .*nowhere does not exist"),
        ("docker_internvl/inference.py",
         ["--base_dataset_path", str(flare), "--splits", "validation-public", "--output_dir", str(tmp_path / "o"),
          "--device", "cpu", "--routing", "general", "--base_model", str(tmp_path / "no_model"), "--no_progress"],
         r"^cannot load the model \(--base_model .*no_model, --adapters_dir None\): "),
    ]
    for script, argv, message in cases:
        with pytest.raises(SystemExit, match=message) as err:
            load_script(script).main(argv)
        assert "\n" not in str(err.value), script


def test_empty_questions_route_to_the_general_adapter(tmp_path_factory, tmp_path):
    router = cached(tmp_path_factory, "release_router", build_plain_router)
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps(["", "   ", "\t\n", "How many cells are in the image?"]))
    summary = load_script("task_classifier/route_questions.py").main(
        ["--router_dir", str(router), "--questions", str(questions), "--output", str(tmp_path / "routed.json")])
    rows = json.loads((tmp_path / "routed.json").read_text())
    assert summary["empty"] == 3
    assert [(r["task"], r["score"], r["adapter"]) for r in rows[:3]] == [(None, 0.0, "general")] * 3
    assert rows[3]["task"] is not None and rows[3]["score"] > 0


# ----------------------------------------------------------------------------------------------- predict.sh
def _predict_sh(inputs: Path, out: Path, tmp: Path, base_model: Path, wrap=lambda argv: argv):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "TMPDIR": str(tmp),
           "INPUT_DIR": str(inputs), "OUTPUT_DIR": str(out), "MEVLIP_BASE_MODEL": str(base_model),
           "MEVLIP_ADAPTERS_DIR": "", "MEVLIP_ROUTER_DIR": "", "ROUTING": "record", "DEVICE": "cpu",
           "MAX_NEW_TOKENS": "4", "OMP_NUM_THREADS": "1"}
    argv = wrap(["sh", str(REPO / "docker_internvl" / "predict.sh")])
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)


def test_predict_sh_answers_a_read_only_input_and_cleans_up(infer_root, standin_dir, tmp_path):
    """The challenge's case: <Category>/<dataset>/ on a read-only mount; zips extracted under OUTPUT_DIR, removed."""
    inputs = tmp_path / "mounted"
    shutil.copytree(infer_root / "validation-public", inputs)  # no split folder, as the final phase mounts it
    tmp, out = tmp_path / "tmp", tmp_path / "outputs"
    tmp.mkdir()
    with read_only(inputs) as wrap:
        done = _predict_sh(inputs, out, tmp, standin_dir, wrap)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cannot be written" not in done.stderr  # inference falls back without complaint (EROFS is expected)
    summary = json.loads((out / "predictions.summary.json").read_text())
    records = [r for f in inputs.rglob("*_questions_val.json") for r in json.loads(f.read_text())]
    assert summary["records"] == len(records) > 0 and summary["errors"] == 0 and not summary["file_errors"]
    assert not image_files(inputs)  # nothing was written into the input
    assert not os.listdir(tmp) and not [p for p in os.listdir(out) if p.startswith(".images")]

    # a failing run (no such base model) cleans up as well, and says why in one line
    again = _predict_sh(inputs, tmp_path / "outputs2", tmp, tmp_path / "no_model")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr.strip().splitlines()[-1].startswith("inference.py: error: cannot load the model (--base_model ")
    assert not os.listdir(tmp) and not [p for p in os.listdir(tmp_path / "outputs2") if p.startswith(".images")]
