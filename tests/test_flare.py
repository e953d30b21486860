"""FLARE data access: discovery, record validation and keys, image paths, and the zip guard."""

import json
import os
import shutil
import stat
import zipfile

import pytest

from mevlip.flare import (
    FlareDataError,
    UnsafeArchiveError,
    discover,
    extract_all,
    image_names,
    load_records,
    parse_question_filename,
    record_key,
    resolve_image,
    resolve_images,
    safe_extract,
)
from mevlip.synth.catalog import DATASETS


def test_question_filenames():
    assert parse_question_filename("BUSI_questions_val.json") == ("BUSI", "val", False)
    assert parse_question_filename("BUS-UCLM-det_questions_train.json") == ("BUS-UCLM-det", "train", False)
    assert parse_question_filename("dental_questions_val_withGT.json") == ("dental", "val", True)
    assert parse_question_filename("iugc_questions_test.json") == ("iugc", "test", False)
    assert parse_question_filename("IU_XRay_all_val.json") is None
    assert parse_question_filename("_questions_val.json") is None
    assert parse_question_filename("notes.txt") is None


def test_discovery_on_mini_flare(mini_flare_tiny):
    train = discover(mini_flare_tiny, ["training"])
    assert sorted(f.dataset for f in train) == sorted(d.name for d in DATASETS)
    assert {f.kind for f in train} == {"train"} and not any(f.with_gt for f in train)
    hidden = {d.name for d in DATASETS if d.hidden}
    # scoring: the _withGT file replaces the blank hidden file; answering: never a _withGT file
    prefer = discover(mini_flare_tiny, ["validation-public", "validation-hidden"], gt="prefer")
    assert len(prefer) == 19
    assert {f.dataset for f in prefer if f.with_gt} == hidden
    exclude = discover(mini_flare_tiny, ["validation-public", "validation-hidden"], gt="exclude")
    assert len(exclude) == 19 and not any(f.with_gt for f in exclude)
    assert len(discover(mini_flare_tiny, ["validation-hidden"], gt="all")) == 14
    assert {f.dataset for f in discover(mini_flare_tiny, ["testing"], gt="only")} == hidden
    assert all(f.category in f.path.parts and f.split in f.path.parts for f in prefer)
    # the default walks every split, in a stable order
    everything = discover(mini_flare_tiny)
    assert everything == discover(mini_flare_tiny) and len(everything) == 19 + 19 + 7


def test_discovery_errors(tmp_path, mini_flare_tiny):
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        discover(mini_flare_tiny, ["validation"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discover(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="gt must be"):
        discover(mini_flare_tiny, gt="maybe")


def test_record_key_matches_organisers_format():
    rec = {"ImageName": ["imagesVal/a.jpg", "imagesVal/b.jpg"], "Question": "Q?"}
    assert record_key(rec) == "['imagesVal/a.jpg', 'imagesVal/b.jpg']||Q?"
    assert record_key({"ImageName": "imagesVal/a.jpg", "Question": "Q?"}) == "imagesVal/a.jpg||Q?"
    assert image_names(rec) == ["imagesVal/a.jpg", "imagesVal/b.jpg"]


GOOD = {"TaskType": "Classification", "Modality": "X-ray", "ImageName": "imagesVal/x.png", "Question": "Q? A: y",
        "Answer": "A", "Split": "val"}


def test_bad_records_are_reported_with_file_and_index(tmp_path):
    path = tmp_path / "demo" / "Xray" / "toy" / "toy_questions_val.json"
    path.parent.mkdir(parents=True)
    records = [
        GOOD,
        {k: v for k, v in GOOD.items() if k != "Question"},  # 1: missing field
        {**GOOD, "ImageName": []},  # 2: empty image list
        {**GOOD, "TaskType": "segmentation"},  # 3: unknown task
        "not a record",  # 4
        {**GOOD, "ImageName": ["imagesVal/a.png", "imagesVal/b.png"], "Question": "Q2"},
        {**GOOD, "Answer": ""},  # valid unless answers are required
    ]
    path.write_text(json.dumps(records))
    loaded = load_records(path)
    assert loaded.indices == [0, 5, 6]
    assert [p.index for p in loaded.problems] == [1, 2, 3, 4]
    assert all(p.path == str(path) for p in loaded.problems)
    assert "missing field(s) Question" in loaded.problems[0].reason
    assert "unknown TaskType 'segmentation'" in loaded.problems[2].reason
    assert str(loaded.problems[3]).startswith(f"{path} record 4:")
    assert load_records(path, require_answer=True).indices == [0, 5]
    with pytest.raises(FlareDataError, match=r"toy_questions_val.json record 1: missing field"):
        load_records(path, strict=True)


def test_broken_question_files_are_clear_errors(tmp_path):
    broken = tmp_path / "x_questions_val.json"
    broken.write_text("[{")
    with pytest.raises(FlareDataError, match="x_questions_val.json: not valid JSON"):
        load_records(broken)
    broken.write_text('{"a": 1}')
    with pytest.raises(FlareDataError, match="expected a JSON list"):
        load_records(broken)


def test_image_resolution_with_lenient_fallbacks(tmp_path):
    (tmp_path / "imagesVal").mkdir()
    (tmp_path / "imagesVal" / "a.png").write_bytes(b"x")
    (tmp_path / "b.png").write_bytes(b"x")
    assert resolve_image(tmp_path, "imagesVal/a.png") == tmp_path / "imagesVal" / "a.png"
    assert resolve_image(tmp_path, "imagesTr/a.png") == tmp_path / "imagesVal" / "a.png"  # other image folder
    assert resolve_image(tmp_path, "a.png") == tmp_path / "imagesVal" / "a.png"  # bare name
    assert resolve_image(tmp_path, "imagesVal/b.png") == tmp_path / "b.png"  # prefix stripped
    assert resolve_images(tmp_path, {"ImageName": ["a.png", "b.png"]})[1] == tmp_path / "b.png"
    with pytest.raises(FileNotFoundError, match=r"image 'imagesVal/c.png' not found under"):
        resolve_image(tmp_path, "imagesVal/c.png")


def test_mini_flare_images_resolve_after_extraction(mini_flare_tiny, tmp_path):
    root = tmp_path / "mf"
    shutil.copytree(mini_flare_tiny, root)
    files = discover(root, ["training", "validation-public", "validation-hidden", "testing"])
    written = extract_all(files)
    assert sum(written.values()) > 0
    for qfile in files:
        for record in load_records(qfile, strict=True).records:
            assert all(p.is_file() for p in resolve_images(qfile.dataset_dir, record))
    assert sum(extract_all(files).values()) == 0  # idempotent: nothing to redo


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in members:
            zf.writestr(info, data)


@pytest.mark.parametrize("name", ["../evil.txt", "imagesTr/../../evil.txt", "/tmp/evil_abs.txt", "C:/evil.txt"])
def test_zip_guard_refuses_escaping_members(tmp_path, name):
    dest = tmp_path / "dataset"
    dest.mkdir()
    archive = dest / "imagesTr.zip"
    _zip(archive, [("imagesTr/ok.png", b"fine"), (name, b"pwned")])
    with pytest.raises(UnsafeArchiveError, match="refusing"):
        safe_extract(archive)
    # checked before anything is written: not even the harmless member was extracted
    assert not (dest / "imagesTr").exists()
    assert not (tmp_path / "evil.txt").exists() and not os.path.exists("/tmp/evil_abs.txt")


def test_zip_guard_refuses_symlinks(tmp_path):
    archive = tmp_path / "imagesVal.zip"
    info = zipfile.ZipInfo("imagesVal/link.png")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    _zip(archive, [(info, "/etc/passwd")])
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract(archive)
    assert not (tmp_path / "imagesVal" / "link.png").exists()


def test_zip_extraction_is_idempotent_and_repairs_partial_runs(tmp_path):
    archive = tmp_path / "imagesTr.zip"
    _zip(archive, [("imagesTr/a.png", b"aaaa"), ("imagesTr/b.png", b"bbbbbb")])
    assert safe_extract(archive) == 2
    assert safe_extract(archive) == 0
    (tmp_path / "imagesTr" / "b.png").write_bytes(b"bb")  # truncated by an interrupted run
    assert safe_extract(archive) == 1
    assert (tmp_path / "imagesTr" / "b.png").read_bytes() == b"bbbbbb"
    not_zip = tmp_path / "imagesVal.zip"
    not_zip.write_bytes(b"no zip")
    with pytest.raises(FlareDataError, match="imagesVal.zip: not a zip archive"):
        safe_extract(not_zip)
