"""Which LoRA adapter lives where in an adapters folder: our layout or the authors' release, read the same way.

Two layouts are recognised (one folder holds one of them, never both):

* **ours** (``llama_factory_internvl/scripts/train_adapters.py``): one sub-folder per adapter, named by it:
  ``general/``, ``classification/``, ... Any other sub-folder holding ``adapter_config.json`` loads under its name.
* **release**: the authors' published adapters (``AmalSaqib/flare-internvl``), which the original
  ``docker_internvl/inference.py`` read from ``/app/models/FLARE-InternVL3-8B-hf``: the general adapter in
  LLaMA-Factory's output folder ``internvl-all/lora/sft``, each task adapter in a folder named by its task.

:data:`RELEASE_FOLDERS` is the one place that maps the release's folder names to our adapter names. Hidden folders
(``.cache/`` written by ``huggingface-cli download --local-dir``) are skipped. Adapter weights must be safetensors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mevlip.tasks import GENERAL_ADAPTER, TASK_NAMES, TASKS, normalize_task_type

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
#: The general adapter's folder in the authors' release (LLaMA-Factory's ``output_dir`` of their general run).
RELEASE_GENERAL_FOLDER = "internvl-all/lora/sft"
#: The task adapters' folders in the authors' release, as the original inference.py lists them.
RELEASE_TASK_FOLDERS = ("classification", "detection", "regression", "counting", "instance_detection",
                        "multi_label_classification", "report_generation")
#: Our adapter name -> its folder (relative to the adapters folder) in the authors' release.
RELEASE_FOLDERS: dict[str, str] = {
    GENERAL_ADAPTER: RELEASE_GENERAL_FOLDER,
    **{TASKS[normalize_task_type(folder)].adapter: folder for folder in RELEASE_TASK_FOLDERS},
}
#: Every adapter ME-VLIP uses: the general one, then one per task type.
EXPECTED_ADAPTERS: tuple[str, ...] = (GENERAL_ADAPTER, *(TASKS[t].adapter for t in TASK_NAMES))


class AdapterLayoutError(ValueError):
    """An adapters folder that cannot be read; the message names the folder at fault."""


@dataclass
class AdapterLayout:
    """The adapters found in one folder.

    Attributes:
        root: the adapters folder.
        layout: ``ours`` or ``release``.
        folders: adapter name -> its folder, general first, then the task adapters, then any others.
        absent: expected adapter name -> why it was not found (the folder that was looked for).
    """

    root: Path
    layout: str
    folders: dict[str, Path] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)

    def missing(self, needed: tuple[str, ...] | list[str] = EXPECTED_ADAPTERS) -> list[str]:
        """The adapters of ``needed`` that this folder lacks."""
        return [name for name in needed if name not in self.folders]


def _check_adapter(folder: Path) -> None:
    if not (folder / ADAPTER_WEIGHTS).is_file():
        found = sorted(p.name for p in folder.glob("adapter_model*"))
        raise AdapterLayoutError(f"{folder}: no {ADAPTER_WEIGHTS} (found: {', '.join(found) or 'no weights'}); "
                                 "adapters are loaded from safetensors only")


def find_adapters(adapters_dir: str | os.PathLike) -> AdapterLayout:
    """Find every LoRA adapter in ``adapters_dir``, in our layout or the authors' release layout.

    Raises:
        AdapterLayoutError: the folder is missing, holds no adapter, holds both layouts' general adapter, or an
            adapter without safetensors weights.
    """
    root = Path(adapters_dir)
    if not root.is_dir():
        raise AdapterLayoutError(f"{root}: adapters folder not found")
    by_name = {p.name: p for p in sorted(root.iterdir())
               if p.is_dir() and not p.name.startswith(".") and (p / ADAPTER_CONFIG).is_file()}
    release_general = root / RELEASE_GENERAL_FOLDER
    is_release = (release_general / ADAPTER_CONFIG).is_file()
    if is_release and GENERAL_ADAPTER in by_name:
        raise AdapterLayoutError(f"{root}: two general adapters, {by_name[GENERAL_ADAPTER]} (our layout) and "
                                 f"{release_general} (the authors' release); keep one")
    if is_release:
        by_name[GENERAL_ADAPTER] = release_general
    if not by_name:
        wanted = ", ".join(f"{n}/" for n in EXPECTED_ADAPTERS)
        raise AdapterLayoutError(f"{root}: no LoRA adapter ({ADAPTER_CONFIG}) found; expected {wanted} (ours) or "
                                 f"{RELEASE_GENERAL_FOLDER}/ and the task folders (the authors' release)")
    layout = AdapterLayout(root, "release" if is_release else "ours")
    release_paths = RELEASE_FOLDERS if is_release else {}
    for name in [*EXPECTED_ADAPTERS, *sorted(set(by_name) - set(EXPECTED_ADAPTERS))]:
        if name in by_name:
            _check_adapter(by_name[name])
            layout.folders[name] = by_name[name]
        elif name in EXPECTED_ADAPTERS:
            looked = root / release_paths.get(name, name)
            layout.absent[name] = (f"{looked} has no {ADAPTER_CONFIG}" if looked.is_dir()
                                   else f"{looked} not found")
    return layout


def needed_adapters(routing: str) -> tuple[str, ...]:
    """The adapters a routing mode can use: the general one only (``general``), else all of them."""
    return (GENERAL_ADAPTER,) if routing == "general" else EXPECTED_ADAPTERS


def describe(layout: AdapterLayout | None, routing: str, loaded: list[str] | None = None) -> list[str]:
    """Lines saying which adapter answers each task's questions, and which fall back, to what, and why.

    Args:
        layout: what :func:`find_adapters` found, or ``None`` (no adapters folder: the base model answers).
        routing: ``router``, ``record`` or ``general`` (:data:`mevlip.inference.run.ROUTINGS`).
        loaded: the adapter names actually loaded (default: every adapter the layout found).
    """
    from mevlip.inference.run import resolve_adapter  # the fallback rule inference applies, so the two never differ

    if layout is None:
        return ["adapters: none given (--adapters_dir unset): the base model answers every question"]
    loaded = list(layout.folders) if loaded is None else loaded
    lines = [f"adapters: {layout.layout} layout in {layout.root} ({len(loaded)} loaded)"]

    def target(name: str | None) -> str:
        return "the base model (no adapter)" if name is None else f"{name} ({layout.folders[name]})"

    rows = [("general", GENERAL_ADAPTER)]
    if routing != "general":
        rows += [(t, TASKS[t].adapter) for t in TASK_NAMES]
    for label, wanted in rows:
        used = resolve_adapter(wanted, loaded)
        if used == wanted:
            lines.append(f"  {label:28s} -> {target(used)}")
        else:
            lines.append(f"  {label:28s} -> {target(used)}: adapter {wanted!r} missing "
                         f"({layout.absent.get(wanted, 'not loaded')})")
    others = [n for n in loaded if n not in EXPECTED_ADAPTERS]
    if others:
        lines.append(f"  also loaded, used by no route: {', '.join(others)}")
    return lines
