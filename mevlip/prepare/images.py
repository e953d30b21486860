"""Images for data preparation: extract the zips when needed, find each ``ImageName``, check that it opens.

* Extraction goes through :func:`mevlip.flare.safe_extract` (unsafe members and zip bombs are refused, damaged
  members skipped), but only for a folder where some zip member is missing or has another size on disk: a rerun
  then reads each zip's central directory once instead of re-checking 50k members one by one. A bad archive is
  reported and its records then report missing images; it never stops the run. A dataset folder that cannot be
  written (a read-only mount: ``EROFS``, or no write permission) is extracted under the output folder instead,
  ``<output_dir>/extracted_images/<split>/<Category>/<dataset>/`` (:func:`fallback_folder`), as inference does.
* :class:`FolderIndex` lists a dataset folder (and its fallback folder) once (``os.scandir``, never following a
  symbolic link, so a link to ``/`` or a link loop is not walked) and answers ``ImageName`` lookups from that
  listing; only names that are not there verbatim go through the lenient :func:`mevlip.flare.resolve_image`
  (flare_format.md 1.3), which refuses a symbolic link leading out of the dataset folder.
* LLaMA-Factory opens every image of a row in its collator, mid-training; one unreadable file ends the run.
  :func:`check_image` runs PIL's ``Image.open(...).verify()`` (header; for PNG every chunk CRC). JPEG's
  ``verify`` is a no-op, so a JPEG must also end with its end-of-image marker, or be decoded in full to decide.
* :class:`ImageChecker` checks one question file's unique images (one zip's worth) as one batch, spread over a
  process pool in a few chunks; ``submit`` returns at once, so the caller prepares the next file meanwhile.
  Threads would not help: header parsing holds the GIL.
"""

from __future__ import annotations

import errno
import functools
import logging
import multiprocessing
import os
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mevlip.flare import FlareDataError, QuestionFile, UnsafePathError, ZipLimits, resolve_image, safe_extract

logger = logging.getLogger(__name__)

#: Folder under the output folder where the zips of a read-only dataset folder are extracted.
FALLBACK_DIR = "extracted_images"
#: Bytes read from the end of a JPEG when looking for its end-of-image marker (more padding: decoded to decide).
_JPEG_TAIL = 64
#: Below this many images a batch is checked in-process (a pool round trip costs more than the work).
_MIN_POOLED = 64


# ----------------------------------------------------------------------------------------------- find
def scan_folder(folder: str | os.PathLike, sizes: bool = False) -> dict[str, int]:
    """Every regular file under ``folder``: relative POSIX path -> size (``-1`` unless ``sizes``).

    Symbolic links are not followed (a link to ``/`` or to a parent would walk the filesystem or loop) and are
    not listed; :func:`mevlip.flare.resolve_image` decides about a linked image. Unreadable sub-folders are skipped.
    """
    found: dict[str, int] = {}
    stack = [(str(folder), "")]
    while stack:
        path, prefix = stack.pop()
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    rel = prefix + entry.name
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((entry.path, rel + "/"))
                    elif entry.is_file(follow_symlinks=False):
                        found[rel] = entry.stat(follow_symlinks=False).st_size if sizes else -1
        except OSError as err:  # permission denied, a folder removed meanwhile: its images report as missing
            logger.warning("cannot list %s: %s", path, err.strerror or err)
    return found


class FolderIndex:
    """``ImageName`` -> ``(path, path relative to its root, root)`` from one listing of each root.

    The roots are the dataset folder and, when given and present, its :func:`fallback_folder` (where the zips of
    a read-only dataset folder were extracted); the dataset folder is looked in first.
    """

    def __init__(self, dataset_dir: Path, fallback: Path | None = None):
        self.roots = [dataset_dir] + ([fallback] if fallback is not None and fallback.is_dir() else [])
        self.heads = [str(r).rstrip("/") + "/" for r in self.roots]
        self.listings = [scan_folder(r) if r.is_dir() else {} for r in self.roots]

    def find(self, name: str) -> tuple[str, str, Path] | None:
        """Where an image is, or ``None`` when it is nowhere :func:`resolve_image` would look."""
        for root, head, files in zip(self.roots, self.heads, self.listings, strict=True):
            if name in files:  # resolve_image's first candidate: <root>/<ImageName>
                return head + name, name, root
        for root in self.roots:
            try:
                path = resolve_image(root, name)
            except (FileNotFoundError, UnsafePathError):
                continue
            return str(path), path.relative_to(root).as_posix(), root
        return None


def why_missing(dataset_dir: Path, name: str) -> str:
    """Why :meth:`FolderIndex.find` gave no image: ``"not found"``, or the refusal of a path leaving the folder."""
    try:
        resolve_image(dataset_dir, name)
    except UnsafePathError as err:
        return f"refused: {err}"
    except FileNotFoundError:
        pass
    return "not found"


# ----------------------------------------------------------------------------------------------- extract
def fallback_folder(output_dir: str | os.PathLike, dataset_root: str | os.PathLike,
                    dataset_dir: str | os.PathLike) -> Path:
    """Where a read-only dataset folder's zips are extracted: ``<output_dir>/extracted_images/<path in root>``."""
    rel = Path(os.path.relpath(dataset_dir, dataset_root))
    if rel.is_absolute() or ".." in rel.parts:  # not under the root (a caller's own layout): keep it apart
        rel = Path("_outside") / Path(dataset_dir).name
    return Path(output_dir) / FALLBACK_DIR / rel


def _needs_extraction(archive: Path, on_disk: dict[str, int]) -> bool:
    try:
        with zipfile.ZipFile(archive) as zf:
            return any(on_disk.get(i.filename) != i.file_size for i in zf.infolist() if not i.is_dir())
    except (zipfile.BadZipFile, EOFError, OSError):
        return True  # let safe_extract report it


def _read_only(err: OSError) -> bool:
    """Whether a failed write means the folder cannot be written (a read-only mount, no permission)."""
    return isinstance(err, PermissionError) or err.errno in (errno.EROFS, errno.EACCES, errno.EPERM)


def extract_folder(folder: Path, limits: ZipLimits | None = None,
                   fallback: Path | None = None) -> tuple[str, int, str | None]:
    """Extract one dataset folder's ``images*.zip`` if anything is missing; a bad archive is reported, not raised.

    Args:
        folder: the dataset folder (its zips are extracted next to them).
        limits: zip-bomb limits.
        fallback: where to extract instead when ``folder`` cannot be written (``None``: report it as an error).

    Returns:
        ``(folder, files written, error)``; ``error`` names each archive that was refused (unsafe member, over
        the zip limits), damaged or unreadable (its records then report missing images), else ``None``.
    """
    archives = sorted(folder.glob("images*.zip"))  # the pattern mevlip.flare.extract_dataset_zips uses
    if not archives:
        return str(folder), 0, None
    on_disk = scan_folder(folder, sizes=True)
    elsewhere = scan_folder(fallback, sizes=True) if fallback is not None and fallback.is_dir() else None
    written, errors = 0, []
    for archive in archives:
        if not _needs_extraction(archive, on_disk) or (elsewhere and not _needs_extraction(archive, elsewhere)):
            continue
        try:
            try:
                written += safe_extract(archive, limits=limits)
            except OSError as err:
                if fallback is None or not _read_only(err):
                    raise
                logger.warning("%s cannot be written (%s): extracting %s under %s", folder, err.strerror or err,
                               archive.name, fallback)
                written += safe_extract(archive, fallback, limits)
        except FlareDataError as err:  # unsafe, a bomb, damaged or not a zip: this archive only
            errors.append(str(err))
        except OSError as err:  # the output folder is not writable either, disk full: its records report missing
            errors.append(f"{archive}: cannot extract ({err.strerror or err})")
    return str(folder), written, "; ".join(errors) or None


def _extract_folder_to(folder: Path, fallback: Path | None, limits: ZipLimits | None) -> tuple[str, int, str | None]:
    """:func:`extract_folder` with the fallback second (a pool maps it over folders and fallbacks)."""
    return extract_folder(folder, limits, fallback)


def extract_images(files: list[QuestionFile], pool: ProcessPoolExecutor | None = None,
                   limits: ZipLimits | None = None,
                   fallback: Callable[[Path], Path] | None = None) -> list[tuple]:
    """Extract the image zips of the datasets behind ``files`` (each folder once; in parallel with a pool).

    Args:
        fallback: ``dataset folder -> folder to extract into when it is read-only`` (:func:`fallback_folder`);
            ``None``: a read-only folder is reported as an error.

    Returns:
        :func:`extract_folder`'s ``(folder, files written, error)`` per folder.
    """
    folders = list(dict.fromkeys(f.dataset_dir for f in files))
    targets = [fallback(f) if fallback is not None else None for f in folders]
    work = functools.partial(_extract_folder_to, limits=limits)
    results = list(pool.map(work, folders, targets) if pool is not None else map(work, folders, targets))
    for folder, _, error in results:
        if error:
            logger.error("cannot extract images of %s: %s", folder, error)
    logger.info("image zips of %d dataset folder(s) checked, %d file(s) extracted", len(results),
                sum(n for _, n, _ in results))
    return results


# ----------------------------------------------------------------------------------------------- check
def _jpeg_has_eoi(path: str) -> bool:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - _JPEG_TAIL))
        # an end-of-image marker inside the data can belong to an EXIF thumbnail: require it at the very end
        return fh.read().rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")


def check_image(path: str, full_decode: bool = False) -> str | None:
    """Why an image cannot be used, or ``None`` when it opens.

    Args:
        path: the image file.
        full_decode: decode the pixels too (catches damage inside compressed data, at the cost of a decode).

    Returns:
        ``None``, or a short reason such as ``"missing file"`` or ``"UnidentifiedImageError: cannot identify ..."``.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            fmt = image.format
            image.verify()
        if full_decode or (fmt == "JPEG" and not _jpeg_has_eoi(path)):
            with Image.open(path) as image:
                image.load()
    except FileNotFoundError:
        return "missing file"
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError, DecompressionBombError)
        return f"{type(err).__name__}: {str(err).replace(str(path), '<file>')}"
    return None


def check_images(paths: Sequence[str], full_decode: bool = False) -> list[str | None]:
    """:func:`check_image` over a list, in order (the unit of work of one pool task)."""
    return [check_image(p, full_decode) for p in paths]


Verdicts = Callable[[], dict[str, str | None]]

#: Seconds between a pool worker's checks that its parent is still alive.
_PARENT_POLL_S = 0.5


def _exit_with_parent(parent_pid: int) -> None:
    """Pool-worker initializer: end this worker once its parent is gone (``kill -9`` leaves no orphans).

    A spawned worker blocks on its task queue and would outlive a killed parent; a daemon thread watches the
    parent's pid and exits the process when the worker has been re-parented.
    """
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()



class ImageChecker:
    """Checks batches of image paths, in a process pool when ``workers > 1``; a context manager."""

    def __init__(self, workers: int = 1, full_decode: bool = False):
        self.workers = max(0, int(workers))
        self.full_decode = full_decode
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> ImageChecker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Shut the pool down."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def pool(self) -> ProcessPoolExecutor | None:
        """The process pool (``None`` when serial); spawned, so a parent holding torch threads is safe."""
        if self.workers <= 1:
            return None
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_exit_with_parent, initargs=(os.getpid(),))
        return self._pool

    def submit(self, paths: Iterable[str]) -> Verdicts:
        """Start checking; the returned callable gives ``{unique path: reason or None}`` (each opened once)."""
        unique = sorted(set(paths))
        pool = self.pool() if len(unique) >= _MIN_POOLED else None
        if pool is None:
            return lambda: dict(zip(unique, check_images(unique, self.full_decode), strict=True))
        # ~2 chunks per worker: balances uneven image sizes without paying a round trip per image
        size = -(-len(unique) // (self.workers * 2))
        chunks = [unique[i: i + size] for i in range(0, len(unique), size)]
        futures = [pool.submit(check_images, chunk, self.full_decode) for chunk in chunks]
        return lambda: {p: r for chunk, f in zip(chunks, futures, strict=True)
                        for p, r in zip(chunk, f.result(), strict=True)}

    def check(self, paths: Iterable[str]) -> dict[str, str | None]:
        """Check and wait: ``{unique path: reason or None}``."""
        return self.submit(paths)()


class NaiveImageChecker(ImageChecker):
    """The benchmark's baseline: every reference opened again, serially, though rows share images."""

    def __init__(self, full_decode: bool = False):
        super().__init__(workers=0, full_decode=full_decode)

    def submit(self, paths: Iterable[str]) -> Verdicts:
        """Open each reference in turn, duplicates included."""
        out = {}
        for path in paths:
            out[path] = check_image(path, self.full_decode)
        return lambda: out
