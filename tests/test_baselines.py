"""The constant baseline: right format, training statistics, one prediction per record to answer."""

import json
from collections import Counter

import numpy as np

from mevlip.answers import parse_answer, parse_boxes, parse_instances
from mevlip.baselines import fit_constants, main
from mevlip.flare import discover, load_records


def _train(root, dataset):
    files = [f for f in discover(root, ["training"]) if f.dataset == dataset]
    return load_records(files[0]).records


def test_constants_are_training_statistics(mini_flare_tiny):
    constants = fit_constants(mini_flare_tiny)
    busi = Counter(r["Answer"] for r in _train(mini_flare_tiny, "BUSI"))
    assert busi[constants[("BUSI", "classification")]] == max(busi.values())
    cells = [int(r["Answer"]) for r in _train(mini_flare_tiny, "neurips22cell")]
    assert constants[("neurips22cell", "counting")] == str(round(np.mean(cells)))
    boxes = [b for r in _train(mini_flare_tiny, "BUSI-det") for b in parse_boxes(r["Answer"])]
    assert parse_boxes(constants[("BUSI-det", "detection")]) == [[round(v) for v in np.mean(boxes, axis=0)]]
    chromosome = parse_instances(constants[("chromosome", "instance_detection")])
    seen = [parse_instances(r["Answer"]) for r in _train(mini_flare_tiny, "chromosome")]
    for cid, boxes in chromosome.items():  # each id: its mean box, repeated its median number of times
        counts = [len(a[cid]) for a in seen if cid in a]
        mean = np.mean([b for a in seen for b in a.get(cid, [])], axis=0)
        assert len(boxes) == round(float(np.median(counts))) and all(b == boxes[0] for b in boxes)
        assert boxes[0] == [round(v) for v in mean]
    for (_, task), value in constants.items():  # every constant is in its task's format
        assert parse_answer(task, value) is not None


def test_predictions_cover_every_record_to_answer(mini_flare_tiny, tmp_path):
    preds = main(["--dataset_root", str(mini_flare_tiny), "--output", str(tmp_path / "p.json")])
    files = [f for f in discover(mini_flare_tiny, ["validation-public", "validation-hidden"], gt="exclude")]
    assert len(preds) == sum(len(load_records(f).records) for f in files)
    assert json.loads((tmp_path / "p.json").read_text()) == preds
    assert all(p["Answer"] for p in preds)  # every dataset/task of the validation sets was seen in training


def _write_training(root, dataset, task_type, answers):
    folder = root / "training" / "Category" / dataset
    folder.mkdir(parents=True)
    records = [{"ImageName": f"imagesTr/{i}.png", "Question": "Q?", "Answer": a, "TaskType": task_type,
                "Modality": "X-ray", "Split": "train"}
               for i, a in enumerate(answers)]
    (folder / f"{dataset}_questions_train.json").write_text(json.dumps(records), encoding="utf-8")


def test_constants_by_hand(tmp_path):
    """Hand-worked constants on a crafted training split: the mean (not the first, last or median value) for
    regression and counting, the majority answer, the mean box."""
    _write_training(tmp_path, "abr", "regression", ["10.0", "20.0", "36.0"])  # mean 22.0, median 20.0
    _write_training(tmp_path, "cells", "Counting", ["3", "4", "10"])  # mean 5.67 -> "6", median 4
    _write_training(tmp_path, "busi", "Classification", ["B", "A", "B"])
    _write_training(tmp_path, "det", "detection", ["[[0, 0, 10, 10]]", "[[10, 20, 30, 40]]"])
    constants = fit_constants(tmp_path)
    assert constants == {("abr", "regression"): "22.0", ("busi", "classification"): "B",
                         ("cells", "counting"): "6", ("det", "detection"): "[[5, 10, 20, 25]]"}
