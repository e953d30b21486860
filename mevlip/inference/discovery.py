"""Which files under an input folder hold questions to answer, at any depth, as the original inference.py found them.

The original ``docker_internvl/inference.py`` (``find_json_files``) walked the whole input folder with ``os.walk`` and
answered every ``.json`` file in it, reading each record's images relative to that file's folder. The organisers'
test folder is laid out as nobody outside has seen, so inference does the same, with these rules:

- every ``*.json`` file at any depth under the root is looked at, in a stable order: by path, the known split folders
  (``training``, ``validation-public``, ``validation-hidden``, ``testing``) first and in that order, so the public
  layout ``<split>/<Category>/<dataset>/`` is answered in the order :func:`mevlip.flare.discover` lists it;
- the ``training/`` folder directly under the root is not walked unless ``splits`` names it (training questions
  are not answered); ``splits`` restricts the walk to the named split folders;
- hidden folders and files (``.images``, ``.ranks``, ``.cache``, macOS ``._*``) and the ``exclude`` folders (the
  run's output and image scratch folders) are not walked; symbolic links to folders are followed once each;
- a ``.json`` file is a question file when it holds a JSON list whose objects have ``Question`` or ``ImageName``
  (an empty list too: nothing to answer). Any other JSON (a ``dataset_info.json``, a dict, a list of other things)
  is skipped and named with its reason; a file that cannot be read or parsed is a file error, the others go on;
- a predictions file that inference wrote (its ``<stem>.details.jsonl`` sidecar beside it) is skipped;
- ``X_withGT.json`` beside ``X.json`` is skipped: the blank twin is the input and a record is answered once
  (a ``_withGT`` file alone is answered);
- only regular files are read (a FIFO would block the run forever).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from mevlip.flare import SPLITS

logger = logging.getLogger(__name__)

TRAINING_SPLIT = "training"
_GT_SUFFIX = "_withGT"


@dataclass(frozen=True)
class InputFile:
    """One question file found under the input root, with its records as read."""

    path: Path
    rel_dir: Path  # its folder relative to the root (``.`` for a file directly in it)
    records: list = field(default_factory=list, compare=False, repr=False)


@dataclass
class Found:
    """What :func:`find_question_files` found: question files in answer order, skipped paths and unreadable files."""

    files: list[InputFile] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why it is not answered
    errors: dict[str, str] = field(default_factory=dict)  # path -> why it could not be read


def _order(root: Path, path: Path) -> tuple:
    parts = path.relative_to(root).parts
    first = SPLITS.index(parts[0]) if len(parts) > 1 and parts[0] in SPLITS else len(SPLITS)
    return first, parts


def _walk(root: Path, top: Path, excluded: set[str], found: Found) -> list[Path]:
    """Every non-hidden ``*.json`` under ``top``; hidden and excluded folders are named in ``found.skipped``."""
    jsons: list[Path] = []
    seen: set[str] = set()

    def on_error(err: OSError) -> None:
        found.errors[str(err.filename)] = f"cannot list folder ({err.strerror or err})"

    for folder, dirs, files in os.walk(top, followlinks=True, onerror=on_error):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree: walk each folder once
            dirs[:] = []
            continue
        seen.add(real)
        keep = []
        for name in sorted(dirs):
            path = Path(folder) / name
            if name.startswith("."):
                found.skipped[str(path)] = "hidden folder, not searched"
            elif os.path.realpath(path) in excluded:
                found.skipped[str(path)] = "this run's output or image folder, not searched"
            else:
                keep.append(name)
        dirs[:] = keep
        for name in files:
            if name.endswith(".json"):
                jsons.append(Path(folder) / name)
    return jsons


def _question_list(data: object) -> str | None:
    """Why parsed JSON is not a list of question records, or ``None`` when it is one."""
    if not isinstance(data, list):
        return f"not a question file (a JSON {type(data).__name__}, not a list of records)"
    if data and not any(isinstance(r, dict) and ("Question" in r or "ImageName" in r) for r in data):
        return "not a question file (no record has Question or ImageName)"
    return None


def find_question_files(root: str | os.PathLike, splits=None, exclude=()) -> Found:
    """The question files under ``root`` at any depth, with their records, in answer order (rules above).

    Args:
        root: the input folder.
        splits: split folders directly under ``root`` to walk (names from :data:`mevlip.flare.SPLITS`); default:
            the whole root except ``training/``.
        exclude: folders not to walk (this run's output and image scratch folders), wherever they are.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: an unknown split name.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist")
    for split in splits or ():
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")
    found = Found()
    excluded = {os.path.realpath(p) for p in exclude if p is not None}
    if splits is None:
        tops = [root]
        training = root / TRAINING_SPLIT
        if training.is_dir():
            excluded.add(os.path.realpath(training))
    else:
        tops = [root / s for s in dict.fromkeys(splits) if (root / s).is_dir()]
    jsons: list[Path] = []
    for top in tops:
        jsons += _walk(root, top, excluded, found)
    if splits is None and (root / TRAINING_SPLIT).is_dir():
        found.skipped[str(root / TRAINING_SPLIT)] = "training split, not answered (--splits training answers it)"
    names = {str(p) for p in jsons}
    for path in sorted(jsons, key=lambda p: _order(root, p)):
        if reason := _skip_reason(path, names):
            found.skipped[str(path)] = reason
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as err:  # unreadable, not UTF-8, not JSON, nested too deep
            found.errors[str(path)] = f"cannot read as JSON ({err})"
            logger.error("%s: cannot read as JSON (%s)", path, err)
            continue
        if reason := _question_list(data):
            found.skipped[str(path)] = reason
            continue
        found.files.append(InputFile(path, path.parent.relative_to(root), data))
    for path, reason in found.skipped.items():
        logger.info("skipped %s: %s", path, reason)
    return found


def _skip_reason(path: Path, names: set[str]) -> str | None:
    """Why a ``.json`` path is not read at all, or ``None``."""
    if path.name.startswith("."):
        return "hidden file"
    if not path.is_file():  # a FIFO, a socket, a device or a broken link
        return "not a regular file"
    stem = path.name[: -len(".json")]
    if path.with_name(stem + ".details.jsonl").is_file():
        return "a predictions file written by inference (its .details.jsonl sidecar is beside it)"
    if stem.endswith(_GT_SUFFIX) and str(path.with_name(stem[: -len(_GT_SUFFIX)] + ".json")) in names:
        return f"ground-truth twin of {stem[: -len(_GT_SUFFIX)]}.json, which is answered instead"
    return None
