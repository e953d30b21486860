"""FLARE-access cases the mutation run (``make mutation``, docs/mutation.md) showed untested.

Candidate paths follow ``docs/flare_format.md`` 1.3 (the baselines' lenient order), written out by hand; messages
as the functions document them.
"""

import json
import os
import zipfile
from pathlib import Path

import pytest

from mevlip.flare import (
    DamagedArchiveError,
    FlareDataError,
    QuestionFile,
    UnsafeArchiveError,
    UnsafePathError,
    ZipLimits,
    _check_member,
    check_inside,
    discover,
    extract_all,
    extract_dataset_zips,
    image_candidates,
    iter_records,
    load_records,
    resolve_image,
    safe_extract,
    unsafe_name_reason,
    validate_record,
    zip_limits_from_args,
)

DIRS = ("imagesTr", "imagesVal", "imagesTs", "images")


def test_candidates_in_the_documented_order():
    ds = Path("/d")
    # an image folder first: the name as given, without the folder (at the root, then in each image folder),
    # then the bare file name (the same paths again are not repeated)
    assert image_candidates(ds, "imagesTr/sub/a.png") == [
        ds / "imagesTr/sub/a.png", ds / "sub/a.png", *(ds / d / "sub/a.png" for d in DIRS[1:]),
        ds / "a.png", *(ds / d / "a.png" for d in DIRS)]
    # another folder first: it is not stripped
    assert image_candidates(ds, "x/y/a.png") == [ds / "x/y/a.png", ds / "a.png", *(ds / d / "a.png" for d in DIRS)]
    assert image_candidates(ds, "a.png") == [ds / "a.png", *(ds / d / "a.png" for d in DIRS)]
    assert image_candidates(ds, "images\\b.png")[:2] == [ds / "images/b.png", ds / "b.png"]  # Windows separators


def test_resolve_image_finds_backslash_names_and_names_what_it_tried(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "imagesTr" / "a.png").write_bytes(b"x")
    assert resolve_image(tmp_path, "imagesTr\\a.png") == tmp_path / "imagesTr" / "a.png"
    with pytest.raises(FileNotFoundError) as err:
        resolve_image(tmp_path, "imagesTr/b.png")
    tried = ", ".join(str(p) for p in (tmp_path / "imagesTr/b.png", tmp_path / "b.png", tmp_path / "imagesVal/b.png",
                                       tmp_path / "imagesTs/b.png"))
    assert str(err.value) == f"image 'imagesTr/b.png' not found under {tmp_path} (tried {tried}, ...)"


def test_a_link_out_of_the_dataset_is_refused_with_its_target(tmp_path):
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"x")
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "a.png").symlink_to(outside)
    with pytest.raises(UnsafePathError) as err:
        resolve_image(ds, "a.png")
    real = os.path.realpath(outside)
    assert str(err.value) == f"image 'a.png': {ds / 'a.png'} is a symbolic link to {real}, outside {ds}; refused"


def test_check_inside_the_root_folder_and_a_folder_with_a_trailing_space(tmp_path):
    check_inside("/", tmp_path, "x")  # everything is inside "/"
    spaced = tmp_path / "ds "
    spaced.mkdir()
    (spaced / "a.png").write_bytes(b"x")
    check_inside(spaced, spaced / "a.png", "x")
    check_inside(spaced, spaced, "x")  # the folder itself
    with pytest.raises(UnsafePathError):
        check_inside(spaced, tmp_path / "ds", "x")


def _zip(folder: Path, name: str, members: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / name, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return folder / name


def test_extraction_applies_the_limits_given_and_reports_per_archive(tmp_path):
    ds = tmp_path / "validation-public" / "Cat" / "ds"
    _zip(ds, "imagesVal.zip", {"imagesVal/a.png": b"12345", "imagesVal/b.png": b"678"})
    _zip(ds, "images2.zip", {"c.png": b"9"})
    (ds / "ds_questions_val.json").write_text("[]")
    small = ZipLimits(max_bytes=4)
    with pytest.raises(UnsafeArchiveError, match="imagesVal.zip: expands to 8 bytes, over --zip_max_bytes 4"):
        extract_dataset_zips(ds, small)
    with pytest.raises(UnsafeArchiveError, match="over --zip_max_bytes 4"):
        extract_all(discover(tmp_path), small)
    # images2.zip was extracted by the first call (it sorts first and passes the limit): nothing left to write
    assert extract_all(discover(tmp_path)) == {str(ds / "images2.zip"): 0, str(ds / "imagesVal.zip"): 2}
    assert sorted(os.listdir(ds / "imagesVal")) == ["a.png", "b.png"]


def test_iter_records_passes_its_options_on(tmp_path):
    folder = tmp_path / "training" / "Cat" / "ds"
    folder.mkdir(parents=True)
    rows = [{"ImageName": "a.png", "Question": "Q?", "Answer": a, "TaskType": "Counting", "Modality": "CT",
             "Split": "train"} for a in ("3", "", "5")]
    (folder / "ds_questions_train.json").write_text(json.dumps(rows))
    files = discover(tmp_path)
    assert [(i, r["Answer"]) for _, i, r in iter_records(files, require_answer=True)] == [(0, "3"), (2, "5")]
    assert len(list(iter_records(files))) == 3
    assert isinstance(files[0], QuestionFile)


def test_zip_limits_at_the_size_edge_and_per_member_ratio(tmp_path):
    import random

    archive = _zip(tmp_path, "imagesTr.zip", {"a.png": b"12345", "b.png": b"678"})
    with zipfile.ZipFile(archive) as zf:
        ZipLimits(max_bytes=8).check(archive, zf.infolist())  # exactly the limit: allowed
        with pytest.raises(UnsafeArchiveError, match="expands to 8 bytes, over --zip_max_bytes 7;"):
            ZipLimits(max_bytes=7).check(archive, zf.infolist())
    # one member of zeros (ratio ~1000) hidden next to 3 MiB of random bytes: the archive's overall ratio is below
    # 2, so only the per-member check refuses it (both members are over the 1 MiB floor)
    noise = random.Random(0).randbytes(3 * 2**20)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("noise.png", noise)
        zf.writestr("zeros.png", bytes(2 * 2**20))
    with zipfile.ZipFile(bomb) as zf:
        infos = zf.infolist()
        assert sum(i.file_size for i in infos) / sum(i.compress_size for i in infos) < 2
        with pytest.raises(UnsafeArchiveError, match=r"bomb.zip: member 'zeros.png' expands \d+x \([\d,]+ -> "
                                                     r"2,097,152 bytes\), over --zip_max_ratio 100; refusing"):
            ZipLimits().check(bomb, infos)


def _info(name: str, size: int, packed: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.file_size, info.compress_size = size, packed
    return info


MIB = 2**20


@pytest.mark.parametrize("limits,infos,message", [
    # a member of exactly 1 MiB is ratio-checked (the floor is inclusive); the worst member is named, by ratio
    (ZipLimits(), [_info("a", MIB, 1)], "z.zip: member 'a' expands 1048576x (1 -> 1,048,576 bytes), over "
                                        "--zip_max_ratio 100; refusing to extract (a zip bomb?)"),
    (ZipLimits(), [_info("big", 2 * MIB, MIB), _info("b", MIB, 1024)],
     "z.zip: member 'b' expands 1024x (1,024 -> 1,048,576 bytes), over --zip_max_ratio 100; refusing to extract "
     "(a zip bomb?)"),
    # ratios 1,048,576 (x) and 786,432 (y): x is the worst
    (ZipLimits(), [_info("y", 3 * MIB // 2, 2), _info("x", MIB, 1)],
     "z.zip: member 'x' expands 1048576x (1 -> 1,048,576 bytes), over --zip_max_ratio 100; refusing to extract "
     "(a zip bomb?)"),
    (ZipLimits(max_ratio=600_000), [_info("a", MIB, 1)],
     "z.zip: member 'a' expands 1048576x (1 -> 1,048,576 bytes), over --zip_max_ratio 600000; refusing to extract "
     "(a zip bomb?)"),
    # no member reaches 1 MiB: the archive's total (exactly 1 MiB here: inclusive) is ratio-checked
    (ZipLimits(), [_info("a", MIB // 2, 1), _info("b", MIB // 2, 1)],
     "z.zip: expands 524288x (2 -> 1,048,576 bytes), over --zip_max_ratio 100; refusing to extract"),
    (ZipLimits(max_ratio=700_000), [_info("a", 600_000, 1), _info("b", 600_000, 0)],
     "z.zip: expands 1200000x (1 -> 1,200,000 bytes), over --zip_max_ratio 700000; refusing to extract"),
])
def test_zip_ratio_checks_by_hand(limits, infos, message):
    with pytest.raises(UnsafeArchiveError) as err:
        limits.check(Path("z.zip"), infos)
    assert str(err.value) == message


@pytest.mark.parametrize("limits,infos", [
    (ZipLimits(max_ratio=128), [_info("a", MIB, 8192)]),  # a ratio equal to the limit passes
    (ZipLimits(max_ratio=200), [_info("a", 600_000, 3000), _info("b", 600_000, 3000)]),
    (ZipLimits(), [_info("a", MIB - 1, 1)]),  # under the floor: neither member nor total is ratio-checked
])
def test_zip_ratio_edges_that_pass(limits, infos):
    limits.check(Path("z.zip"), infos)


# ----------------------------------------------------------------------------------------------- members, damage

@pytest.mark.parametrize("name,inside", [("imagesTr\\a.png", "imagesTr/a.png"), ("a", "a"), ("./", ".")])
def test_member_targets(tmp_path, name, inside):
    assert _check_member(Path("z.zip"), zipfile.ZipInfo(name), tmp_path) == (tmp_path / inside).resolve()


@pytest.mark.parametrize("name,why", [("C:", "has an absolute path"), ("..\\x.png", "escapes the folder with '..'"),
                                      ("\\x.png", "has an absolute path")])
def test_member_names_refused(tmp_path, name, why):
    with pytest.raises(UnsafeArchiveError, match=f"z.zip: member {name!r} {why}".replace("\\", "\\\\")):
        _check_member(Path("z.zip"), zipfile.ZipInfo(name), tmp_path)


def test_member_through_a_link_out_of_the_folder_is_refused(tmp_path):
    dest, other = tmp_path / "dest", tmp_path / "other"
    dest.mkdir()
    other.mkdir()
    (dest / "link").symlink_to(other)
    with pytest.raises(UnsafeArchiveError) as err:
        _check_member(Path("z.zip"), zipfile.ZipInfo("link/a.png"), dest)
    assert str(err.value) == f"z.zip: member 'link/a.png' would be written outside {dest}; refusing"


def test_directory_members_nested_first_and_a_rerun(tmp_path):
    archive = tmp_path / "imagesTr.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(zipfile.ZipInfo("x/y/"), b"")  # a folder whose parent has no entry of its own
        zf.writestr("x/y/a.png", b"123")
        zf.writestr(zipfile.ZipInfo("empty/"), b"")
    assert safe_extract(archive) == 1
    assert (tmp_path / "x" / "y" / "a.png").read_bytes() == b"123" and (tmp_path / "empty").is_dir()
    assert safe_extract(archive) == 0  # everything is there: nothing written, no error


def test_unreadable_archive_is_named(tmp_path):
    (tmp_path / "imagesTr.zip").mkdir()
    with pytest.raises(FlareDataError) as err:
        safe_extract(tmp_path / "imagesTr.zip")
    assert str(err.value) == f"{tmp_path / 'imagesTr.zip'}: cannot read (Is a directory)"


def _damaged_zip(path: Path, n_good: int, bad: dict[str, str]) -> Path:
    """A stored zip: ``n_good`` readable members, and members damaged by ``"crc"`` (a data byte flipped) or
    ``"header"`` (the local header's signature overwritten)."""
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(n_good):
            zf.writestr(f"good{i}.png", b"good data")
        for name in bad:
            zf.writestr(name, b"some image bytes")
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    with open(path, "r+b") as fh:
        for name, how in bad.items():
            info = infos[name]
            at = info.header_offset if how == "header" else info.header_offset + 30 + len(name.encode()) + 2
            fh.seek(at)
            fh.write(b"XXXX")
    return path


def test_damaged_members_are_listed_three_at_most(tmp_path):
    crc = "Bad CRC-32 for file"
    path = _damaged_zip(tmp_path / "a" / "a.zip", 1, {"b1.png": "crc", "b2.png": "crc", "b3.png": "crc"})
    with pytest.raises(DamagedArchiveError) as err:
        safe_extract(path)
    listed = "; ".join(f"'{n}' (BadZipFile: {crc} '{n}')" for n in ("b1.png", "b2.png", "b3.png"))
    assert str(err.value) == f"{path}: 3 damaged member(s) skipped (1 extracted): {listed}"
    path = _damaged_zip(tmp_path / "b" / "b.zip", 0, {f"c{i}.png": "crc" for i in range(4)})
    with pytest.raises(DamagedArchiveError) as err:
        safe_extract(path)
    assert str(err.value).startswith(f"{path}: 4 damaged member(s) skipped (0 extracted): 'c0.png' ")
    assert str(err.value).endswith(f"'c2.png' (BadZipFile: {crc} 'c2.png') ...")
    # a member whose header cannot be read fails before its temporary file exists
    path = _damaged_zip(tmp_path / "c" / "c.zip", 1, {"h.png": "header"})
    with pytest.raises(DamagedArchiveError, match=r"1 damaged member\(s\) skipped \(1 extracted\): 'h.png' "
                                                  r"\(BadZipFile: Bad magic number for file header\)$"):
        safe_extract(path)
    assert (tmp_path / "c" / "good0.png").read_bytes() == b"good data" and not list(tmp_path.rglob("*.part"))


def test_a_write_failure_is_raised_as_it_is(tmp_path, monkeypatch):
    import errno

    import mevlip.flare as flare

    archive = _zip(tmp_path, "imagesTr.zip", {"a.png": b"123"})

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(flare, "open", disk_full, raising=False)  # the temporary file cannot be created
    with pytest.raises(OSError) as err:
        safe_extract(archive)
    assert err.value.errno == errno.ENOSPC
    assert not list(tmp_path.glob("*.part"))


def test_zip_limits_from_arguments_and_their_checks():
    import argparse

    assert zip_limits_from_args({"zip_max_bytes": 5, "zip_max_ratio": 2.5}) == ZipLimits(5, 2.5)
    assert zip_limits_from_args(argparse.Namespace(zip_max_bytes=7, zip_max_ratio=3.0)) == ZipLimits(7, 3.0)
    assert zip_limits_from_args({}) == ZipLimits() == ZipLimits(32 * 2**30, 100.0)
    ZipLimits(1, 1)  # the smallest limits allowed
    for bytes_, ratio in ((0, 100.0), (1, 0.5), (1, float("nan"))):
        with pytest.raises(ValueError) as err:
            ZipLimits(bytes_, ratio)
        assert str(err.value) == f"--zip_max_bytes must be >= 1 and --zip_max_ratio >= 1, got {bytes_} and {ratio}"


def test_load_records_of_a_file_not_named_as_a_question_file(tmp_path):
    path = tmp_path / "validation-public" / "CT" / "ds" / "records.json"
    path.parent.mkdir(parents=True)
    path.write_text("[]")
    qfile = load_records(path).file
    assert (qfile.split, qfile.category, qfile.dataset, qfile.kind, qfile.with_gt) == (
        "validation-public", "CT", "records", "val", False)
    named = path.with_name("ds_questions_test_withGT.json")
    named.write_text("[]")
    assert (load_records(named).file.dataset, load_records(named).file.kind, load_records(named).file.with_gt) == (
        "ds", "test", True)


def test_load_records_errors_and_the_warning_per_skipped_record(tmp_path, caplog):
    folder = tmp_path / "training" / "CT" / "ds"
    folder.mkdir(parents=True)
    with pytest.raises(FlareDataError) as err:
        load_records(folder)  # a folder, not a file
    assert str(err.value) == f"{folder}: cannot read (Is a directory)"
    path = folder / "ds_questions_train.json"
    path.write_text('{"a": 1}')
    with pytest.raises(FlareDataError) as err:
        load_records(path)
    assert str(err.value) == f"{path}: expected a JSON list of records, got dict"
    path.write_text(json.dumps([{"ImageName": "a.png"}]))
    with caplog.at_level("WARNING", logger="mevlip.flare"):
        loaded = load_records(path)
    assert caplog.messages == [f"skipping {path} record 0: missing field(s) TaskType, Question, Answer"] == [
        f"skipping {loaded.problems[0]}"]


def test_only_gt_files_means_no_plain_file_even_without_a_gt_twin(mini_flare_tiny):
    # validation-public holds plain files only (their answers are inline): "only" finds none of them, where
    # "prefer" keeps a plain file that has no _withGT twin
    assert discover(mini_flare_tiny, ["validation-public"], gt="only") == []
    assert len(discover(mini_flare_tiny, ["validation-public"], gt="prefer")) > 0


def test_an_unknown_split_is_named_with_the_known_ones(mini_flare_tiny):
    with pytest.raises(ValueError) as err:
        discover(mini_flare_tiny, ["validation"])
    assert str(err.value) == ("unknown split 'validation'; known splits: training, validation-public, "
                              "validation-hidden, testing")


# ----------------------------------------------------------------------------------------------- full run survivors
# (2026-12-03): each case below failed before on a mutant that every other test let through.
def test_a_json_file_that_is_no_question_file_does_not_hide_the_ones_after_it(tmp_path):
    ds = tmp_path / "validation-public" / "Xray" / "chestdr"
    ds.mkdir(parents=True)
    for name in ("a_notes.json", "chestdr_questions_val.json"):  # sorted: the stray file comes first
        (ds / name).write_text("[]", encoding="utf-8")
    assert [(f.path.name, f.dataset, f.kind) for f in discover(tmp_path)] == [
        ("chestdr_questions_val.json", "chestdr", "val")]


GOOD = {"TaskType": "Classification", "Modality": "Xray", "ImageName": "imagesVal/a.png",
        "Question": "Which class? A. x B. y", "Answer": "", "Split": "val"}


@pytest.mark.parametrize("change, reason", [
    (None, None),
    ({"ImageName": ["imagesVal/a.png", "imagesVal/b.png"]}, None),
    ({"Question": "Quelle classe ? A. caf\u00e9 B. th\u00e9", "Answer": {"1": ["\u00e9"]}}, None),  # valid non-ASCII
    ({"ImageName": ["imagesVal/a.png", 3]}, "ImageName list must hold non-empty strings"),
    ({"ImageName": ["imagesVal/a.png", ""]}, "ImageName list must hold non-empty strings"),
    ({"ImageName": []}, "ImageName list must hold non-empty strings"),
    ({"ImageName": 5}, "ImageName must be a non-empty string or a list of strings, got 5"),
    ({"ImageName": ""}, "ImageName must be a non-empty string or a list of strings, got ''"),
    ({"ImageName": "/abs/a.png"},
     "ImageName '/abs/a.png' is an absolute path; image names must be relative to the dataset folder"),
    ({"ImageName": ["ok.png", "..\\up.png"]}, "ImageName '..\\\\up.png' leaves the dataset folder with '..'"),
    ({"ImageName": ["imagesVal/\ud800.png"]}, "ImageName holds a lone surrogate (not valid Unicode text)"),
    ({"Answer": {"1": "\ud800"}}, "Answer holds a lone surrogate (not valid Unicode text)"),
    ({"Answer": {"\ud800": "1"}}, "Answer holds a lone surrogate (not valid Unicode text)"),
])
def test_validate_record_messages(change, reason):
    record = {**GOOD, **(change or {})}
    assert validate_record(record) == reason  # an empty Answer is fine unless asked for


def test_validate_record_answer_and_type_checks():
    assert validate_record({**GOOD, "Answer": " "}, require_answer=True) == "Answer is empty"
    assert validate_record([GOOD]) == "expected a JSON object, got list"
    assert validate_record("x") == "expected a JSON object, got str"


@pytest.mark.parametrize("name, reason", [
    ("a", None), ("a.png", None), ("imagesVal/a..b.png", None), ("C", None),
    ("C:", "absolute"), ("C:x.png", "absolute"), ("C:\\x.png", "absolute"), ("\\share\\x.png", "absolute"),
    ("/x.png", "absolute"),
    ("..\\x.png", "up"), ("a\\..\\..\\x.png", "up"), ("../x.png", "up"),
])
def test_unsafe_name_reasons(name, reason):
    expected = {None: None, "absolute": "is an absolute path; image names must be relative to the dataset folder",
                "up": "leaves the dataset folder with '..'"}[reason]
    assert unsafe_name_reason(name) == expected
