"""mini-FLARE: a synthetic dataset in the exact FLARE-Task5-MLLM-2D on-disk format whose images carry their answers.

``python -m mevlip.synth --out DIR --scale {tiny,small,full} --seed N`` writes::

    DIR/training/<Category>/<dataset>/<dataset>_questions_train.json + imagesTr.zip   (members imagesTr/<file>)
    DIR/validation-public/<Category>/<dataset>/<dataset>_questions_val.json + imagesVal.zip
    DIR/validation-hidden/<Category>/<dataset>/<dataset>_questions_val.json (Answer "")
                                              + <dataset>_questions_val_withGT.json + imagesVal.zip
    DIR/testing/<Category>/<dataset>/<dataset>_questions_test.json (Answer "")
                                    + <dataset>_questions_test_withGT.json + imagesTs.zip
    DIR/mini_flare.json   (marks the folder as synthetic; seed, scale and the summary)

Same seed and scale, same bytes (fixed zip timestamps, seeded generators keyed by dataset and split).
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from mevlip.locks import OutputLock
from mevlip.synth.catalog import DATASETS, SCALES, WHOLE_KARYOTYPE, DatasetSpec, rows_for
from mevlip.synth.samples import generator_for
from mevlip.tasks import normalize_task_type

MARKER = "mini_flare.json"
_PARTS = {  # part -> (split folder or None for the dataset's validation split, image folder, first image id)
    "train": ("training", "imagesTr", 1),
    "val": (None, "imagesVal", 70000),
    "test": ("testing", "imagesTs", 85000),
}
_ZIP_TIME = (2025, 1, 1, 0, 0, 0)


class SynthTargetError(ValueError):
    """The output folder holds data mini-FLARE did not write; nothing was written."""


def is_mini_flare(root: str | Path) -> bool:
    """True when ``root`` was written by this generator (it holds the marker file)."""
    return (Path(root) / MARKER).is_file()


def _encode(image, ext: str) -> bytes:
    buf = io.BytesIO()
    if ext == "jpg":
        image.save(buf, format="JPEG", quality=92)
    else:
        image.save(buf, format="PNG")
    return buf.getvalue()


def _write_zip(path: Path, members: list[tuple[str, bytes]]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)


def _write_json(path: Path, records: list[dict]) -> None:
    path.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def generate_file(spec: DatasetSpec, part: str, n_rows: int, out: Path, seed: int,
                  whole_karyotype: bool = True) -> list[dict]:
    """Write one dataset's question file(s) and image zip for a part; returns the records with answers."""
    split_folder, image_dir, first_id = _PARTS[part]
    split = split_folder or spec.val_split
    folder = out / split / spec.category / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, zlib.crc32(spec.name.encode()), list(_PARTS).index(part)])
    make = generator_for(spec.kind, spec.name, part, whole_karyotype)
    split_value = {"train": "train", "val": spec.val_split_value, "test": "test"}[part]
    records: list[dict] = []
    members: list[tuple[str, bytes]] = []
    case = first_id
    while len(records) < n_rows:
        group = make(rng)
        names = [f"{image_dir}/{spec.stem}_{case:05d}{suffix}.{spec.ext}" for suffix, _ in group.images]
        members += [(name, _encode(image, spec.ext)) for name, (_, image) in zip(names, group.images, strict=False)]
        for row in group.rows[: n_rows - len(records)]:
            image_name = [names[i] for i in row.images] if isinstance(row.images, list) else names[row.images]
            records.append({"TaskType": row.task_type, "Modality": spec.modality, "ImageName": image_name,
                            "Question": row.question, "Answer": row.answer, "Split": split_value})
        case += 1
    _write_zip(folder / f"{image_dir}.zip", members)
    stem = f"{spec.name}_questions_{part}"
    if part == "train" or not spec.hidden:
        _write_json(folder / f"{stem}.json", records)
    else:  # hidden validation and testing: blank answers for participants, answers in the _withGT file
        _write_json(folder / f"{stem}.json", [{**r, "Answer": ""} for r in records])
        _write_json(folder / f"{stem}_withGT.json", records)
    return records


def generate(out: str | Path, scale: str = "tiny", seed: int = 0, datasets: list[str] | None = None,
             progress: bool = False) -> dict:
    """Write a mini-FLARE dataset and its summary; returns the summary.

    Args:
        out: the dataset root to create: new, empty, or written by this generator before (its files are
            overwritten).
        scale: ``tiny`` (seconds, for tests), ``small`` (the demo) or ``full`` (the real per-dataset row counts).
        seed: the generator seed.
        datasets: restrict to these dataset names (default: all 19).
        progress: show a tqdm bar over files.

    Raises:
        SynthTargetError: ``out`` holds files but no :data:`MARKER` (someone else's data): nothing is written.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
    out = Path(out)
    lock = OutputLock(out, "mini-FLARE generation")  # one writer of the folder at a time
    try:
        return _generate(out, scale, seed, datasets, progress)
    finally:
        lock.release()


def _generate(out: Path, scale: str, seed: int, datasets: list[str] | None, progress: bool) -> dict:
    """:func:`generate` once the folder is locked."""
    if out.is_dir() and any(out.iterdir()) and not is_mini_flare(out):
        raise SynthTargetError(f"{out} holds files that mini-FLARE did not write (no {MARKER}); refusing to write "
                               "over them (real FLARE data?): choose a new or empty --output_dir")
    out.mkdir(parents=True, exist_ok=True)
    # the marker goes first, so that a run stopped half way leaves a folder a rerun may overwrite
    (out / MARKER).write_text(json.dumps({"synthetic": True, "generator": "mevlip.synth", "complete": False}) + "\n",
                              encoding="utf-8")
    specs = [d for d in DATASETS if datasets is None or d.name in datasets]
    jobs = [(spec, part) for spec in specs for part in _PARTS if rows_for(spec, part, scale) > 0]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="mini-FLARE", unit="file")
    per_split: Counter = Counter()
    per_dataset: dict[str, Counter] = {}
    per_task: Counter = Counter()
    images = 0
    for spec, part in jobs:
        records = generate_file(spec, part, rows_for(spec, part, scale), out, seed, WHOLE_KARYOTYPE[scale])
        split = _PARTS[part][0] or spec.val_split
        per_split[split] += len(records)
        per_dataset.setdefault(spec.name, Counter())[split] += len(records)
        per_task.update(normalize_task_type(r["TaskType"]) for r in records)
        images += len({n for r in records for n in (r["ImageName"] if isinstance(r["ImageName"], list)
                                                    else [r["ImageName"]])})
    summary = {
        "synthetic": True, "generator": "mevlip.synth", "scale": scale, "seed": seed,
        "records": sum(per_split.values()), "images": images,
        "per_split": dict(per_split), "per_task": dict(sorted(per_task.items())),
        "per_dataset": {k: dict(v) for k, v in per_dataset.items()},
    }
    (out / MARKER).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def format_summary(summary: dict) -> str:
    """The summary as a short Markdown report (records per split, task type and dataset)."""
    lines = [f"mini-FLARE ({summary['scale']}, seed {summary['seed']}): {summary['records']} Q&A pairs, "
             f"{summary['images']} images", "", "| split | records |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary["per_split"].items()]
    lines += ["", "| task type | records |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary["per_task"].items()]
    lines += ["", "| dataset | " + " | ".join(summary["per_split"]) + " |",
              "|---|" + "---|" * len(summary["per_split"])]
    for name, counts in summary["per_dataset"].items():
        lines.append(f"| {name} | " + " | ".join(str(counts.get(s, 0)) for s in summary["per_split"]) + " |")
    return "\n".join(lines)
