"""Access to data in the FLARE-Task5-MLLM-2D on-disk format: discovery, records, image paths, zips.

Layout (``shared/flare_format.md`` section 1)::

    <root>/<split>/<Category>/<dataset>/<dataset>_questions_{train,val,test}[_withGT].json
    <root>/<split>/<Category>/<dataset>/images{Tr,Val,Ts}.zip   (members images{Tr,Val,Ts}/<file>)

Each question file is a JSON list of records with the six keys ``TaskType, Modality, ImageName, Question,
Answer, Split``; ``ImageName`` is a string or a list of strings relative to the dataset folder. A record is
identified by ``str(ImageName) + "||" + Question``, the key the organisers' evaluator matches on.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mevlip.tasks import normalize_task_type

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("training", "validation-public", "validation-hidden", "testing")
VALIDATION_SPLITS: tuple[str, ...] = ("validation-public", "validation-hidden")
CATEGORIES: tuple[str, ...] = (
    "Retinography", "Ultrasound", "Xray", "Clinical", "Microscopy", "Endoscopy", "Dermatology", "Mammography",
)
RECORD_FIELDS: tuple[str, ...] = ("TaskType", "Modality", "ImageName", "Question", "Answer", "Split")
IMAGE_DIRS: tuple[str, ...] = ("imagesTr", "imagesVal", "imagesTs", "images")
_KINDS = ("train", "val", "test")


class FlareDataError(ValueError):
    """Bad FLARE data; the message names the file (and the record index when there is one)."""


@dataclass(frozen=True)
class QuestionFile:
    """One ``<dataset>_questions_<kind>[_withGT].json`` file."""

    path: Path
    split: str
    category: str
    dataset: str
    kind: str  # train | val | test
    with_gt: bool

    @property
    def dataset_dir(self) -> Path:
        """The folder that ``ImageName`` paths are relative to."""
        return self.path.parent


@dataclass
class RecordProblem:
    """A record that failed validation, located by file and index."""

    path: str
    index: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path} record {self.index}: {self.reason}"


@dataclass
class LoadedFile:
    """The valid records of a question file, with their indices in the file, and the problems found."""

    file: QuestionFile
    records: list[dict] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    problems: list[RecordProblem] = field(default_factory=list)


def parse_question_filename(name: str) -> tuple[str, str, bool] | None:
    """``"BUSI_questions_val_withGT.json"`` -> ``("BUSI", "val", True)``; ``None`` if not a question file."""
    if not name.endswith(".json"):
        return None
    stem = name[: -len(".json")]
    with_gt = stem.endswith("_withGT")
    if with_gt:
        stem = stem[: -len("_withGT")]
    for kind in _KINDS:
        suffix = f"_questions_{kind}"
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)], kind, with_gt
    return None


def discover(root: str | os.PathLike, splits: Iterable[str] | None = None, gt: str = "prefer") -> list[QuestionFile]:
    """Find the question files under ``root``, in a stable order (split, category, dataset).

    Args:
        root: the dataset root (holds ``training/``, ``validation-public/``, ...).
        splits: split folders to walk; default all four. Unknown names are an error; absent folders are skipped.
        gt: what to do with ``_withGT`` files. ``"prefer"``: use a dataset's ``_withGT`` file instead of its plain
            file when both exist (scoring); ``"exclude"``: never use them (answering: hidden files are the input);
            ``"only"``: only ``_withGT`` files; ``"all"``: both.

    Returns:
        The files; a dataset with both files contributes one under ``prefer``.
    """
    root = Path(root)
    if gt not in ("prefer", "exclude", "only", "all"):
        raise ValueError(f"gt must be prefer|exclude|only|all, got {gt!r}")
    splits = tuple(splits) if splits is not None else SPLITS
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist")
    found: list[QuestionFile] = []
    for split in splits:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        for category_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for dataset_dir in sorted(p for p in category_dir.iterdir() if p.is_dir()):
                files = []
                for path in sorted(dataset_dir.glob("*.json")):
                    parsed = parse_question_filename(path.name)
                    if parsed is None:
                        continue
                    dataset, kind, with_gt = parsed
                    files.append(QuestionFile(path, split, category_dir.name, dataset, kind, with_gt))
                found.extend(_choose_gt(files, gt))
    return found


def _choose_gt(files: list[QuestionFile], gt: str) -> list[QuestionFile]:
    if gt == "all":
        return files
    if gt == "exclude":
        return [f for f in files if not f.with_gt]
    if gt == "only":
        return [f for f in files if f.with_gt]
    have_gt = {(f.dataset, f.kind) for f in files if f.with_gt}
    return [f for f in files if f.with_gt or (f.dataset, f.kind) not in have_gt]


def image_names(record: dict) -> list[str]:
    """``ImageName`` as a list (a multi-image record keeps its order)."""
    names = record["ImageName"]
    return list(names) if isinstance(names, list) else [names]


def record_key(record: dict) -> str:
    """The organisers' matching key: ``str(ImageName) + "||" + Question`` (Python repr for lists)."""
    return f"{str(record['ImageName'])}||{record['Question']}"


def validate_record(record: object, require_answer: bool = False) -> str | None:
    """Why a record is invalid, or ``None`` when it is fine."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    missing = [k for k in RECORD_FIELDS if k not in record]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    names = record["ImageName"]
    if isinstance(names, list):
        if not names or not all(isinstance(n, str) and n for n in names):
            return "ImageName list must hold non-empty strings"
    elif not isinstance(names, str) or not names:
        return f"ImageName must be a non-empty string or a list of strings, got {names!r}"
    if not isinstance(record["Question"], str) or not record["Question"].strip():
        return "Question must be a non-empty string"
    try:
        normalize_task_type(record["TaskType"])
    except ValueError as err:
        return str(err)
    if require_answer and (record["Answer"] is None or str(record["Answer"]).strip() == ""):
        return "Answer is empty"
    return None


def load_records(qfile: QuestionFile | str | os.PathLike, strict: bool = False,
                 require_answer: bool = False) -> LoadedFile:
    """Load and validate one question file.

    Bad records are reported (file, index, reason) and left out, unless ``strict``, where the first one raises.

    Raises:
        FlareDataError: the file is not a JSON list, or (strict) a record is invalid.
    """
    if not isinstance(qfile, QuestionFile):
        path = Path(qfile)
        parsed = parse_question_filename(path.name) or (path.stem, "val", False)
        qfile = QuestionFile(path, path.parent.parent.parent.name, path.parent.parent.name, *parsed)
    try:
        with open(qfile.path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as err:
        raise FlareDataError(f"{qfile.path}: not valid JSON ({err})") from err
    if not isinstance(data, list):
        raise FlareDataError(f"{qfile.path}: expected a JSON list of records, got {type(data).__name__}")
    loaded = LoadedFile(qfile)
    for index, record in enumerate(data):
        reason = validate_record(record, require_answer=require_answer)
        if reason is None:
            loaded.records.append(record)
            loaded.indices.append(index)
            continue
        problem = RecordProblem(str(qfile.path), index, reason)
        if strict:
            raise FlareDataError(str(problem))
        logger.warning("skipping %s", problem)
        loaded.problems.append(problem)
    return loaded


def iter_records(files: Iterable[QuestionFile], **kwargs) -> Iterator[tuple[QuestionFile, int, dict]]:
    """Yield ``(file, index_in_file, record)`` over many files (bad records are logged and skipped)."""
    for qfile in files:
        loaded = load_records(qfile, **kwargs)
        for index, record in zip(loaded.indices, loaded.records):
            yield qfile, index, record


# ----------------------------------------------------------------------------------------------- images
def image_candidates(dataset_dir: str | os.PathLike, name: str) -> list[Path]:
    """Where an ``ImageName`` may live, in the baselines' lenient order (flare_format.md 1.3)."""
    dataset_dir = Path(dataset_dir)
    rel = PurePosixPath(name.replace("\\", "/"))
    candidates = [dataset_dir / rel]
    if rel.parts and rel.parts[0] in IMAGE_DIRS:
        stripped = PurePosixPath(*rel.parts[1:])
        candidates += [dataset_dir / stripped] + [dataset_dir / d / stripped for d in IMAGE_DIRS]
    candidates += [dataset_dir / rel.name] + [dataset_dir / d / rel.name for d in IMAGE_DIRS]
    unique: list[Path] = []
    for c in candidates:
        if c not in unique:
            unique.append(c)
    return unique


def resolve_image(dataset_dir: str | os.PathLike, name: str) -> Path:
    """The path of one image of a record.

    Raises:
        FileNotFoundError: naming the image and every place looked at.
    """
    candidates = image_candidates(dataset_dir, name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates[:4])
    raise FileNotFoundError(f"image {name!r} not found under {dataset_dir} (tried {tried}, ...)")


def resolve_images(dataset_dir: str | os.PathLike, record: dict) -> list[Path]:
    """Paths of all images of a record, in order."""
    return [resolve_image(dataset_dir, n) for n in image_names(record)]


# ----------------------------------------------------------------------------------------------- zips
class UnsafeArchiveError(FlareDataError):
    """A zip member would land outside its folder (absolute path, ``..``, or a symlink)."""


def _check_member(archive: Path, info: zipfile.ZipInfo, dest: Path) -> Path:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a symbolic link; refusing to extract")
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing to extract")
    if ".." in posix.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} escapes the folder with '..'; refusing to extract")
    target = (dest / posix).resolve()
    if target != dest and dest not in target.parents:
        raise UnsafeArchiveError(f"{archive}: member {name!r} would be written outside {dest}; refusing")
    return target


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike | None = None) -> int:
    """Extract a zip into ``dest`` (default: its own folder), idempotently and only inside that folder.

    Every member is checked before anything is written. A member already present with the same size is
    left alone, so a rerun (or a run after an interrupted one) does only the missing work; files are written
    to a temporary name and renamed, so an interrupted extraction never leaves a truncated image.

    Returns:
        The number of files written.

    Raises:
        UnsafeArchiveError: a member is absolute, contains ``..``, is a symlink or resolves outside ``dest``.
        FlareDataError: the file is not a zip archive.
    """
    archive = Path(archive)
    dest = Path(dest if dest is not None else archive.parent).resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise FlareDataError(f"{archive}: not a zip archive ({err})") from err
    written = 0
    with zf:
        members = [(info, _check_member(archive, info, dest)) for info in zf.infolist()]
        for info, target in members:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if target.is_file() and target.stat().st_size == info.file_size:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            with zf.open(info) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
            os.replace(tmp, target)
            written += 1
    return written


def extract_dataset_zips(dataset_dir: str | os.PathLike) -> dict[str, int]:
    """Extract every ``images*.zip`` of a dataset folder next to it; returns files written per archive."""
    return {p.name: safe_extract(p) for p in sorted(Path(dataset_dir).glob("images*.zip"))}


def extract_all(files: Iterable[QuestionFile]) -> dict[str, int]:
    """Extract the image zips of the datasets behind ``files`` (each dataset folder once)."""
    done: dict[str, int] = {}
    for folder in dict.fromkeys(f.dataset_dir for f in files):
        for name, count in extract_dataset_zips(folder).items():
            done[str(folder / name)] = count
    return done
