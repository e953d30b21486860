"""Output side of data preparation: streamed JSON lists, LLaMA-Factory's ``dataset_info.json``, the router set.

Layout written under the output folder (LLaMA-Factory's ``dataset_dir``)::

    flare/train/<task>.json        ShareGPT rows of one task type (the task adapters' data), one row per line
    flare/val/<task>.json          held-out rows (only with --val_splits)
    dataset_info.json              flare_all -> flare/train (the folder: every task file, the general adapter),
                                   flare_<task> -> flare/train/<task>.json, flare_all_val, flare_<task>_val
    task_classifier/{train,test}.json   GLiClass rows {"text", "all_labels", "true_labels"}
    prepare_stats.json             counts, spellings, skipped records, token lengths

``flare_all`` names the folder, which LLaMA-Factory loads file by file, so the general adapter trains on exactly
the files the task adapters train on, with no second copy of the rows.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Iterable
from pathlib import Path

from mevlip.tasks import TASK_NAMES, TASKS

INDENT = 2
DATASET_INFO = "dataset_info.json"
ROUTER_DIR = "task_classifier"
#: ShareGPT column and tag mapping of every entry (the role/content tags are LLaMA-Factory's defaults, spelled out).
SHAREGPT_ENTRY = {
    "formatting": "sharegpt",
    "columns": {"messages": "conversations", "images": "images"},
    "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
             "system_tag": "system"},
}
#: Output parts: folder under ``flare/`` and the suffix of their ``dataset_info.json`` entries.
PARTS = {"train": "", "val": "_val"}


def dumps(obj: object) -> str:
    """The JSON style of the small files written here (stable across reruns)."""
    return json.dumps(obj, ensure_ascii=False, indent=INDENT)


def dumps_rows(rows: list) -> str:
    """The style of the row files: a JSON list with one compact row per line.

    Stable across reruns like :func:`dumps`, a third of its size, and about 3x faster to write (``indent`` makes
    ``json`` fall back from its C encoder to the Python one); a row per line also diffs well.
    """
    if not rows:
        return "[]"
    return "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n]"


def write_json(path: Path, obj: object) -> None:
    """Write a JSON file atomically (a temporary name, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(dumps(obj) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class JsonListWriter:
    """Writes a JSON list one item at a time, byte-identical to ``dumps_rows(list_of_items) + "\\n"``.

    Rows go to ``staging`` and the finished file is renamed into place by :meth:`close`, so an interrupted run
    never leaves a half-written list where LLaMA-Factory would load it.
    """

    def __init__(self, path: Path, staging: Path):
        self.path = path
        self.tmp = staging / f"{path.parent.name}__{path.name}"
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.tmp, "w", encoding="utf-8")
        self.count = 0

    def write(self, item: object) -> None:
        """Append one item."""
        self._fh.write(("[\n" if self.count == 0 else ",\n") + json.dumps(item, ensure_ascii=False))
        self.count += 1

    def close(self) -> None:
        """Finish the list and move it into place."""
        self._fh.write("[]\n" if self.count == 0 else "\n]\n")
        self._fh.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the partial file."""
        self._fh.close()
        self.tmp.unlink(missing_ok=True)


def part_dir(output_dir: Path, part: str) -> Path:
    """``<output_dir>/flare/<part>``: the folder of one part's task files."""
    return output_dir / "flare" / part


def remove_stale(output_dir: Path, part: str, written: Iterable[str]) -> list[str]:
    """Delete task files of ``part`` that this run did not write; returns other files found in the folder.

    ``flare_all`` loads the whole folder, so a stale task file would train the general adapter on old rows.
    """
    folder = part_dir(output_dir, part)
    if not folder.is_dir():
        return []
    keep = {f"{t}.json" for t in written}
    ours = {f"{t}.json" for t in TASK_NAMES}
    for name in sorted(ours - keep):
        (folder / name).unlink(missing_ok=True)
    return sorted(p.name for p in folder.iterdir() if p.name not in ours)


def remove_part(output_dir: Path, part: str) -> None:
    """Delete a part's folder (a run without --val_splits removes an older run's held-out files)."""
    shutil.rmtree(part_dir(output_dir, part), ignore_errors=True)


def managed_entries() -> set[str]:
    """Every ``dataset_info.json`` entry name this module may write (other entries are never touched)."""
    names = {"flare_all"} | {spec.dataset_entry for spec in TASKS.values()}
    return {name + suffix for name in names for suffix in PARTS.values()}


def dataset_entries(tasks_per_part: dict[str, list[str]]) -> dict[str, dict]:
    """The entries for the task files written: ``flare_all[_val]`` (the folder) and ``flare_<task>[_val]``."""
    entries: dict[str, dict] = {}
    for part, tasks in tasks_per_part.items():
        if not tasks:
            continue
        suffix = PARTS[part]
        entries[f"flare_all{suffix}"] = {"file_name": f"flare/{part}", **SHAREGPT_ENTRY}
        for task in TASK_NAMES:
            if task in tasks:
                entries[TASKS[task].dataset_entry + suffix] = {"file_name": f"flare/{part}/{task}.json",
                                                               **SHAREGPT_ENTRY}
    return entries


def update_dataset_info(output_dir: Path, entries: dict[str, dict]) -> dict:
    """Write ``dataset_info.json``: other datasets' entries kept in place, ours replaced (stale ones removed).

    Raises:
        ValueError: the existing file is not a JSON object (naming the file).
    """
    path = output_dir / DATASET_INFO
    info: dict = {}
    if path.is_file():
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err}); fix or delete it") from err
        if not isinstance(info, dict):
            raise ValueError(f"{path}: expected a JSON object of dataset entries, got {type(info).__name__}")
    managed = managed_entries()
    info = {k: v for k, v in info.items() if k not in managed}
    info.update(entries)
    write_json(path, info)
    return info


def split_router_set(questions: dict[str, str], test_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """GLiClass train/test rows from ``{question text: canonical task}`` (already de-duplicated).

    The held-out part is drawn per task (so every task with two or more questions is in both parts), with a
    seeded shuffle of the sorted texts: the same input and seed give the same split whatever the read order.

    Returns:
        ``(train, test)``, each a list of ``{"text", "all_labels", "true_labels"}`` in a seeded order.
    """
    labels = list(TASK_NAMES)
    train: list[dict] = []
    test: list[dict] = []
    for task in TASK_NAMES:
        texts = sorted(q for q, t in questions.items() if t == task)
        random.Random(f"{seed}:{task}").shuffle(texts)
        n_test = min(max(1, round(test_fraction * len(texts))), len(texts) - 1) if len(texts) >= 2 else 0
        if test_fraction <= 0:
            n_test = 0
        rows = [{"text": q, "all_labels": labels, "true_labels": [task]} for q in texts]
        test += rows[:n_test]
        train += rows[n_test:]
    random.Random(seed).shuffle(train)
    random.Random(seed + 1).shuffle(test)
    return train, test
