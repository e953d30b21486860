"""The constant baseline: an answer that knows each dataset's format and training statistics, but not the image.

Per (dataset, task type), from the training records: the majority answer (classification), the most frequent label
set (multi-label), the mean training box (detection), the mean box of each instance id repeated its median number
of times (instance detection), the training mean (counting, regression) and the most frequent sentence (report
generation). A model that does not beat it has not learned to read the image.

    python -m mevlip.baselines --base_dataset_path <FLARE root> --output_file predictions_constant.json
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
from mevlip.cli import add_common_args, add_option, make_parser, run_cli, setup_logging
from mevlip.flare import VALIDATION_SPLITS, FlareDataError, discover, iter_records
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
        try:
            records = json.loads(qfile.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:  # unreadable, not UTF-8, not JSON
            raise FlareDataError(f"{qfile.path}: cannot read questions ({type(err).__name__}: {err})") from err
        for record in records:
            task = normalize_task_type(record["TaskType"])
            out.append({**record, "Answer": constants.get((qfile.dataset, task), "")})
    return out


PROG = "python -m mevlip.baselines"


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = make_parser(__doc__, prog=PROG)
    add_option(p, "--base_dataset_path", aliases=("--dataset_root",), required=True,
               help="FLARE-format root (its training split gives the constants)")
    p.add_argument("--splits", nargs="*", default=list(VALIDATION_SPLITS), help="splits to predict")
    add_option(p, "--output_file", aliases=("--output",), required=True, help="predictions.json to write")
    add_common_args(p)
    return p


def main(argv: list[str] | None = None) -> list[dict]:
    """Fit on the training split, predict the validation splits, write the predictions file."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    constants = fit_constants(args.base_dataset_path)
    predictions = predict(constants, args.base_dataset_path, args.splits)
    Path(args.output_file).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output_file).write_text(json.dumps(predictions, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(predictions)} constant predictions ({len(constants)} dataset/task constants) to "
          f"{args.output_file}")
    return predictions


if __name__ == "__main__":
    run_cli(main, prog=PROG)
