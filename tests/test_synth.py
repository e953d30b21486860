"""mini-FLARE: the exact FLARE on-disk format, every task type, answers that parse and that the images carry."""

import hashlib
import io
import json
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mevlip.answers import parse_answer, parse_boxes, parse_instances, parse_number, split_labels
from mevlip.flare import discover, image_names, load_records, record_key
from mevlip.question_options import INTROS, JOINERS, MARKERS, split_options
from mevlip.synth import MARKER, generate, is_mini_flare
from mevlip.synth.__main__ import main as synth_main
from mevlip.synth.catalog import BY_NAME, DATASETS, WHOLE_KARYOTYPE, rows_for
from mevlip.synth.draw import hues
from mevlip.synth.samples import BCN, CHESTDR, CHROMOSOMES, CMMD_QUESTIONS, PERIAPICAL, chromosome
from mevlip.tasks import TASK_NAMES, normalize_task_type


def _all_records(root, splits=None, gt="prefer"):
    for qfile in discover(root, splits, gt=gt):
        for record in load_records(qfile, strict=True).records:
            yield qfile, record


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_cli_creates_all_19_datasets_with_every_task_type(tmp_path, capsys):
    summary = synth_main(["--out", str(tmp_path / "mf"), "--scale", "tiny", "--no-progress"])
    out = capsys.readouterr().out
    assert "| task type | records |" in out and "instance_detection" in out
    assert len(summary["per_dataset"]) == 19
    assert set(summary["per_task"]) == set(TASK_NAMES)
    assert json.loads((tmp_path / "mf" / MARKER).read_text())["synthetic"] is True
    assert is_mini_flare(tmp_path / "mf") and not is_mini_flare(tmp_path)


def test_layout_names_and_fields(mini_flare_tiny):
    root = mini_flare_tiny
    for spec in DATASETS:
        train = root / "training" / spec.category / spec.name
        assert (train / f"{spec.name}_questions_train.json").is_file() and (train / "imagesTr.zip").is_file()
        val = root / spec.val_split / spec.category / spec.name
        assert (val / f"{spec.name}_questions_val.json").is_file() and (val / "imagesVal.zip").is_file()
        assert (val / f"{spec.name}_questions_val_withGT.json").is_file() == spec.hidden
        assert (root / "testing" / spec.category / spec.name / "imagesTs.zip").is_file() == spec.hidden
        for zip_path, folder in ((train / "imagesTr.zip", "imagesTr"), (val / "imagesVal.zip", "imagesVal")):
            names = zipfile.ZipFile(zip_path).namelist()
            assert names and all(n.startswith(folder + "/") and n.count("/") == 1 for n in names)
    public = {p.parent.name for p in (root / "validation-public").glob("*/*/*.json")}
    assert public == {"IU_XRay", "chestdr", "endo", "neojaundice", "CMMD", "retino", "BUSI-det", "BUSI",
                      "BUS-UCLM", "BUS-UCLM-det", "neurips22cell", "bcn20000"}


def test_record_conventions(mini_flare_tiny):
    spellings: dict[str, set] = {}
    for qfile, record in _all_records(mini_flare_tiny, gt="all"):
        spec = BY_NAME[qfile.dataset]
        assert set(record) == {"TaskType", "Modality", "ImageName", "Question", "Answer", "Split"}
        assert record["Modality"] == spec.modality
        spellings.setdefault(qfile.dataset, set()).add(record["TaskType"])
        expected_split = {"train": "train", "test": "test", "val": spec.val_split_value}[qfile.kind]
        assert record["Split"] == expected_split
        assert isinstance(record["ImageName"], list) == (qfile.dataset in ("neojaundice", "bcn20000", "IU_XRay"))
        blank = qfile.kind != "train" and spec.hidden and not qfile.with_gt
        assert (record["Answer"] == "") == blank
    # per-dataset TaskType casing of the real data (flare_format.md 2.1)
    assert spellings["bone_marrow"] == {"classification"} and spellings["retino"] == {"Classification"}
    assert spellings["chestdr"] == {"Multi-label Classification"}
    assert spellings["periapical"] == {"multi-label classification"}
    assert spellings["IU_XRay"] == {"Report_Generation"} and spellings["neurips22cell"] == {"Counting"}
    assert spellings["chromosome"] == {"instance_detection"} and spellings["BUSI-det"] == {"detection"}
    assert {"Classification", "Detection"} <= spellings["iugc"]


def test_option_questions_vary_as_real_flare_with_a_fixed_letter_per_class(tmp_path):
    """Wordings vary (option markers, separators, intros, yes/no, "which of the following", "coordinates of"), but
    within a dataset's question type the options always come in one order, so each letter keeps its class."""
    root = tmp_path / "mf"
    generate(root, "small", seed=0, datasets=["dental", "fundus", "iugc", "BUSI", "BUSI-det", "bone_marrow"])
    texts, options = [], {}
    for qfile, record in _all_records(root, gt="exclude"):
        q = record["Question"]
        texts.append(q)
        parts = split_options(q)
        if normalize_task_type(record["TaskType"]) == "classification":
            assert parts is not None, q  # every option question's list is found again
            key = (qfile.dataset, frozenset(parts[1]))
            options.setdefault(key, set()).add(tuple(parts[1]))
    assert options and all(len(orders) == 1 for orders in options.values()), options
    assert options["dental", frozenset({"No", "Yes"})] == {("No", "Yes")}  # binary, written as the real data
    joined = "\n".join(texts)
    for marker in MARKERS:  # every option style occurs: "A: x", "A. x", "(A) x", "A) x"
        assert marker.format(l="B", x="") in joined, marker
    assert all(intro.strip() in joined for intro in INTROS if intro) and any("\nB" in t for t in texts)
    assert any(j.join(["A: No", "B: Yes"]) in joined for j in JOINERS if j != "\n")
    assert "Which of the following" in joined and "coordinates of the" in joined and "Question: " in joined
    detection = [r["Question"] for _, r in _all_records(root, gt="exclude") if r["TaskType"].lower() == "detection"]
    assert detection and all(split_options(q) is None for q in detection)


def test_hidden_files_hold_the_same_records_without_answers(mini_flare_tiny):
    for qfile in discover(mini_flare_tiny, ["validation-hidden", "testing"], gt="only"):
        with_gt = load_records(qfile).records
        blank = load_records(qfile.path.with_name(qfile.path.name.replace("_withGT", ""))).records
        assert [record_key(r) for r in blank] == [record_key(r) for r in with_gt]
        assert all(r["Answer"] == "" for r in blank) and all(r["Answer"] for r in with_gt)


def test_every_answer_parses_in_its_task_format(mini_flare_tiny):
    seen = Counter()
    for qfile, record in _all_records(mini_flare_tiny):
        task, answer = normalize_task_type(record["TaskType"]), record["Answer"]
        assert isinstance(answer, str) and answer == answer.strip()
        parsed = parse_answer(task, answer)
        assert parsed is not None, (qfile.path, record)
        seen[task] += 1
        if task == "classification":
            words = [w for labels, _ in CMMD_QUESTIONS.values() for w in labels]
            assert answer in words if qfile.dataset == "CMMD" else (len(answer) == 1 and answer.isupper())
        elif task == "multi_label_classification":
            vocab = PERIAPICAL if qfile.dataset == "periapical" else CHESTDR + ["Normal"]
            labels = split_labels(answer)
            assert labels and set(labels) <= set(vocab)
            assert ("; " in answer) == (qfile.dataset == "periapical" and len(labels) > 1)
        elif task == "detection":
            boxes = parse_boxes(answer)
            assert json.loads(answer) == boxes and all(b[2] > b[0] and b[3] > b[1] for b in boxes)
            if qfile.dataset == "iugc":
                assert len(boxes) == 1
        elif task == "instance_detection":
            inst = parse_instances(answer)
            assert set(inst) <= {str(i) for i in range(1, 23)} | {"X", "Y"}
            assert 3 <= sum(len(v) for v in inst.values()) <= 8  # tiny: partial spreads (whole ones tested below)
        elif task == "counting":
            assert answer.isdigit() and int(answer) >= 1
        elif task == "regression":
            assert answer == f"{parse_number(answer):.1f}"
    assert set(seen) == set(TASK_NAMES)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    some = ["BUSI", "chromosome", "IU_XRay", "periapical"]
    generate(tmp_path / "a", "tiny", seed=3, datasets=some)
    generate(tmp_path / "b", "tiny", seed=3, datasets=some)
    generate(tmp_path / "c", "tiny", seed=4, datasets=some)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_scales():
    assert rows_for(BY_NAME["BUSI"], "val", "full") == 156
    assert rows_for(BY_NAME["BUSI"], "test", "full") == 0 and rows_for(BY_NAME["dental"], "test", "full") == 1199
    full = sum(rows_for(d, p, "full") for d in DATASETS for p in ("train", "val"))
    assert abs(full - 58_112) <= 19  # the published Q&A count, up to rounding
    with pytest.raises(ValueError, match="unknown scale"):
        rows_for(BY_NAME["BUSI"], "val", "huge")


# --------------------------------------------------------------------------------- the images carry the answers
def _image(root, qfile, name):
    zf = zipfile.ZipFile(next(qfile.dataset_dir.glob("images*.zip")))
    return np.asarray(Image.open(io.BytesIO(zf.read(name))).convert("RGB")).astype(int)


def test_answers_are_recoverable_from_pixels(tmp_path):
    root = tmp_path / "mf"
    generate(root, "tiny", seed=1, datasets=["neurips22cell", "boneresorption", "BUSI-det", "bcn20000"])
    checked = Counter()
    for qfile, record in _all_records(root, ["training"]):
        checked[qfile.dataset] += 1
        image = _image(root, qfile, image_names(record)[0])
        if qfile.dataset == "neurips22cell":  # cells are 7x7 green squares that never overlap: area = 49 x count
            n = int(record["Answer"])
            dots = int(((image[..., 1] > 200) & (image[..., 0] < 160)).sum())
            assert dots == 49 * n
        elif qfile.dataset == "boneresorption":  # the filled share of the bar is the percentage
            filled = int((image[4:60, 32, 0] > 235).sum())
            assert abs(filled / 55 * 100 - float(record["Answer"])) < 3.0
        elif qfile.dataset == "BUSI-det":  # lesions are bright, the background dark
            for x1, y1, x2, y2 in parse_boxes(record["Answer"]):
                cy, cx = (y1 + y2) // 2, (x1 + x2) // 2
                assert image[cy, cx].mean() > 180 and image[y1:y2, x1:x2].mean() > image.mean() + 40
        elif qfile.dataset == "bcn20000":  # the lesion colour is the diagnosis
            from mevlip.synth.draw import PALETTE

            centre = image[28:36, 28:36].reshape(-1, 3).mean(0)
            nearest = int(np.argmin([np.abs(centre - np.array(c)).sum() for c in PALETTE[: len(BCN)]]))
            assert "ABCDEFGH"[nearest] == record["Answer"]
    assert set(checked) == {"neurips22cell", "boneresorption", "BUSI-det", "bcn20000"}


def test_chromosome_spreads_whole_at_full_scale_partial_below(tmp_path):
    rng = np.random.default_rng(3)
    for whole in (True, False):
        for _ in range(5):
            group = chromosome(rng, whole=whole)
            image = np.asarray(group.images[0][1]).astype(int)
            instances = parse_instances(group.rows[0].answer)
            boxes = [(cid, b) for cid, bs in instances.items() for b in bs]
            if whole:  # 22 autosome pairs + XX or XY
                assert len(boxes) == 46 and len(instances["1"]) == 2 and len(instances["X"]) in (1, 2)
            else:
                assert 3 <= len(boxes) <= 8
            colours = np.array(hues(len(CHROMOSOMES), 0.8, 0.7))
            for cid, (x1, y1, x2, y2) in boxes:  # the colour of each box is its id
                centre = image[(y1 + y2) // 2, (x1 + x2) // 2]
                assert CHROMOSOMES[int(np.argmin(np.abs(colours - centre).sum(1)))] == cid
    assert WHOLE_KARYOTYPE == {"tiny": False, "small": False, "full": True}
    generate(tmp_path / "mf", "tiny", seed=0, datasets=["chromosome"])
    (qfile,) = [q for q in discover(tmp_path / "mf", ["training"])]
    answers = [parse_instances(r["Answer"]) for r in json.loads(qfile.path.read_text())]
    assert all(3 <= sum(map(len, a.values())) <= 8 for a in answers)


def test_generate_refuses_a_folder_of_data_it_did_not_write(tmp_path, capsys):
    from mevlip.synth import MARKER, SynthTargetError
    from mevlip.synth.__main__ import main

    real = tmp_path / "original_dataset" / "validation-public" / "Xray" / "dental"
    real.mkdir(parents=True)
    (real / "dental_questions_val.json").write_text('[{"Question": "real"}]')
    with pytest.raises(SynthTargetError, match=f"holds files that mini-FLARE did not write \\(no {MARKER}\\)"):
        generate(tmp_path / "original_dataset", "tiny", seed=0, datasets=["dental"])
    assert (real / "dental_questions_val.json").read_text() == '[{"Question": "real"}]'  # untouched
    assert not (tmp_path / "original_dataset" / MARKER).exists()
    with pytest.raises(SystemExit) as err:  # the command line: one line, exit 2
        from mevlip.cli import run_cli

        run_cli(main, ["--output_dir", str(tmp_path / "original_dataset"), "--datasets", "dental", "--no_progress"])
    assert err.value.code == 2 and "refusing to write over them" in capsys.readouterr().err
    # its own folder, even one a stopped run left half written (the marker is written first), is written again
    ours = tmp_path / "ours"
    generate(ours, "tiny", seed=0, datasets=["dental"])
    (ours / MARKER).write_text('{"synthetic": true, "complete": false}')
    assert generate(ours, "tiny", seed=0, datasets=["dental"])["records"] > 0
