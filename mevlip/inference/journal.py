"""Resuming a run: the journal of answers, what fingerprints a run, and the lock on an output.

A run appends each finished record to a flushed JSONL journal (:class:`Journal`), so a crash or ``kill -9`` loses at
most the batch in flight. The journal's first line holds the run's fingerprint (:func:`run_fingerprint`: the inputs
and every setting and model file that changes an answer); a rerun resumes it only under the same fingerprint, and
each entry only while its record's digest (its question, images and TaskType) still holds.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mevlip.cli import writing
from mevlip.locks import OutputLock as _Lock

if TYPE_CHECKING:
    from mevlip.inference.run import Plan


class ResumeError(ValueError):
    """The output folder belongs to another run: locked by a live one, or journalled by another configuration."""


#: ``inference.py`` settings that change an answer, fingerprinted with the journal (batch size, shards, the
#: device index and progress bars do not; ``device_type`` stands for the device because ``--quantization auto``
#: depends on it).
ANSWER_SETTINGS = ("base_model", "preset", "routing", "threshold", "router_scoring", "max_new_tokens",
                   "multi_image", "crop_to_patches", "system", "quantization")
#: Files up to this size are hashed whole; a larger one (a base-model shard) by its size, head and tail.
_HASH_WHOLE = 256 * 2**20
_HASH_SAMPLE = 4 * 2**20


def _file_digest(path: Path, digest) -> None:
    size = path.stat().st_size
    digest.update(f"{size}\0".encode())
    with open(path, "rb") as fh:
        if size <= _HASH_WHOLE:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        else:  # sampled: a retrained or replaced shard differs in its header or its tail
            digest.update(fh.read(_HASH_SAMPLE))
            fh.seek(size - _HASH_SAMPLE)
            digest.update(fh.read(_HASH_SAMPLE))


def tree_digest(path: str | os.PathLike | None) -> str:
    """A digest of the model files under ``path`` (a file or folder; ``"none"`` / ``"missing"`` without one).

    Names and bytes count, times do not (a copied model keeps its digest). Training leftovers that inference
    never loads are skipped: ``checkpoint-*`` and ``runs`` folders and hidden files.
    """
    if path is None or str(path) == "":
        return "none"
    root = Path(path)
    if not root.exists():
        return "missing"
    digest = hashlib.sha256()
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.is_file()
        and not any(part.startswith((".", "checkpoint-")) or part == "runs" for part in p.relative_to(root).parts))
    for file in files:
        digest.update(f"{file.relative_to(root).as_posix() if file != root else file.name}\0".encode())
        _file_digest(file, digest)
    return digest.hexdigest()[:16]


def run_fingerprint(the_plan: Plan, settings: dict) -> dict[str, str]:
    """Everything that changes an answer, as named parts (so a mismatch can say what changed).

    Args:
        the_plan: the inputs (``inputs``: every record key in order).
        settings: ``vars(args)`` of ``inference.py``: the :data:`ANSWER_SETTINGS` present are recorded as given;
            ``base_model`` (a local folder), ``adapters_dir`` and, when routing by router, ``router_dir`` are
            hashed (:func:`tree_digest`).

    Returns:
        ``{part name: short string}``.
    """
    parts = {"inputs": the_plan.fingerprint()}
    for name in ANSWER_SETTINGS:
        if name in settings:
            parts[name] = json.dumps(settings[name], ensure_ascii=False)
    if "device" in settings:
        parts["device_type"] = str(settings["device"]).split(":")[0]
    base = settings.get("base_model")
    if base and Path(base).exists():
        parts["base_model_files"] = tree_digest(base)
    parts["adapter_files"] = tree_digest(settings.get("adapters_dir"))
    if settings.get("routing", "router") == "router":
        parts["router_files"] = tree_digest(settings.get("router_dir"))
    return parts


def _digest(parts: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """``["routing '"general"' -> '"router"'", "adapter_files changed", ...]`` for the parts that differ."""
    out = []
    for name in list(new) + [n for n in old if n not in new]:
        before, after = old.get(name, "(not recorded)"), new.get(name, "(not recorded)")
        if before != after:
            short = len(before) + len(after) <= 120 and not name.endswith(("_files", "inputs"))
            out.append(f"{name} {before} -> {after}" if short else f"{name} changed")
    return out


class OutputLock(_Lock):
    """An exclusive lock on one inference output (``.<name>.lock`` beside ``target``): :class:`mevlip.locks.OutputLock`
    raising :class:`ResumeError`.

    The lock is per output file, not per folder: two shards writing their own shard files into one folder run side
    by side, while a second run of the same output (the same shard, or the same unsharded run) is refused.
    """

    def __init__(self, target: Path):
        super().__init__(target, "inference run", ResumeError)


def journal_path(output: Path) -> Path:
    """The journal of an output: ``predictions.json`` -> ``predictions.journal.jsonl``."""
    return output.with_name(output.stem + ".journal.jsonl")


def shard_output(output: Path, num_shards: int, shard_index: int) -> Path:
    """What one of ``--num_shards`` runs writes: ``predictions.json`` -> ``predictions.shard-0-of-2.json``.

    Every shard has its own file, journal and lock, so the shards can share one ``--output_dir``.
    """
    if num_shards <= 1:
        return output
    return output.with_name(f"{output.stem}.shard-{shard_index}-of-{num_shards}{output.suffix}")


def read_fingerprint(journal: Path) -> dict[str, str]:
    """The fingerprint parts a journal was written under (its first line).

    Raises:
        ValueError: the journal is missing or its first line is not a fingerprint header (naming the file).
    """
    try:
        with open(journal, encoding="utf-8") as fh:
            header = json.loads(fh.readline())
    except FileNotFoundError:
        raise ValueError(f"{journal}: missing (the run's journal, needed to check its configuration)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{journal}: first line is not a journal header ({err})") from None
    parts = header.get("parts") if isinstance(header, dict) else None
    if not isinstance(parts, dict):
        raise ValueError(f"{journal}: first line is not a journal header")
    return parts


class Journal:
    """Append-only JSONL of answered records, for resuming; a torn last line (``kill -9`` mid-write) is ignored.

    The first line records the run's fingerprint (:func:`run_fingerprint`); a journal of other inputs or another
    configuration is refused with the parts that changed. Records that ended in an error are not resumed: a
    rerun tries them again (a restored image, a transient failure). With ``digests`` (item index -> its
    :func:`record_digest`), an answer is resumed only when its record and images are unchanged; the others are
    answered again and counted in :attr:`changed`. The journal holds its :class:`OutputLock` until :meth:`close`,
    so two runs never interleave their answers.
    """

    def __init__(self, path: Path, fingerprint: str | dict[str, str], overwrite: bool = False,
                 digests: dict[int, str] | None = None):
        self.path = path
        self.done: dict[int, dict] = {}
        self.changed = 0  # answers in the journal whose record or images changed since: answered again
        self._digests = digests
        parts = dict(fingerprint) if isinstance(fingerprint, dict) else {"inputs": fingerprint}
        self.lock = OutputLock(path)
        try:
            self._open(parts, overwrite)
        except BaseException:
            self.lock.release()
            raise

    def _open(self, parts: dict[str, str], overwrite: bool) -> None:
        path = self.path
        header = {"fingerprint": _digest(parts), "parts": parts}
        lines = [] if overwrite or not path.exists() else path.read_text(encoding="utf-8").splitlines()
        if lines:
            try:
                old = json.loads(lines[0])
            except json.JSONDecodeError:
                old = {}
            if not isinstance(old, dict):
                old = {}
            if old.get("fingerprint") != header["fingerprint"]:
                old_parts = old.get("parts") or {"inputs": str(old.get("fingerprint"))}
                changed = _changes(old_parts, parts) or ["fingerprint"]
                what = "other inputs" if any(c.startswith("inputs") for c in changed) else "another configuration"
                raise ResumeError(f"{path} belongs to {what}: {'; '.join(changed)}. Rerun with --overwrite to start "
                                  "afresh, or write into another --output_dir")
            for line in lines[1:]:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("i"), int) and not entry.get("error"):
                    if self._digests is not None and entry.get("rd") != self._digests.get(entry["i"]):
                        self.changed += 1  # the record or its images changed under the same name: answer again
                        continue
                    self.done[entry["i"]] = entry
        # rewrite (atomically) without a torn tail or failed records, then append (the lock made the folder)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with writing(tmp), open(tmp, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(header) + "\n")  # ASCII-escaped: a lone surrogate cannot fail a write
                for entry in self.done.values():
                    fh.write(json.dumps(entry) + "\n")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.fh = open(path, "a", encoding="utf-8")

    def add(self, entry: dict) -> None:
        """Record one finished item (flushed at once)."""
        self.done[entry["i"]] = entry
        with writing(self.path):  # a full disk: the answers flushed so far stay for the rerun
            self.fh.write(json.dumps(entry) + "\n")
            self.fh.flush()

    def close(self) -> None:
        """Close the file and release the output folder."""
        self.fh.close()
        self.lock.release()
