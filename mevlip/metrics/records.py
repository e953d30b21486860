"""Ground truth, predictions and their matching by record key (step 1 of the evaluation).

Ground truth: every question file of the chosen splits, the ``_withGT`` file wherever one exists
(:func:`mevlip.flare.discover` with ``gt="prefer"``; hidden files carry empty answers, flare_format.md 5).
Predictions: a ``predictions.json`` list of records (the input records with ``Answer`` overwritten).

Matching is by :func:`mevlip.flare.record_key` (``str(ImageName) + "||" + Question``, the key of the organisers'
PaliGemma evaluator, flare_format.md 4.B and 5), never by position. A key can occur more than once (the real
hidden set repeats one periapical question): the i-th ground-truth occurrence takes the i-th prediction
occurrence of that key; a prediction occurrence beyond the ground truth's is a duplicate and is ignored.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from mevlip.answers import answer_value_problem, parse_number
from mevlip.flare import FlareDataError, discover, load_records, record_key
from mevlip.tasks import normalize_task_type

logger = logging.getLogger(__name__)


class PredictionFileError(ValueError):
    """The predictions file cannot be used at all (not JSON, not a list); the message names the file."""


@dataclass
class Sample:
    """One ground-truth record and its prediction (``prediction`` is None and ``status`` "missing" if none)."""

    key: str
    dataset: str
    split: str
    task: str
    target: object
    prediction: object = None
    status: str = "missing"
    problem: str | None = None  # why its reference answer cannot be scored (listed in gt_problems, not scored)


@dataclass
class MatchResult:
    """Samples to score and the bookkeeping of what did not match."""

    samples: list[Sample] = field(default_factory=list)
    n_gt: int = 0
    n_predictions: int = 0
    missing_keys: list[str] = field(default_factory=list)
    duplicate_prediction_keys: list[str] = field(default_factory=list)
    duplicate_gt_keys: list[str] = field(default_factory=list)
    unknown_keys: list[str] = field(default_factory=list)
    invalid_predictions: list[str] = field(default_factory=list)
    empty_gt_keys: list[str] = field(default_factory=list)
    gt_problems: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """Counts and full key lists, for the metrics JSON."""
        lists = ("missing_keys", "duplicate_prediction_keys", "duplicate_gt_keys", "unknown_keys",
                 "invalid_predictions", "empty_gt_keys", "gt_problems")
        out: dict = {"n_gt": self.n_gt, "n_predictions": self.n_predictions,
                     "n_matched": sum(s.status == "ok" for s in self.samples)}
        for name in lists:
            values = getattr(self, name)
            out[name] = {"count": len(values), "items": values}
        return out


def load_ground_truth(root: str | os.PathLike, splits: tuple[str, ...]) -> tuple[list[Sample], list[str]]:
    """Ground-truth samples (no prediction yet) and the problems met while reading them (file, index, reason).

    Raises:
        FileNotFoundError: the root does not exist, or no question file lies under the splits.
    """
    files = discover(root, splits, gt="prefer")
    if not files:
        raise FileNotFoundError(f"no question files under {root} for splits {', '.join(splits)}")
    samples: list[Sample] = []
    problems: list[str] = []
    tasks: dict[str, str] = {}  # TaskType spelling -> canonical name (a handful of spellings, 60k records)
    for qfile in files:
        loaded = load_records(qfile)
        problems += [str(p) for p in loaded.problems]
        for index, record in zip(loaded.indices, loaded.records, strict=True):
            spelling = record["TaskType"]
            task = tasks.get(spelling) or tasks.setdefault(spelling, normalize_task_type(spelling))
            sample = Sample(record_key(record), qfile.dataset, qfile.split, task, record["Answer"])
            if problem := _target_problem(task, record["Answer"]):
                # a ground truth no metric can score (NaN, a bool, a list for a count): listed, not scored
                sample.problem = f"{qfile.path} record {index}: {problem}; not scored"
                problems.append(sample.problem)
            samples.append(sample)
        if not qfile.with_gt and qfile.split in ("validation-hidden", "testing"):
            logger.warning("%s has no _withGT file next to it: its empty answers cannot be scored", qfile.path)
    _check_splits_have_ground_truth(root, splits, files, samples)
    return samples, problems


def _check_splits_have_ground_truth(root, splits: tuple[str, ...], files: list, samples: list[Sample]) -> None:
    """Refuse a split that has no question file, or whose answers are all empty (hidden files without _withGT).

    Scoring such a split would print empty tables and exit 0, as if there were nothing wrong.

    Raises:
        FlareDataError: naming the split and, for a split without answers, a file of it.
    """
    answered = {s.split for s in samples if not _is_empty(s.target)}
    for split in splits:
        split_files = [f for f in files if f.split == split]
        if not split_files:
            raise FlareDataError(f"--splits {split}: no question files under {Path(root) / split}")
        if split not in answered:
            raise FlareDataError(f"--splits {split}: no ground truth: every answer is empty (e.g. "
                                 f"{split_files[0].path}); put the _withGT files next to the question files or "
                                 "leave the split out")


def load_predictions(path: str | os.PathLike) -> list:
    """The predictions list.

    Raises:
        PredictionFileError: the file is missing, not valid JSON, or not a JSON list.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError as err:
        raise PredictionFileError(f"{path}: predictions file not found") from err
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise PredictionFileError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, list):
        raise PredictionFileError(f"{path}: expected a JSON list of prediction records, got {type(data).__name__}")
    return data


def _target_problem(task: str, answer: object) -> str | None:
    """Why a ground-truth answer cannot be scored, or ``None`` (an empty one is handled as ``empty_gt_keys``)."""
    if _is_empty(answer):
        return None
    if problem := answer_value_problem(task, answer):
        return problem
    if task in ("counting", "regression") and parse_number(answer) is None:
        return f"Answer {str(answer)[:40]!r} holds no finite number to measure an error against"
    return None


def _is_empty(answer: object) -> bool:
    return answer is None or (isinstance(answer, str) and not answer.strip())


def match_predictions(gt: list[Sample], predictions: list, missing: str = "wrong",
                      source: str = "predictions") -> MatchResult:
    """Attach each prediction to its ground-truth sample by key.

    Args:
        gt: ground-truth samples (:func:`load_ground_truth`).
        predictions: the prediction records (dicts with ``ImageName``, ``Question`` and ``Answer``).
        missing: ``"wrong"`` keeps unanswered samples (scored as an empty answer); ``"skip"`` leaves them out
            (the PaliGemma evaluator's behaviour). Both list them.
        source: the predictions file name, for messages.

    Returns:
        The match; samples whose reference answer is empty are left out and listed (nothing to score against).
    """
    if missing not in ("wrong", "skip"):
        raise ValueError(f"missing must be 'wrong' or 'skip', got {missing!r}")
    by_key: dict[str, list[object]] = defaultdict(list)
    result = MatchResult(n_gt=len(gt), n_predictions=len(predictions))
    for index, record in enumerate(predictions):
        if not isinstance(record, dict) or "ImageName" not in record or "Question" not in record:
            result.invalid_predictions.append(f"{source} record {index}: needs a JSON object with ImageName and "
                                              f"Question, got {str(record)[:80]!r}")
            continue
        by_key[record_key(record)].append(record.get("Answer"))
    gt_count: dict[str, int] = defaultdict(int)
    for sample in gt:
        gt_count[sample.key] += 1
    result.duplicate_gt_keys = sorted(k for k, c in gt_count.items() if c > 1)
    used: dict[str, int] = defaultdict(int)
    for sample in gt:
        if _is_empty(sample.target):
            result.empty_gt_keys.append(sample.key)
            continue
        if sample.problem is not None:  # listed in gt_problems by load_ground_truth; its prediction is not unknown
            continue
        answers = by_key.get(sample.key, ())
        occurrence = used[sample.key]
        used[sample.key] += 1
        if occurrence < len(answers):
            sample.prediction, sample.status = answers[occurrence], "ok"
        else:
            result.missing_keys.append(sample.key)
            if missing == "skip":
                continue
        result.samples.append(sample)
    result.unknown_keys = sorted(k for k in by_key if k not in gt_count)
    result.duplicate_prediction_keys = sorted(k for k, v in by_key.items() if k in gt_count and len(v) > gt_count[k])
    if result.missing_keys or result.unknown_keys or result.invalid_predictions:
        logger.warning("%s: %d missing, %d unknown, %d duplicate keys, %d invalid records", source,
                       len(result.missing_keys), len(result.unknown_keys), len(result.duplicate_prediction_keys),
                       len(result.invalid_predictions))
    return result
