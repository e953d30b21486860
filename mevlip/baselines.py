"""The constant baseline: an answer that knows each dataset's format and training statistics, but not the image.

Per (dataset, task type), from the training records: the majority answer (classification), the most frequent label
set (multi-label), the mean training box (detection), the mean box of each instance id repeated its median number
of times (instance detection), the training mean (counting, regression) and the most frequent sentence (report
generation). A model that does not beat it has not learned to read the image.

    python -m mevlip.baselines --dataset_root <FLARE root> --output predictions_constant.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from mevlip.answers import (
    format_boxes,
    format_count,
    format_instances,
    format_percentage,
    parse_boxes,
    parse_instances,
    parse_number,
)
from mevlip.flare import VALIDATION_SPLITS, discover, iter_records
from mevlip.tasks import normalize_task_type


def fit_constants(root: str | Path, splits: tuple[str, ...] = ("training",)) -> dict[tuple[str, str], str]:
    """The constant answer of every (dataset, canonical task) seen in the training records."""
    answers: dict[tuple[str, str], list[str]] = defaultdict(list)
    for qfile, _, record in iter_records(discover(root, splits), require_answer=True):
        answers[(qfile.dataset, normalize_task_type(record["TaskType"]))].append(str(record["Answer"]).strip())
    return {key: _constant(key[1], values) for key, values in sorted(answers.items())}


def _constant(task: str, values: list[str]) -> str:
    if task in ("classification", "multi_label_classification", "report_generation"):
        return Counter(values).most_common(1)[0][0]
    if task in ("counting", "regression"):
        numbers = [n for n in map(parse_number, values) if n is not None]
        mean = float(np.mean(numbers)) if numbers else 0.0
        return format_count(mean) if task == "counting" else format_percentage(mean)
    if task == "detection":
        boxes = [b for v in values for b in (parse_boxes(v) or [])]
        return format_boxes([np.mean(boxes, axis=0)]) if boxes else "[]"
    per_id: dict[str, list] = defaultdict(list)
    counts: dict[str, list[int]] = defaultdict(list)
    for v in values:
        for key, boxes in (parse_instances(v) or {}).items():
            per_id[key] += boxes
            counts[key].append(len(boxes))
    return format_instances({k: [np.mean(per_id[k], axis=0)] * round(statistics.median(counts[k])) for k in per_id})


def predict(constants: dict[tuple[str, str], str], root: str | Path, splits=VALIDATION_SPLITS) -> list[dict]:
    """Constant predictions for every record to answer under ``root`` (input records, ``Answer`` replaced)."""
    out = []
    for qfile in discover(root, splits, gt="exclude"):
        if qfile.kind == "train":
            continue
        for record in json.loads(qfile.path.read_text(encoding="utf-8")):
            task = normalize_task_type(record["TaskType"])
            out.append({**record, "Answer": constants.get((qfile.dataset, task), "")})
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    """Fit on the training split, predict the validation splits, write the predictions file."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset_root", required=True, help="FLARE-format root (training split used for the constants)")
    p.add_argument("--splits", nargs="*", default=list(VALIDATION_SPLITS), help="splits to predict")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    constants = fit_constants(args.dataset_root)
    predictions = predict(constants, args.dataset_root, args.splits)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(predictions, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(predictions)} constant predictions ({len(constants)} dataset/task constants) to {args.output}")
    return predictions


if __name__ == "__main__":
    main()
