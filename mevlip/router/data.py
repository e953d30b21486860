"""The router's training data: question text -> canonical task type, in the GLiClass JSON format.

Contract with data preparation: ``<data_dir>/task_classifier/train.json`` and ``test.json``, each a JSON list of
``{"text": question, "all_labels": list(TASK_NAMES), "true_labels": [canonical task name]}``, de-duplicated by
text. :func:`build_router_sets` makes the same sets straight from FLARE question files (training split -> train,
validation splits -> test), for tests and for runs before data preparation has written them.

Leave-one-dataset-out (:func:`collect_dataset_questions`, :func:`lodo_folds`): the contract files carry no
dataset name, so the honest generalisation measure reads FLARE question files directly (``--base_dataset_path``),
where each record's dataset and task type are known.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mevlip.flare import VALIDATION_SPLITS, discover, load_records
from mevlip.tasks import TASK_NAMES, normalize_task_type

logger = logging.getLogger(__name__)

ROUTER_SUBDIR = "task_classifier"


class RouterDataError(ValueError):
    """A bad router data file; the message names the file and the record index."""


def router_example(text: str, task: str, labels: Iterable[str] = TASK_NAMES) -> dict:
    """One row of the router set: the question, the full label set and its one true label."""
    return {"text": text, "all_labels": list(labels), "true_labels": [task]}


def load_router_set(path: str | os.PathLike) -> list[dict]:
    """Read and check a router set (``train.json``/``test.json`` or the paraphrase file).

    Raises:
        RouterDataError: not a JSON list, or a row without a text, with an unknown task type, or whose true label
            is missing from its label set (file and row index in the message).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RouterDataError(f"{path}: router data file not found") from None
    except json.JSONDecodeError as err:
        raise RouterDataError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, list):
        raise RouterDataError(f"{path}: expected a JSON list of rows, got {type(data).__name__}")
    for i, row in enumerate(data):
        where = f"{path} row {i}"
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise RouterDataError(f"{where}: needs a non-empty 'text'")
        true, labels = row.get("true_labels"), row.get("all_labels")
        if not isinstance(true, list) or len(true) != 1 or not isinstance(labels, list):
            raise RouterDataError(f"{where}: needs 'all_labels' (list) and exactly one 'true_labels' entry")
        try:
            canonical = normalize_task_type(true[0])
        except ValueError as err:
            raise RouterDataError(f"{where}: {err}") from None
        if canonical != true[0] or canonical not in labels:
            raise RouterDataError(f"{where}: true label {true[0]!r} must be a canonical task name in all_labels")
    return data


def label_set(rows: list[dict], path: str = "router data") -> list[str]:
    """The one label set shared by all rows, in its written order.

    Raises:
        RouterDataError: rows disagree on ``all_labels`` (the router scores one fixed label set).
    """
    if not rows:
        raise RouterDataError(f"{path}: no rows")
    labels = list(rows[0]["all_labels"])
    for i, row in enumerate(rows):
        if list(row["all_labels"]) != labels:
            raise RouterDataError(f"{path} row {i}: all_labels {row['all_labels']} differ from row 0's {labels}")
    return labels


def collect_questions(root: str | os.PathLike, splits: Iterable[str]) -> dict[str, str]:
    """Unique question texts of some splits of a FLARE root, each with its canonical task type.

    Records are read from the participants' files (``gt="exclude"``): ``TaskType`` is filled there even when
    answers are blank (``docs/flare_format.md`` 2). A text seen under two task types keeps the first and is
    logged, since one text can route to one adapter only.
    """
    found: dict[str, str] = {}
    clashes = 0
    for qfile in discover(root, splits=splits, gt="exclude"):
        for record in load_records(qfile).records:
            task = normalize_task_type(record["TaskType"])
            previous = found.setdefault(record["Question"], task)
            if previous != task:
                clashes += 1
                logger.warning("%s: question %r is %s here but %s elsewhere; keeping %s", qfile.path,
                               record["Question"][:60], task, previous, previous)
    if clashes:
        logger.warning("%d question texts appear under two task types", clashes)
    return found


def build_router_sets(root: str | os.PathLike) -> tuple[list[dict], list[dict]]:
    """Router train and test sets from a FLARE root: the training split, and the validation splits.

    Each set is de-duplicated by text (as the data-preparation contract asks); a test text may also occur in
    train, since FLARE datasets reuse their question templates (the report counts the unseen ones separately).
    """
    train = collect_questions(root, ["training"])
    test = collect_questions(root, VALIDATION_SPLITS)
    if not train:
        raise RouterDataError(f"{root}: no training questions found (expected {root}/training/<Category>/...)")
    return ([router_example(t, k) for t, k in train.items()], [router_example(t, k) for t, k in test.items()])


@dataclass
class Fold:
    """One leave-one-dataset-out fold: which questions are held out, and the train and test rows.

    Attributes:
        dataset: the held-out dataset.
        held_out: what was held out, in words (the whole dataset, or one template family of a task that no other
            dataset has).
        train, test: contract-format rows; no test text occurs in ``train``.
        families: task -> its held-out template families, for tasks that no other dataset has.
    """

    dataset: str
    held_out: str
    train: list[dict]
    test: list[dict]
    families: dict[str, list[str]] = field(default_factory=dict)


def collect_dataset_questions(root: str | os.PathLike, splits: Iterable[str] = ("training", *VALIDATION_SPLITS)
                              ) -> list[dict]:
    """Unique ``(dataset, question)`` pairs of a FLARE root: ``{"text", "task", "dataset"}`` in discovery order.

    Read from the participants' files (``TaskType`` is filled even when answers are blank). A text that two
    datasets share is kept once per dataset, so that holding one dataset out can also take the text out of
    training (see :func:`lodo_folds`).
    """
    rows: dict[tuple[str, str], dict] = {}
    for qfile in discover(root, splits=splits, gt="exclude"):
        for record in load_records(qfile).records:
            key = (qfile.dataset, record["Question"])
            if key not in rows:
                rows[key] = {"text": record["Question"], "task": normalize_task_type(record["TaskType"]),
                             "dataset": qfile.dataset}
    if not rows:
        raise RouterDataError(f"{root}: no FLARE question files found (expected {root}/<split>/<Category>/...)")
    return list(rows.values())


def lodo_folds(rows: list[dict], family: Callable[[str], str], seed: int = 0, family_share: float = 0.5,
               labels: Iterable[str] = TASK_NAMES) -> list[Fold]:
    """Leave-one-dataset-out folds, one per dataset.

    A fold trains without the held-out dataset's questions and tests on them. A task that only the held-out
    dataset has (counting, report generation, instance detection in FLARE) cannot be learnt without it, so for
    such a task a share of its template families (``family(text)``, e.g. the question's stem; at least one, at
    least one kept) is held out instead, drawn with ``seed``, and its other families stay in training. Texts are
    de-duplicated within each side, and a held-out text is removed from training even when another dataset asks
    it too.

    Args:
        rows: :func:`collect_dataset_questions` rows.
        family: maps a question to its template family.
        seed: draws the held-out families of dataset-unique tasks.
        family_share: the share of a dataset-unique task's template families held out.
        labels: the label set written into each row.
    """
    labels = list(labels)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    rng = random.Random(seed)
    folds = []
    for dataset in datasets:
        own = [r for r in rows if r["dataset"] == dataset]
        elsewhere = {r["task"] for r in rows if r["dataset"] != dataset}
        families: dict[str, list[str]] = {}
        for task in sorted({r["task"] for r in own} - elsewhere):
            names = sorted({family(r["text"]) for r in own if r["task"] == task})
            if len(names) < 2:
                logger.warning("%s: %s has one template family only; it is neither trained on nor tested in the %s "
                               "fold", dataset, task, dataset)
            k = min(max(1, round(family_share * len(names))), len(names) - 1)
            families[task] = sorted(rng.sample(names, k)) if len(names) > 1 else []

        def held(r, families=families) -> bool:
            return r["task"] not in families or family(r["text"]) in families[r["task"]]

        test = {r["text"]: r["task"] for r in own if held(r)}
        train: dict[str, str] = {}
        for r in rows:
            if r["text"] in test or (r["dataset"] == dataset and (held(r) or not families.get(r["task"]))):
                continue
            train.setdefault(r["text"], r["task"])
        what = [f"{task}: {len(names)} of {len({family(r['text']) for r in own if r['task'] == task})} template "
                f"families" for task, names in families.items()]
        if {r["task"] for r in own} - set(families):
            what.insert(0, "all questions" if not families else "all questions of its other tasks")
        folds.append(Fold(dataset, "; ".join(what), [router_example(t, k, labels) for t, k in train.items()],
                          [router_example(t, k, labels) for t, k in test.items()],
                          {task: names for task, names in families.items() if names}))
    return folds


def write_router_set(rows: list[dict], path: str | os.PathLike) -> Path:
    """Write a router set as JSON (the contract format)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def describe(rows: list[dict]) -> str:
    """``n=751 (classification 641, counting 3, ...)`` for logs."""
    counts = Counter(row["true_labels"][0] for row in rows)
    return f"n={len(rows)} (" + ", ".join(f"{k} {counts[k]}" for k in TASK_NAMES if counts[k]) + ")"
