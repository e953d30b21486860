"""Output side of data preparation: streamed JSON lists, LLaMA-Factory's ``dataset_info.json``, the router set.

Layout written under the output folder (LLaMA-Factory's ``dataset_dir``)::

    flare/train/<task>.json        ShareGPT rows of one task type (the task adapters' data), one row per line
    flare/val/<task>.json          held-out rows (only with --val_splits)
    dataset_info.json              flare_all -> flare/train (the folder: every task file, the general adapter),
                                   internvl -> the same folder (the name the authors' recipe trains on),
                                   flare_<task> -> flare/train/<task>.json, flare_all_val, flare_<task>_val
    task_classifier/{train,test}.json   GLiClass rows {"text", "all_labels", "true_labels"}
    prepare_stats.json             counts, spellings, skipped records, token lengths
    extracted_images/<split>/<Category>/<dataset>/   the images of a dataset folder that could not be written
                                   (a read-only input), extracted here instead; rows point at them

``flare_all`` names the folder, which LLaMA-Factory loads file by file, so the general adapter trains on exactly
the files the task adapters train on, with no second copy of the rows.

Outputs change as one unit (:class:`Staging`): a run writes every file into ``<output>/.prepare_tmp/new/`` and only
at the end writes a manifest (``COMMIT.json``, the commit point) and renames the files into place. A run killed
before the manifest leaves the previous outputs whole (the next run deletes the leftover folder); one killed while
renaming leaves the manifest, and the next run finishes the renames first (:func:`recover_outputs`). Only our
files are replaced or deleted: the task files, ``task_classifier/{train,test}.json``, ``prepare_stats.json`` and our
entries of ``dataset_info.json``; anything else in the folder stays.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from collections.abc import Iterable
from pathlib import Path

from mevlip.presets import GENERAL_DATASET
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
#: The staging folder under the output folder, and the manifest whose presence means "commit these".
STAGING = ".prepare_tmp"
COMMIT_FILE = "COMMIT.json"

logger = logging.getLogger(__name__)


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


def stale_files(output_dir: Path, part: str, written: Iterable[str]) -> tuple[list[str], list[str]]:
    """Our task files of ``part`` that this run did not write (to delete), and the other files in the folder.

    ``flare_all`` loads the whole folder, so a stale task file would train the general adapter on old rows; other
    files are not ours and stay (the caller warns that ``flare_all`` loads them too).

    Returns:
        ``(paths relative to output_dir to delete, names of files that are not ours)``.
    """
    folder = part_dir(output_dir, part)
    if not folder.is_dir():
        return [], []
    keep = {f"{t}.json" for t in written}
    ours = {f"{t}.json" for t in TASK_NAMES}
    stale = [f"flare/{part}/{name}" for name in sorted(ours - keep) if (folder / name).exists()]
    return stale, sorted(p.name for p in folder.iterdir() if p.name not in ours)


class Staging:
    """One run's outputs, built in ``<output>/.prepare_tmp/new/`` (the published layout) and swapped in at the end.

    Creating it first finishes or drops what an interrupted run left (:func:`recover_outputs`).
    """

    def __init__(self, output_dir: Path, name: str = STAGING):
        self.output_dir = output_dir
        self.root = output_dir / name
        recover_outputs(output_dir, name)
        self.new = self.root / "new"
        self.new.mkdir(parents=True)

    def path(self, rel: str) -> Path:
        """Where the output ``rel`` (relative to the output folder) is staged."""
        return self.new / rel

    def writer(self, rel: str) -> JsonListWriter:
        """A :class:`JsonListWriter` for the output ``rel``, finished into the staging folder."""
        return JsonListWriter(self.path(rel), self.root / "parts")

    def commit(self, delete: Iterable[str] = (), remove_if_empty: Iterable[str] = ()) -> None:
        """Swap the staged files in: write the manifest (the commit point), then rename and delete.

        Args:
            delete: outputs (relative paths) of an earlier run that this run replaces with nothing.
            remove_if_empty: folders to remove once empty (a part this run did not write).
        """
        staged = sorted(p.relative_to(self.new).as_posix() for p in self.new.rglob("*") if p.is_file())
        write_json(self.root / COMMIT_FILE, {"replace": staged, "delete": sorted(delete),
                                             "remove_if_empty": sorted(remove_if_empty)})
        _apply_commit(self.output_dir, self.root)

    def discard(self) -> None:
        """Drop everything staged (the published outputs are untouched)."""
        shutil.rmtree(self.root, ignore_errors=True)


def recover_outputs(output_dir: Path, name: str = STAGING) -> str | None:
    """Finish the swap of a run killed while committing, or drop the staging of one killed before.

    Returns:
        ``"completed"``, ``"discarded"`` or ``None`` (nothing was left).
    """
    root = output_dir / name
    if (root / COMMIT_FILE).is_file():
        logger.warning("%s: completing the swap of an interrupted data preparation run", output_dir)
        _apply_commit(output_dir, root)
        return "completed"
    if root.exists():
        logger.warning("%s: dropping the unfinished outputs of an interrupted run (the previous outputs are whole)",
                       output_dir)
        shutil.rmtree(root)
        return "discarded"
    return None


def _apply_commit(output_dir: Path, root: Path) -> None:
    """Rename every staged file into place and delete the stale ones; idempotent (safe to redo after a kill)."""
    manifest = json.loads((root / COMMIT_FILE).read_text(encoding="utf-8"))
    for rel in manifest["replace"]:
        src, dst = root / "new" / rel, output_dir / rel
        if src.exists():  # renamed already by the run that was interrupted
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    for rel in manifest["delete"]:
        (output_dir / rel).unlink(missing_ok=True)
    for rel in manifest["remove_if_empty"]:
        try:
            (output_dir / rel).rmdir()
        except OSError:  # absent, or holds files that are not ours
            pass
    shutil.rmtree(root)


def managed_entries() -> set[str]:
    """Every ``dataset_info.json`` entry name this module may write (other entries are never touched)."""
    names = {"flare_all"} | {spec.dataset_entry for spec in TASKS.values()}
    return {name + suffix for name in names for suffix in PARTS.values()} | {GENERAL_DATASET}


def dataset_entries(tasks_per_part: dict[str, list[str]]) -> dict[str, dict]:
    """The entries for the task files written: ``flare_all[_val]`` (the folder), ``flare_<task>[_val]`` and
    ``internvl`` (= ``flare_all``: the dataset name of the authors' general recipe)."""
    entries: dict[str, dict] = {}
    for part, tasks in tasks_per_part.items():
        if not tasks:
            continue
        suffix = PARTS[part]
        entries[f"flare_all{suffix}"] = {"file_name": f"flare/{part}", **SHAREGPT_ENTRY}
        if part == "train":
            entries[GENERAL_DATASET] = {"file_name": f"flare/{part}", **SHAREGPT_ENTRY}
        for task in TASK_NAMES:
            if task in tasks:
                entries[TASKS[task].dataset_entry + suffix] = {"file_name": f"flare/{part}/{task}.json",
                                                               **SHAREGPT_ENTRY}
    return entries


def read_dataset_info(output_dir: Path) -> dict:
    """The existing ``dataset_info.json`` (``{}`` when there is none); read before a run writes anything.

    Raises:
        ValueError: the file cannot be read or is not a JSON object (naming the file).
    """
    path = output_dir / DATASET_INFO
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{path}: not valid JSON ({type(err).__name__}: {err}); fix or delete it") from err
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a JSON object of dataset entries, got {type(info).__name__}; fix or "
                         "delete it")
    return info


def merged_dataset_info(existing: dict, entries: dict[str, dict]) -> dict:
    """``dataset_info.json`` with other datasets' entries kept in place and ours replaced (stale ones removed)."""
    managed = managed_entries()
    info = {k: v for k, v in existing.items() if k not in managed}
    info.update(entries)
    return info


def update_dataset_info(output_dir: Path, entries: dict[str, dict]) -> dict:
    """Write ``dataset_info.json`` in place: :func:`merged_dataset_info` of the existing file and ``entries``.

    Raises:
        ValueError: the existing file is not a JSON object (naming the file).
    """
    info = merged_dataset_info(read_dataset_info(output_dir), entries)
    write_json(output_dir / DATASET_INFO, info)
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
