"""FLARE -> LLaMA-Factory ShareGPT rows, per-task subsets and the router set (``data_preparation.py``'s library).

After extracting the image zips where needed, for each question file (streamed: one file is read while the
previous one's images are checked, so memory holds two files plus small per-row bookkeeping) it:

1. validates the records (:func:`mevlip.flare.load_records`; a record without an answer cannot be trained on);
2. locates each record's images (leniently, ``docs/flare_format.md`` 1.3) and opens every unique one
   (:mod:`mevlip.prepare.images`, a process pool); rows that need a missing or unreadable image are left out and
   reported with file, index and reason;
3. writes one ShareGPT row per model input under the preset (:mod:`mevlip.presets`). ``paper``, the default, writes
   what the authors trained on (their converter's ``internvl_train.jsonl``): one row per image, user turn
   ``"<image> " + Question`` (:func:`mevlip.prompts.render_user`, the renderer inference uses), assistant turn the
   record's ``Answer`` text as given (:func:`answer_text`). ``ours`` keeps a record's images in one row and writes
   canonical answers (:func:`canonical_answer`). No system turn in any row: the recipes set ``default_system``.
   Rows also carry ``task``/``dataset``/``split``/``key``/``index`` metadata, which LLaMA-Factory's ShareGPT
   converter ignores.

Files and entries are described in :mod:`mevlip.prepare.io`; counts in :mod:`mevlip.prepare.stats`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

from mevlip.answers import (
    answer_value_problem,
    format_boxes,
    format_count,
    format_instances,
    join_labels,
    parse_boxes,
    parse_instances,
)
from mevlip.flare import (
    SPLITS,
    FlareDataError,
    QuestionFile,
    ZipLimits,
    discover,
    image_names,
    load_records,
    record_key,
)
from mevlip.locks import OutputLock
from mevlip.prepare.images import FolderIndex, ImageChecker, extract_images, fallback_folder, why_missing
from mevlip.prepare.io import (
    DATASET_INFO,
    PARTS,
    ROUTER_DIR,
    JsonListWriter,
    Staging,
    dataset_entries,
    merged_dataset_info,
    part_dir,
    read_dataset_info,
    split_router_set,
    stale_files,
    write_json,
)
from mevlip.prepare.stats import PartStats, TokenCounter, format_summary
from mevlip.presets import DEFAULT_PRESET, TRAINING_PRESETS, training_preset
from mevlip.prompts import MULTI_IMAGE_MODES, render_user, select_images
from mevlip.tasks import TASK_NAMES, normalize_task_type

logger = logging.getLogger(__name__)

STATS_FILE = "prepare_stats.json"
_STAGING = ".prepare_tmp"


def default_workers() -> int:
    """One image-check process per core, at most 8."""
    return max(1, min(os.cpu_count() or 1, 8))


@dataclass
class PrepareConfig:
    """Options of a preparation run (the CLI flags of ``data_preparation.py`` share these help texts)."""

    dataset_root: str = field(metadata={"help": "FLARE root holding training/, validation-public/, ..."})
    output_dir: str = field(metadata={"help": "LLaMA-Factory dataset_dir to write into"})
    splits: tuple[str, ...] = field(default=("training",), metadata={"help": "split folders for the training rows"})
    val_splits: tuple[str, ...] = field(default=(), metadata={
        "help": "split folders for held-out rows (_withGT files preferred; records without an answer skipped)"})
    preset: str = field(default=DEFAULT_PRESET, metadata={
        "help": "paper: what the authors trained on (one row per image, '<image> ' + question, answers as given); "
                "ours: every image of a record in one row, '<image>\\n' + question, canonical answers "
                "(docs/fidelity.md)"})
    multi_image: str | None = field(default=None, metadata={
        "help": "override the preset: keep (one row, one <image> per image), first (first image only), explode "
                "(one row per image, as the authors' converter did)"})
    answers: str | None = field(default=None, metadata={
        "help": "override the preset: as_given (the record's Answer text untouched) or canonical (stripped, one "
                "form per task)"})
    max_per_dataset: int | None = field(default=None, metadata={
        "help": "keep at most N records per (split, dataset), a seeded sample"})
    seed: int = field(default=0, metadata={"help": "seed of --max_per_dataset and the router split"})
    workers: int = field(default_factory=default_workers, metadata={
        "help": "processes for extraction and image checks (1: serial)"})
    image_paths: str = field(default="relative", metadata={
        "help": "relative (to output_dir: survives moving the repository as a whole) or absolute"})
    full_decode: bool = field(default=False, metadata={"help": "decode every image in full (strictest, slowest)"})
    tokenizer: str | None = field(default=None, metadata={
        "help": "local tokenizer folder for token lengths (default: a labelled estimate)"})
    image_tokens: int = field(default=256, metadata={"help": "tokens per image (InternVL3: 256 per 448 px tile)"})
    cutoff_len: int = field(default=2048, metadata={"help": "LLaMA-Factory cutoff_len to check rows against"})
    router_test_fraction: float = field(default=0.1, metadata={"help": "held-out share of the router questions"})
    extract: bool = field(default=True, metadata={"help": "extract image zips first (safe, idempotent)"})
    progress: bool = field(default=False, metadata={"help": "show a progress bar over question files"})

    def __post_init__(self) -> None:
        if self.preset not in TRAINING_PRESETS:
            raise ValueError(f"--preset must be one of {', '.join(TRAINING_PRESETS)}, got {self.preset!r}")
        preset = training_preset(self.preset)
        self.multi_image = self.multi_image or preset.multi_image
        self.answers = self.answers or preset.answers
        if self.answers not in ANSWER_MODES:
            raise ValueError(f"--answers must be one of {', '.join(ANSWER_MODES)}, got {self.answers!r}")
        self.splits = tuple(self.splits)
        self.val_splits = tuple(self.val_splits or ())
        if not self.splits:
            raise ValueError("--splits: give at least one split")
        for flag, names in (("--splits", self.splits), ("--val_splits", self.val_splits)):
            if unknown := [s for s in names if s not in SPLITS]:
                raise ValueError(f"{flag}: unknown split(s) {', '.join(unknown)}; known: {', '.join(SPLITS)}")
        if overlap := set(self.splits) & set(self.val_splits):
            raise ValueError(f"--val_splits: {', '.join(sorted(overlap))} also in --splits (held-out must be apart)")
        if self.multi_image not in MULTI_IMAGE_MODES:
            raise ValueError(f"--multi_image must be one of {', '.join(MULTI_IMAGE_MODES)}, got {self.multi_image!r}")
        if self.image_paths not in ("relative", "absolute"):
            raise ValueError(f"--image_paths must be relative or absolute, got {self.image_paths!r}")
        if self.max_per_dataset is not None and self.max_per_dataset < 1:
            raise ValueError(f"--max_per_dataset must be >= 1, got {self.max_per_dataset}")
        if self.image_tokens < 0 or self.cutoff_len < 1:
            raise ValueError("--image_tokens must be >= 0 and --cutoff_len >= 1")
        if not 0 <= self.router_test_fraction < 1:
            raise ValueError(f"--router_test_fraction must be in [0, 1), got {self.router_test_fraction}")

    def output_affecting(self) -> dict:
        """The options that change what is written (recorded in the stats; workers and progress do not)."""
        skip = {"dataset_root", "output_dir", "workers", "progress", "extract"}
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self) if f.name not in skip}


# ----------------------------------------------------------------------------------------------- answers
ANSWER_MODES = ("as_given", "canonical")


def answer_text(task: str, value: object, mode: str = "as_given", label_sep: str = "; ") -> str | None:
    """The assistant turn under an answer mode; ``None`` when the record has no usable answer.

    ``as_given`` (the paper's): a string answer is written exactly as in the record, not even stripped (the
    authors' converter wrote ``row["Answer"]``); only an empty or blank one is left out. A non-string value (JSON
    allows numbers, lists, objects: flare_format.md 3.3) has no "text as given" and is written as
    :func:`canonical_answer` writes it. ``canonical`` (``ours``): :func:`canonical_answer`.
    """
    if mode == "as_given" and isinstance(value, str):
        return value if value.strip() else None
    return canonical_answer(task, value, label_sep)


def label_separator(records: list[dict]) -> str:
    """How a file joins multi-label answers: ``"; "`` if its string answers use ``;`` (periapical), else ``", "``.

    Only needed to re-serialise a list-valued answer (flare_format.md 3.3 allows non-string values); ``"; "``
    is the default because one periapical label contains commas (3.2).
    """
    answers = [r["Answer"] for r in records if isinstance(r.get("Answer"), str)]
    if any(";" in a for a in answers):
        return "; "
    return ", " if any("," in a for a in answers) else "; "


def canonical_answer(task: str, value: object, label_sep: str = "; ") -> str | None:
    """The assistant turn: the dataset's own answer string, stripped; ``None`` when there is no answer.

    Strings are kept as written (only stripped). Numbers become strings (an integral count as ``"42"``,
    other numbers as Python writes them, ``20.0`` -> ``"20.0"``); lists and dicts parsed from JSON are written
    back in the dataset's form with :mod:`mevlip.answers` (boxes ``[[x1, y1, x2, y2]]``, instance objects,
    labels joined by ``label_sep``).
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            return None
        return format_count(value) if task == "counting" and float(value).is_integer() else str(value)
    if isinstance(value, (list, tuple)) and task == "detection" and (boxes := parse_boxes(list(value))) is not None:
        return format_boxes(boxes)
    if isinstance(value, (list, tuple)) and task == "multi_label_classification" and value:
        return join_labels([str(v).strip() for v in value], label_sep)
    if isinstance(value, dict) and task == "instance_detection" and (inst := parse_instances(value)) is not None:
        return format_instances(inst)
    if isinstance(value, (list, tuple, dict)) and not value:
        return None
    return json.dumps(value, ensure_ascii=False)


# ----------------------------------------------------------------------------------------------- rows
def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


@dataclass
class FilePlan:
    """One question file read and its images located; waiting for the image verdicts."""

    qfile: QuestionFile
    rel_file: str
    #: (index, record, task, answer, [[(ImageName, (path, relative path, root) or None), ...] per model input])
    records: list[tuple]
    verdicts: Callable[[], dict[str, str | None]]


def plan_file(qfile: QuestionFile, config: PrepareConfig, checker: ImageChecker, stats: PartStats) -> FilePlan:
    """Read one question file, locate its images and start checking them (the first half of a file's work)."""
    rel_file = _relative(qfile.path, Path(config.dataset_root))
    try:
        loaded = load_records(qfile, require_answer=True)
    except FlareDataError as err:  # not JSON, not UTF-8, too deep, unreadable: skip the file, prepare the others
        stats.files += 1
        stats.skip(rel_file, -1, "unreadable file", str(err))
        return FilePlan(qfile, rel_file, [], checker.submit([]))
    stats.files += 1
    stats.records_read += len(loaded.records) + len(loaded.problems)
    for problem in loaded.problems:
        kind = "empty answer" if problem.reason == "Answer is empty" else "invalid record"
        stats.skip(rel_file, problem.index, kind, problem.reason)
    pairs = list(zip(loaded.indices, loaded.records, strict=True))
    if config.max_per_dataset is not None and len(pairs) > config.max_per_dataset:
        keep = random.Random(f"{config.seed}:{qfile.split}:{qfile.dataset}").sample(range(len(pairs)),
                                                                                     config.max_per_dataset)
        stats.records_capped += len(pairs) - config.max_per_dataset
        pairs = [pairs[i] for i in sorted(keep)]
    label_sep = label_separator([r for _, r in pairs])
    fallback = fallback_folder(config.output_dir, config.dataset_root, qfile.dataset_dir)  # a read-only folder's
    index = FolderIndex(qfile.dataset_dir, fallback)
    planned, references, tasks = [], [], {}
    for position, record in pairs:
        raw = record["TaskType"]
        if raw not in tasks:  # a handful of spellings per file: normalise each once
            tasks[raw] = normalize_task_type(raw)
        task = tasks[raw]
        stats.spellings[(raw, task)] += 1
        if problem := answer_value_problem(task, record["Answer"]):  # a bool, inf, a list for a classification...
            stats.skip(rel_file, position, "unusable answer", problem, record_key(record))
            continue
        answer = answer_text(task, record["Answer"], config.answers, label_sep)
        if answer is None:
            stats.skip(rel_file, position, "empty answer", "Answer is empty", record_key(record))
            continue
        inputs = [[(name, index.find(name)) for name in names]
                  for names in select_images(image_names(record), config.multi_image)]
        references += [found[0] for resolved in inputs for _, found in resolved if found is not None]
        planned.append((position, record, task, answer, inputs))
    return FilePlan(qfile, rel_file, planned, checker.submit(references))


def finish_file(plan: FilePlan, config: PrepareConfig, stats: PartStats) -> tuple[list[dict], list[tuple[str, str]]]:
    """The ShareGPT rows of a planned file, leaving out rows that need a missing or unreadable image.

    Returns:
        ``(rows, questions)``: the rows in file order, and ``(question, task)`` of each record that gave a row.
    """
    verdicts = plan.verdicts()
    stats.images_checked += len(verdicts)
    stats.images_bad += sum(1 for v in verdicts.values() if v)
    out_real = os.path.realpath(config.output_dir)
    heads: dict[Path, str] = {}  # per image root: the dataset folder, or where its zips were extracted instead

    def head(root: Path) -> str:
        if root not in heads:
            real = os.path.realpath(root)
            # realpath on both ends: the kernel resolves ".." physically, so a symlinked folder still works
            prefix = real if config.image_paths == "absolute" else os.path.relpath(real, out_real)
            heads[root] = prefix.rstrip("/") + "/"
        return heads[root]

    rows, questions = [], []
    for index, record, task, answer, inputs in plan.records:
        key, written = record_key(record), False
        for resolved in inputs:
            bad = [(n, "missing image", why_missing(plan.qfile.dataset_dir, n)) if f is None  # or refused
                   else (n, "unreadable image", verdicts[f[0]])
                   for n, f in resolved if f is None or verdicts[f[0]]]
            for name, kind, reason in bad:
                stats.skip(plan.rel_file, index, kind, f"image {name!r}: {reason}", key)
            if bad:
                continue
            rows.append({
                "conversations": [{"from": "human",
                                   "value": render_user(record["Question"], len(resolved), config.preset)},
                                  {"from": "gpt", "value": answer}],
                "images": [head(f[2]) + f[1] for _, f in resolved],
                "task": task, "dataset": plan.qfile.dataset, "split": plan.qfile.split, "key": key, "index": index,
            })
            written = True
        if written:
            stats.records_used += 1
            stats.record_images += len(image_names(record))
            questions.append((record["Question"], task))
    return rows, questions


def iter_file_rows(files: list[QuestionFile], config: PrepareConfig, checker: ImageChecker,
                   stats: PartStats) -> Iterator[tuple[list[dict], list[tuple[str, str]], str]]:
    """:func:`finish_file` per file, in order, reading file i+1 while the pool checks file i's images; each with
    the file's path relative to the dataset root."""
    pending: FilePlan | None = None
    for qfile in files:
        plan = plan_file(qfile, config, checker, stats)
        if pending is not None:
            yield (*finish_file(pending, config, stats), pending.rel_file)
        pending = plan
    if pending is not None:
        yield (*finish_file(pending, config, stats), pending.rel_file)


# ----------------------------------------------------------------------------------------------- the run
def prepare(config: PrepareConfig, checker: ImageChecker | None = None, limits: ZipLimits | None = None) -> dict:
    """Run data preparation; returns the stats that were written to ``prepare_stats.json``.

    With ``workers > 1`` the image checks run in a *spawned* process pool: a script calling this must do so
    under ``if __name__ == "__main__":`` (Python's rule for spawn; the CLI does). Every output is staged and
    swapped in at the end (:class:`mevlip.prepare.io.Staging`): a run that fails or is killed leaves the previous
    outputs whole. A bad archive, question file or record is skipped and reported in the stats, never fatal.

    Args:
        config: the options.
        checker: image checker to use (default: an :class:`ImageChecker` with ``config.workers`` processes);
            the benchmark passes the naive one.
        limits: zip-bomb limits of the image archives (default :class:`mevlip.flare.ZipLimits`).

    Raises:
        FileNotFoundError: no question files for ``config.splits``.
        ValueError: the existing ``dataset_info.json`` is not a JSON object (checked before any work).
        OutputInUseError: another data preparation run is writing ``config.output_dir`` (its pid named).
    """
    root, out = Path(config.dataset_root), Path(config.output_dir)
    files = {"train": discover(root, config.splits, gt="prefer"),
             "val": discover(root, config.val_splits, gt="prefer") if config.val_splits else []}
    if not files["train"]:
        raise FileNotFoundError(f"no question files under {root} for split(s) {', '.join(config.splits)}; download "
                                "FLARE there (original_dataset/README.md) or write mini-FLARE: "
                                f"python -m mevlip.synth --out {root} --scale small")
    out.mkdir(parents=True, exist_ok=True)
    # one run at a time: a second one is refused before its staging could drop the first one's files
    lock = OutputLock(out, "data preparation run")  # .<folder>.lock beside the output folder
    try:
        return _prepare(config, checker, limits, files, root, out)
    finally:
        lock.release()


def _prepare(config: PrepareConfig, checker: ImageChecker | None, limits: ZipLimits | None, files: dict,
             root: Path, out: Path) -> dict:
    """:func:`prepare` once the output folder is locked."""
    existing_info = read_dataset_info(out)  # a broken file stops the run here, before anything is written
    staging = Staging(out, _STAGING)
    counter = TokenCounter(config.tokenizer, config.image_tokens, training_preset(config.preset).system)
    own_checker = checker is None
    checker = checker or ImageChecker(config.workers, config.full_decode)
    archive_errors: list[dict] = []
    part_stats: dict[str, PartStats] = {}
    written: dict[str, list[str]] = {}
    questions: dict[str, str] = {}
    router = {"duplicates": 0, "conflicts": 0}
    writers: dict[str, JsonListWriter] = {}
    try:
        dataset_dirs = list(dict.fromkeys(f.dataset_dir for f in files["train"] + files["val"]))
        if config.extract:  # a read-only dataset folder is extracted under the output folder instead
            for folder, _, error in extract_images(files["train"] + files["val"], checker.pool(), limits,
                                                   fallback=lambda d: fallback_folder(out, root, d)):
                if error:
                    archive_errors.append({"folder": _relative(Path(folder), root), "error": error})
        extracted_here = [{"folder": _relative(d, root), "images": fallback_folder(out, root, d).relative_to(out)
                           .as_posix()} for d in dataset_dirs if fallback_folder(out, root, d).is_dir()]
        for part, part_files in files.items():
            if not part_files:
                continue
            stats = part_stats[part] = PartStats()
            writers = {}
            if config.progress:
                from tqdm import tqdm

                part_files = tqdm(part_files, desc=f"prepare {part}", unit="file")
            over_cutoff: set[tuple[str, int]] = set()
            for rows, file_questions, rel_file in iter_file_rows(part_files, config, checker, stats):
                lengths = counter.rows([r["conversations"][0]["value"] for r in rows],
                                       [r["conversations"][1]["value"] for r in rows])
                for row, (text_len, total_len) in zip(rows, lengths, strict=True):
                    if total_len > config.cutoff_len:  # LLaMA-Factory would cut it, image tokens and answer too
                        if (rel_file, row["index"]) not in over_cutoff:  # a record once, whatever its rows
                            over_cutoff.add((rel_file, row["index"]))
                            stats.records_used -= 1
                            stats.skip(rel_file, row["index"], "over cutoff_len", f"{total_len:,} tokens "
                                       f"({counter.method}) over --cutoff_len {config.cutoff_len}", row["key"])
                        continue
                    task = row["task"]
                    if task not in writers:
                        writers[task] = staging.writer(f"flare/{part}/{task}.json")
                    writers[task].write(row)
                    stats.add_row(row, text_len, total_len)
                if part == "train":
                    for question, task in file_questions:
                        _add_question(questions, router, question, task)
            for writer in writers.values():
                writer.close()
            written[part] = [t for t in TASK_NAMES if t in writers]
            writers = {}

        delete, remove_if_empty = [], []
        for part in PARTS:
            stale, others = stale_files(out, part, written.get(part, []))
            delete += stale
            if part not in written:  # a run without --val_splits drops an older run's held-out files
                remove_if_empty.append(part_dir(Path(), part).as_posix())
            for name in others:
                logger.warning("%s holds %s, which flare_all%s will also load", part_dir(out, part), name,
                               PARTS[part])
        if not written.get("train"):
            logger.error("no training rows were written (see %s)", out / STATS_FILE)
        write_json(staging.path(DATASET_INFO), merged_dataset_info(existing_info, dataset_entries(written)))
        train_rows, test_rows = split_router_set(questions, config.router_test_fraction, config.seed)
        write_json(staging.path(f"{ROUTER_DIR}/train.json"), train_rows)
        write_json(staging.path(f"{ROUTER_DIR}/test.json"), test_rows)
        stats = {
            "dataset_root": os.path.relpath(os.path.realpath(root), os.path.realpath(out)),
            "config": config.output_affecting(),
            "parts": {p: s.to_dict(config.cutoff_len, counter.method) for p, s in part_stats.items()},
            "archive_errors": archive_errors,
            "extracted_under_output": extracted_here,
            "router": {"unique_questions": len(questions), **router, "train": len(train_rows),
                       "test": len(test_rows)},
        }
        write_json(staging.path(STATS_FILE), stats)
        staging.commit(delete, remove_if_empty)
    except BaseException:
        for writer in writers.values():
            writer.abort()
        staging.discard()
        raise
    finally:
        if own_checker:
            checker.close()
    return stats


def _add_question(questions: dict[str, str], counts: dict[str, int], question: str, task: str) -> None:
    """Add a router question, de-duplicated by exact text (the first task seen wins a conflict)."""
    seen = questions.get(question)
    if seen is None:
        questions[question] = task
    elif seen == task:
        counts["duplicates"] += 1
    else:
        counts["conflicts"] += 1
        logger.warning("question %r is labelled %s and %s; keeping %s", question[:80], seen, task, seen)


__all__ = ["PrepareConfig", "answer_text", "canonical_answer", "extract_images", "format_summary", "prepare"]
