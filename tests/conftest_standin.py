"""Shared helpers for the stand-in tests: one stand-in per session, ShareGPT rows from mini-FLARE records.

Imported explicitly by ``test_standin.py``, ``test_parity.py``, ``test_train_qlora.py`` (pytest only collects
``conftest.py`` by itself). Rows are built here with :func:`mevlip.prompts.render_user` under a preset, in the
format data preparation writes (``test_parity.py`` checks that they are equal).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mevlip.flare import discover, load_records, resolve_images, safe_extract
from mevlip.presets import get_preset
from mevlip.prompts import render_user, select_images
from mevlip.tasks import normalize_task_type
from mevlip.training.recipes import ADAPTERS, dataset_entry

#: Where a prebuilt stand-in may be given instead of building one (LLaMA-Factory's TINY_LLAMA3 pattern).
STANDIN_ENV = "MEVLIP_STANDIN"


def standin_dir(tmp_path_factory, mini_flare_root: Path) -> Path:
    """The session's stand-in: ``$MEVLIP_STANDIN`` if set, else built once under the session's base temp folder."""
    if os.environ.get(STANDIN_ENV):
        return Path(os.environ[STANDIN_ENV])
    out = tmp_path_factory.getbasetemp() / "standin_model"
    if not (out / "model.safetensors").is_file():
        from mevlip.training.standin import build_standin

        build_standin(out, data=mini_flare_root, seed=0)
    return out


def extracted_copy(tmp_path_factory, mini_flare_root: Path) -> Path:
    """A copy of the training and validation images of the (read-only) mini-FLARE, extracted once per session."""
    out = tmp_path_factory.getbasetemp() / "mini_flare_images"
    marker = out / ".done"
    if not marker.is_file():
        for qfile in discover(mini_flare_root, splits=["training", "validation-public"]):
            rel = qfile.dataset_dir.relative_to(mini_flare_root)
            for archive in sorted(qfile.dataset_dir.glob("images*.zip")):
                safe_extract(archive, out / rel)
            (out / rel / qfile.path.name).write_bytes(qfile.path.read_bytes())
        marker.write_text("ok")
    return out


def sharegpt_rows(record: dict, dataset_dir: Path, preset: str = "paper") -> list[dict]:
    """A record's training rows as data preparation writes them under ``preset`` (``paper``: one per image), with
    absolute image paths and the question kept in a ``question`` key (LLaMA-Factory ignores extra keys)."""
    paths = [str(p) for p in resolve_images(dataset_dir, record)]
    return [{
        "conversations": [
            {"from": "human", "value": render_user(record["Question"], len(images), preset)},
            {"from": "gpt", "value": str(record["Answer"])},
        ],
        "images": images,
        "question": record["Question"],
    } for images in select_images(paths, get_preset(preset).multi_image)]


def sharegpt_row(record: dict, dataset_dir: Path, preset: str = "paper") -> dict:
    """The first of :func:`sharegpt_rows` (``paper``: the row of the record's first image)."""
    return sharegpt_rows(record, dataset_dir, preset)[0]


def records_by_task(root: Path, split: str = "training") -> dict[str, list[tuple[dict, Path]]]:
    """``task -> [(record, dataset_dir)]`` over a FLARE-format root, in discovery order."""
    found: dict[str, list[tuple[dict, Path]]] = {}
    for qfile in discover(root, splits=[split]):
        for record in load_records(qfile).records:
            found.setdefault(normalize_task_type(record["TaskType"]), []).append((record, qfile.dataset_dir))
    return found


def write_dataset(out: Path, rows_by_task: dict[str, list[dict]]) -> Path:
    """Write ``flare_<task>.json`` files, the general adapter's ``internvl.json`` and a ``dataset_info.json``."""
    out.mkdir(parents=True, exist_ok=True)
    info = {}
    everything = []
    for adapter in ADAPTERS:
        entry = dataset_entry(adapter)
        rows = everything if adapter == "general" else rows_by_task.get(adapter, [])
        if adapter != "general":
            everything.extend(rows)
        info[entry] = {"file_name": f"{entry}.json", "formatting": "sharegpt",
                       "columns": {"messages": "conversations", "images": "images"}}
    for adapter in ADAPTERS[1:]:
        entry = dataset_entry(adapter)
        (out / f"{entry}.json").write_text(json.dumps(rows_by_task.get(adapter, []), indent=1), encoding="utf-8")
    (out / f"{dataset_entry('general')}.json").write_text(json.dumps(everything, indent=1), encoding="utf-8")
    (out / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return out
