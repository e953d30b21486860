"""Access to data in the FLARE-Task5-MLLM-2D on-disk format: discovery, records, image paths, zips.

Layout (``docs/flare_format.md`` section 1)::

    <root>/<split>/<Category>/<dataset>/<dataset>_questions_{train,val,test}[_withGT].json
    <root>/<split>/<Category>/<dataset>/images{Tr,Val,Ts}.zip   (members images{Tr,Val,Ts}/<file>)

Each question file is a JSON list of records with the six keys ``TaskType, Modality, ImageName, Question,
Answer, Split``; ``ImageName`` is a string or a list of strings relative to the dataset folder. A record is
identified by ``str(ImageName) + "||" + Question``, the key the organisers' evaluator matches on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import stat
import zipfile
import zlib
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
#: The fields training and scoring read (``Modality`` and ``Split`` are read by no stage: a record may lack them, as
#: the original converter, which read only question, answer and image, accepted).
REQUIRED_FIELDS: tuple[str, ...] = ("TaskType", "ImageName", "Question", "Answer")
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


def _image_name_problem(record: dict) -> str | None:
    names = record["ImageName"]
    if isinstance(names, list):
        if not names or not all(isinstance(n, str) and n for n in names):
            return "ImageName list must hold non-empty strings"
    elif not isinstance(names, str) or not names:
        return f"ImageName must be a non-empty string or a list of strings, got {names!r}"
    for name in image_names(record):
        if reason := unsafe_name_reason(name):
            return f"ImageName {name!r} {reason}"
        if reason := _name_length_problem(name):
            return reason
    return None


#: A file name's limit in bytes (one path part) and a whole path's, as Linux file systems set them (NAME_MAX,
#: PATH_MAX): a longer ImageName names no file, and asking the system for it fails for the whole run.
NAME_MAX, PATH_MAX = 255, 4096


def _name_length_problem(name: str) -> str | None:
    size = len(name.encode("utf-8", "surrogatepass"))
    longest = max((len(part.encode("utf-8", "surrogatepass")) for part in name.replace("\\", "/").split("/")),
                  default=0)
    if size > PATH_MAX or longest > NAME_MAX:
        return (f"ImageName {name[:40]!r}... is {size:,} bytes, longer than a file name can be (a part at most "
                f"{NAME_MAX} bytes, the path {PATH_MAX})")
    return None


def _question_problem(record: object, required: tuple[str, ...]) -> str | None:
    """The checks every use of a record shares: an object, the ``required`` keys, a usable ``ImageName``, a
    non-empty ``Question``."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    missing = [k for k in required if k not in record]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    if reason := _image_name_problem(record):
        return reason
    if not isinstance(record["Question"], str) or not record["Question"].strip():
        return "Question must be a non-empty string"
    return None


def validate_record(record: object, require_answer: bool = False) -> str | None:
    """Why a record is invalid, or ``None`` when it is fine."""
    if reason := _question_problem(record, REQUIRED_FIELDS):
        return reason
    try:
        normalize_task_type(record["TaskType"])
    except ValueError as err:
        return str(err)
    if require_answer and (record["Answer"] is None or str(record["Answer"]).strip() == ""):
        return "Answer is empty"
    for name in (f for f in RECORD_FIELDS if f in record):
        if not _encodable(record[name]):  # a lone surrogate ("\\ud800") loads from JSON but cannot be written
            return f"{name} holds a lone surrogate (not valid Unicode text)"
    return None


#: What a record needs to be answered (the original answered every record with these two).
QUESTION_FIELDS: tuple[str, ...] = ("ImageName", "Question")


def validate_question(record: object) -> str | None:
    """Why a record cannot be answered, or ``None``: it needs only a usable ``ImageName`` and a non-empty
    ``Question``; its other fields (``TaskType``, ``Answer``, ``Split``, ``Modality``) may be absent or anything."""
    if reason := _question_problem(record, QUESTION_FIELDS):
        return reason
    for name in QUESTION_FIELDS:
        if not _encodable(record[name]):
            return f"{name} holds a lone surrogate (not valid Unicode text)"
    return None


def task_of(record: dict) -> str | None:
    """The canonical task of a record's ``TaskType``, or ``None`` when it is absent or not a known spelling."""
    try:
        return normalize_task_type(record.get("TaskType"))
    except (ValueError, TypeError):
        return None


def _encodable(value: object) -> bool:
    """Whether every string in ``value`` can be written as UTF-8 (no lone surrogates)."""
    if isinstance(value, str):
        if value.isascii():
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    return True


def unsafe_name_reason(name: str) -> str | None:
    """Why an ``ImageName`` would leave its dataset folder (absolute, a drive, ``..``), or ``None``."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path; image names must be relative to the dataset folder"
    if ".." in posix.parts:
        return "leaves the dataset folder with '..'"
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
    if qfile.path.exists() and not qfile.path.is_file() and not qfile.path.is_dir():  # a FIFO would block
        raise FlareDataError(f"{qfile.path}: not a regular file; skipped")
    try:
        with open(qfile.path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as err:
        raise FlareDataError(f"{qfile.path}: not valid JSON ({err})") from err
    except UnicodeDecodeError as err:
        raise FlareDataError(f"{qfile.path}: not UTF-8 text ({err})") from err
    except RecursionError as err:  # json's C decoder recurses once per nesting level
        raise FlareDataError(f"{qfile.path}: JSON nested too deeply to read") from err
    except OSError as err:
        raise FlareDataError(f"{qfile.path}: cannot read ({err.strerror or err})") from err
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
        for index, record in zip(loaded.indices, loaded.records, strict=True):
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


class UnsafePathError(FlareDataError):
    """An image path or symbolic link that leads out of its dataset folder."""


def resolve_image(dataset_dir: str | os.PathLike, name: str) -> Path:
    """The path of one image of a record, which must lie inside ``dataset_dir`` once symbolic links are resolved.

    Raises:
        FileNotFoundError: naming the image and every place looked at.
        UnsafePathError: the name is absolute or climbs out with ``..``, or the file found is (or lies under) a
            symbolic link to somewhere outside the dataset folder.
    """
    if reason := unsafe_name_reason(name):
        raise UnsafePathError(f"image {name!r} {reason}")
    candidates = image_candidates(dataset_dir, name)
    for candidate in candidates:
        if candidate.is_file():
            check_inside(dataset_dir, candidate, f"image {name!r}")
            return candidate
    tried = ", ".join(str(c) for c in candidates[:4])
    raise FileNotFoundError(f"image {name!r} not found under {dataset_dir} (tried {tried}, ...)")


def check_inside(folder: str | os.PathLike, path: str | os.PathLike, what: str) -> None:
    """Refuse ``path`` if, symbolic links resolved, it is not inside ``folder`` (itself resolved too).

    Raises:
        UnsafePathError: naming ``what``, the path and where it leads.
    """
    real_folder, real = os.path.realpath(folder), os.path.realpath(path)
    if real != real_folder and not real.startswith(real_folder.rstrip(os.sep) + os.sep):
        raise UnsafePathError(f"{what}: {path} is a symbolic link to {real}, outside {folder}; refused")


def resolve_images(dataset_dir: str | os.PathLike, record: dict) -> list[Path]:
    """Paths of all images of a record, in order."""
    return [resolve_image(dataset_dir, n) for n in image_names(record)]


# ----------------------------------------------------------------------------------------------- zips
#: Default cap on the total uncompressed size of one image archive (``--zip_max_bytes``). The largest real FLARE
#: image zip is a few GB; a bigger one is more likely a zip bomb than data.
DEFAULT_ZIP_MAX_BYTES = 32 * 2**30
#: Default cap on uncompressed/compressed size (``--zip_max_ratio``). PNG and JPEG images are compressed already
#: (ratio about 1); a zip bomb of zeros reaches about 1000.
DEFAULT_ZIP_MAX_RATIO = 100.0
#: Members (and archives) smaller than this are not ratio-checked: a small text file can legitimately compress 100x.
ZIP_RATIO_FLOOR = 1 << 20


class UnsafeArchiveError(FlareDataError):
    """A zip member would land outside its folder (absolute path, ``..``, or a symlink), or the zip is a bomb."""


class DamagedArchiveError(FlareDataError):
    """Members of a zip could not be read (CRC error, truncated data); the other members were extracted."""


@dataclass(frozen=True)
class ZipLimits:
    """Limits on what one archive may expand to; an archive over them is refused before anything is written."""

    max_bytes: int = DEFAULT_ZIP_MAX_BYTES
    max_ratio: float = DEFAULT_ZIP_MAX_RATIO

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or not self.max_ratio >= 1:
            raise ValueError(f"--zip_max_bytes must be >= 1 and --zip_max_ratio >= 1, got {self.max_bytes} and "
                             f"{self.max_ratio}")

    def check(self, archive: Path, infos: list[zipfile.ZipInfo]) -> None:
        """Refuse an archive whose declared sizes pass the limits (``zipfile`` stops a member at its declared size).

        Raises:
            UnsafeArchiveError: naming the archive, the figure and the flag that raises the limit.
        """
        total = sum(i.file_size for i in infos)
        packed = sum(i.compress_size for i in infos)
        if total > self.max_bytes:
            raise UnsafeArchiveError(f"{archive}: expands to {total:,} bytes, over --zip_max_bytes "
                                     f"{self.max_bytes:,}; refusing to extract (raise the limit if it is real data)")
        worst = max((i for i in infos if i.file_size >= ZIP_RATIO_FLOOR),
                    key=lambda i: i.file_size / max(i.compress_size, 1), default=None)
        if worst is not None and worst.file_size / max(worst.compress_size, 1) > self.max_ratio:
            raise UnsafeArchiveError(
                f"{archive}: member {worst.filename!r} expands {worst.file_size / max(worst.compress_size, 1):.0f}x "
                f"({worst.compress_size:,} -> {worst.file_size:,} bytes), over --zip_max_ratio {self.max_ratio:g}; "
                "refusing to extract (a zip bomb?)")
        if total >= ZIP_RATIO_FLOOR and total / max(packed, 1) > self.max_ratio:
            raise UnsafeArchiveError(f"{archive}: expands {total / max(packed, 1):.0f}x ({packed:,} -> {total:,} "
                                     f"bytes), over --zip_max_ratio {self.max_ratio:g}; refusing to extract")


def add_zip_limit_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--zip_max_bytes`` and ``--zip_max_ratio`` (the one definition both CLIs use)."""
    from mevlip.cli import POSITIVE_INT, number

    parser.add_argument("--zip_max_bytes", type=POSITIVE_INT, default=DEFAULT_ZIP_MAX_BYTES,
                        help="refuse an image zip that expands to more bytes than this (zip-bomb guard)")
    parser.add_argument("--zip_max_ratio", type=number(float, 1.0), default=DEFAULT_ZIP_MAX_RATIO,
                        help="refuse an image zip (or member over 1 MiB) that expands more than this many times "
                             "its compressed size (zip-bomb guard; images compress about 1x)")


def zip_limits_from_args(args: argparse.Namespace | dict) -> ZipLimits:
    """The :class:`ZipLimits` of parsed arguments (a namespace or ``vars()`` of one)."""
    values = args if isinstance(args, dict) else vars(args)
    return ZipLimits(values.get("zip_max_bytes", DEFAULT_ZIP_MAX_BYTES),
                     values.get("zip_max_ratio", DEFAULT_ZIP_MAX_RATIO))


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


#: What reading a damaged member raises: CRC mismatch / bad header (BadZipFile), bad deflate data (zlib.error),
#: truncated data (EOFError), an unsupported or encrypted member (NotImplementedError, RuntimeError).
_MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike | None = None,
                 limits: ZipLimits | None = None) -> int:
    """Extract a zip into ``dest`` (default: its own folder), idempotently and only inside that folder.

    Every member and the size limits are checked before anything is written. A member already present with the
    same size and CRC-32 is left alone, so a rerun (or a run after an interrupted one) does only the missing work
    while a new archive with the same member names replaces what changed; files are written to a temporary name and
    renamed, so an interrupted extraction never leaves a truncated image. A member that cannot be read (CRC error,
    truncated data) is skipped and the others are extracted.

    Returns:
        The number of files written.

    Raises:
        UnsafeArchiveError: a member is absolute, contains ``..``, is a symlink or resolves outside ``dest``, or
            the archive exceeds ``limits`` (default :class:`ZipLimits`); nothing was written.
        DamagedArchiveError: some members could not be read (named); the rest were extracted.
        FlareDataError: the file is not a zip archive or cannot be read.
        OSError: writing failed (``dest`` read-only, disk full); ``PermissionError`` or errno ``EROFS``.
    """
    archive = Path(archive)
    dest = Path(dest if dest is not None else archive.parent).resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, EOFError) as err:
        raise FlareDataError(f"{archive}: not a zip archive ({err})") from err
    except OSError as err:
        raise FlareDataError(f"{archive}: cannot read ({err.strerror or err})") from err
    written = 0
    damaged: list[str] = []
    with zf:
        infos = zf.infolist()
        members = [(info, _check_member(archive, info, dest)) for info in infos]
        (limits or ZipLimits()).check(archive, [i for i in infos if not i.is_dir()])
        for info, target in members:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if target.is_file() and target.stat().st_size == info.file_size and _crc32(target) == info.CRC:
                continue  # already extracted, byte for byte (a new zip with the same names is extracted anew)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f"{target.name}.{os.getpid()}.part")  # per process: two runs never share one
            try:
                with zf.open(info) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out)
            except _MEMBER_ERRORS as err:
                tmp.unlink(missing_ok=True)
                damaged.append(f"{info.filename!r} ({type(err).__name__}: {err})")
                continue
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            os.replace(tmp, target)
            written += 1
    if damaged:
        raise DamagedArchiveError(f"{archive}: {len(damaged)} damaged member(s) skipped ({written} extracted): "
                                  + "; ".join(damaged[:3]) + (" ..." if len(damaged) > 3 else ""))
    return written


def _crc32(path: Path) -> int:
    """The CRC-32 of a file's bytes, as a zip stores it for each member."""
    crc = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return crc


def extract_dataset_zips(dataset_dir: str | os.PathLike, limits: ZipLimits | None = None) -> dict[str, int]:
    """Extract every ``images*.zip`` of a dataset folder next to it; returns files written per archive."""
    return {p.name: safe_extract(p, limits=limits) for p in sorted(Path(dataset_dir).glob("images*.zip"))}


def extract_all(files: Iterable[QuestionFile], limits: ZipLimits | None = None) -> dict[str, int]:
    """Extract the image zips of the datasets behind ``files`` (each dataset folder once)."""
    done: dict[str, int] = {}
    for folder in dict.fromkeys(f.dataset_dir for f in files):
        for name, count in extract_dataset_zips(folder, limits).items():
            done[str(folder / name)] = count
    return done
