"""Answer every FLARE question: route, group by adapter, generate in batches, resume after a crash, shard, merge.

The flow of ``docker_internvl/inference.py``:

1. :func:`plan` finds the question files to answer at any depth under the input folder
   (:mod:`mevlip.inference.discovery`: every JSON list of records, as the original's ``os.walk``; a ``_withGT``
   file only when its blank twin is absent) and lists their records in discovery order, each with a global index;
   a record needs only ``ImageName`` and ``Question``; a bad one (no question, missing image) keeps its place with
   an error and will get an empty ``Answer``.
2. Routing, for all questions at once: the GLiClass router (ME-VLIP), the record's own TaskType (oracle ablation)
   or the general adapter only (the paper's "without TC" column).
3. Records are grouped by adapter, generated in batches with ``set_adapter`` once per group, post-processed by the
   record's own ``TaskType`` (as the original did; the routed task for a record without a known one) with
   :func:`mevlip.answers.canonicalize` (the parser evaluation uses), or under the ``original`` preset with the
   original's parser (:func:`mevlip.answers.original_parse_answer`), and appended to a flushed journal, so a rerun
   after a crash or ``kill -9`` skips finished records.
4. ``predictions.json`` is the input records, every key kept in its order and ``Answer`` set (added where absent),
   in discovery order, plus a sidecar with the task (and whether it came from the record or the router), routed
   task, router score, adapter, raw output and error of each record.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mevlip.answers import canonicalize, original_parse_answer
from mevlip.cli import one_line, writing
from mevlip.flare import (
    FlareDataError,
    ZipLimits,
    image_names,
    record_key,
    resolve_image,
    safe_extract,
    task_of,
    validate_question,
)

# the journal, fingerprints and lock live in mevlip.inference.journal; their names stay importable from here
from mevlip.inference.journal import (  # noqa: F401
    _HASH_SAMPLE,
    _HASH_WHOLE,
    ANSWER_SETTINGS,
    Journal,
    OutputLock,
    ResumeError,
    _changes,
    _digest,
    _file_digest,
    journal_path,
    read_fingerprint,
    run_fingerprint,
    shard_output,
    tree_digest,
)
from mevlip.tasks import GENERAL_ADAPTER, TASKS

logger = logging.getLogger(__name__)
ROUTINGS = ("router", "record", "general")


@dataclass
class Item:
    """One record to answer, located by file and index; ``error`` set when it cannot be answered."""

    index: int
    path: str
    record_index: int
    key: str
    question: str = ""
    images: list[str] = field(default_factory=list)
    task: str | None = None  # canonical task of the record's own TaskType
    task_type: str | None = None  # the record's TaskType as written (the original's parser keys on it)
    error: str | None = None
    digest: str = ""  # what produced its answer: the fields the model and post-processing read, its images' bytes


@dataclass
class Plan:
    """The question files (path -> raw record list) and the items to answer, in discovery order."""

    files: dict[str, list] = field(default_factory=dict)
    items: list[Item] = field(default_factory=list)
    file_errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # JSON files and folders not answered, and why

    def fingerprint(self) -> str:
        """A digest of the inputs (keys in order), so a journal is only resumed against the same inputs."""
        text = "\n".join(f"{i.index}\t{i.key}" for i in self.items)
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]  # a bad record still hashes


def plan(root: str | os.PathLike, splits: Sequence[str] | None = None, multi_image: str = "keep",
         scratch: str | os.PathLike | None = None, limits: ZipLimits | None = None,
         exclude: Sequence[str | os.PathLike] = (), limit: int | None = None) -> Plan:
    """List every record to answer under ``root``: every question file at any depth
    (:func:`mevlip.inference.discovery.find_question_files`), its records in file order.

    A record needs only ``ImageName`` and a non-empty ``Question`` (:func:`mevlip.flare.validate_question`); its
    ``TaskType`` may be absent or unknown (``task`` is then ``None`` and the router's task is used). Images are
    looked up relative to the question file's folder, the original's rule, then by the lenient candidates of
    :func:`mevlip.flare.image_candidates`. Image zips beside a question file are extracted there when needed; when
    that folder is read-only (a mounted challenge input), into ``scratch/<its folder relative to root>/`` instead.
    Nothing here stops the run: a bad archive (not a zip, damaged, unsafe, over ``limits``) or question file is
    listed in ``file_errors``, a JSON file that is not a question list in ``skipped``, and a bad record keeps its
    place with an error naming its file and index. ``limit`` keeps the first records of each file only (a smoke
    run); the plan, and so the predictions, then hold just those.

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """
    from mevlip.inference.discovery import find_question_files
    from mevlip.prompts import select_images

    result = Plan()
    image_digests: dict[str, str] = {}
    found = find_question_files(root, splits, exclude=[*exclude, scratch])
    result.skipped, result.file_errors = found.skipped, dict(found.errors)
    extracted: dict[Path, tuple[list[Path], dict[str, str]]] = {}
    for qfile in found.files:
        folder = qfile.path.parent
        if folder not in extracted:  # a folder's zips once, however many question files share it
            archive_errors: dict[str, str] = {}
            extracted[folder] = ([folder, *_extract_images(folder, qfile.rel_dir, scratch, limits, archive_errors)],
                                 archive_errors)
            result.file_errors.update(archive_errors)
        image_roots, archive_errors = extracted[folder]
        hint = f" ({'; '.join(archive_errors.values())})" if archive_errors else ""
        records = qfile.records if limit is None else qfile.records[:limit]
        result.files[str(qfile.path)] = records
        for record_index, record in enumerate(records):
            reason = validate_question(record)
            has_key = isinstance(record, dict) and "ImageName" in record and "Question" in record
            key = record_key(record) if has_key else f"#{record_index}"
            item = Item(len(result.items), str(qfile.path), record_index, key)
            result.items.append(item)
            if reason:
                item.error = f"{qfile.path} record {record_index}: {reason}"
                continue
            item.question, item.task = record["Question"], task_of(record)
            item.task_type = record["TaskType"] if isinstance(record.get("TaskType"), str) else None
            try:
                names = select_images(image_names(record), multi_image)[0]
                item.images = [str(_resolve(image_roots, n)) for n in names]
                item.digest = record_digest(record, [_image_digest(p, image_digests) for p in item.images])
            except (FileNotFoundError, ValueError) as err:  # UnsafePathError (a link out of the folder) is a ValueError
                item.error = f"{qfile.path} record {record_index}: {err}{hint}"
            except OSError as err:  # an image that cannot be read (permissions, I/O error)
                item.error = f"{qfile.path} record {record_index}: cannot read image ({one_line(err)})"
    return result


#: The record fields that reach the model (the question, which images) or the post-processing (the task type).
DIGEST_FIELDS = ("Question", "ImageName", "TaskType")


def record_digest(record: dict, image_digests: Sequence[str]) -> str:
    """A digest of everything in a record that shapes its answer: :data:`DIGEST_FIELDS` as written and the bytes of
    the images fed to the model (``image_digests``, in order). A resumed answer must match it."""
    text = json.dumps([[record.get(k) for k in DIGEST_FIELDS], list(image_digests)], ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def _image_digest(path: str, cache: dict[str, str]) -> str:
    """SHA-256 of an image file's bytes, read once per run however many records share it."""
    if path not in cache:
        with open(path, "rb") as fh:
            cache[path] = hashlib.file_digest(fh, "sha256").hexdigest()
    return cache[path]


def _extract_images(folder: Path, rel_dir: Path, scratch, limits: ZipLimits | None,
                    errors: dict[str, str]) -> list[Path]:
    """Extract a folder's image zips (in place, else under ``scratch/<rel_dir>``); returns extra image roots.

    A bad archive is recorded in ``errors`` (archive path -> reason) and the others are still extracted.
    """
    roots: list[Path] = []
    for archive in sorted(folder.glob("images*.zip")):
        try:
            try:
                safe_extract(archive, limits=limits)
            except OSError as err:
                # the input folder is read-only (a mounted challenge input: EROFS, or no write permission)
                if scratch is None or not (isinstance(err, PermissionError) or err.errno == errno.EROFS):
                    raise
                target = Path(scratch) / rel_dir
                if target not in roots:
                    roots.append(target)
                safe_extract(archive, target, limits)
        except (FlareDataError, OSError) as err:  # refused, damaged, not a zip, cannot write: report, go on
            reason = str(err) if isinstance(err, FlareDataError) else f"{archive}: cannot extract ({err})"
            errors[str(archive)] = reason
            logger.error("%s", reason)
    return roots


def _resolve(roots: list[Path], name: str) -> Path:
    for root in roots[1:]:
        try:
            return resolve_image(root, name)
        except FileNotFoundError:
            pass
    return resolve_image(roots[0], name)


# ----------------------------------------------------------------------------------------------- routing
@dataclass
class Route:
    """Where a question goes: the task used for post-processing, the router's score and the adapter."""

    task: str | None
    score: float | None
    adapter: str | None


def route_items(items: list[Item], routing: str, router=None) -> dict[int, Route]:
    """Route every answerable item at once (one batched router pass in ``router`` mode)."""
    if routing not in ROUTINGS:
        raise ValueError(f"routing must be one of {', '.join(ROUTINGS)}, got {routing!r}")
    todo = [i for i in items if i.error is None]
    if routing == "router":
        if router is None:
            raise ValueError("routing 'router' needs a router (--router_dir)")
        routes = router.route([i.question for i in todo])
        return {i.index: Route(r.task, float(r.score), r.adapter) for i, r in zip(todo, routes, strict=True)}
    if routing == "record":  # a record without a known TaskType has no task adapter: the general one answers
        return {i.index: Route(i.task, None, TASKS[i.task].adapter if i.task else GENERAL_ADAPTER) for i in todo}
    return {i.index: Route(i.task, None, GENERAL_ADAPTER) for i in todo}


def resolve_adapter(wanted: str | None, loaded: Sequence[str]) -> str | None:
    """The adapter that will answer: the wanted one, else ``general``, else the base model (``None``)."""
    if wanted in loaded:
        return wanted
    if GENERAL_ADAPTER in loaded:
        return GENERAL_ADAPTER
    return None


def label_separator(raw: str) -> str:
    """Keep the model's own multi-label separator (periapical ``"; "``, chestdr ``", "``)."""
    return "; " if ";" in raw else ", "


POSTPROCESSING = ("canonical", "original")


def task_source(item: Item, route: Route) -> str | None:
    """Where the task an answer was post-processed by came from: ``record`` (its ``TaskType``), ``router``, or
    ``None`` (neither: the output is kept as generated)."""
    return "record" if item.task else ("router" if route.task else None)


def postprocess(item: Item, route: Route, raw: str, mode: str = "canonical") -> tuple[str | None, str]:
    """The ``Answer`` written for a raw model output, and the task it was parsed as.

    The record's own ``TaskType`` decides the parser whenever the record has a known one (so a misrouted question
    still gets its task's parser, as in the original); the routed task only for a record without one. With no task
    at all (no known ``TaskType`` and no router), the output is kept as generated, stripped, as the original kept
    the output of a ``TaskType`` it did not know.

    Args:
        mode: ``canonical`` (:func:`mevlip.answers.canonicalize`, one form per task, as evaluation parses) or
            ``original`` (:func:`mevlip.answers.original_parse_answer` on the raw ``TaskType`` string).
    """
    task = item.task or route.task
    if mode == "original":  # the original's parser on the record's raw TaskType; the routed task without one
        return task, original_parse_answer(raw, item.task_type if item.task_type is not None else task)
    if mode != "canonical":
        raise ValueError(f"post-processing must be one of {', '.join(POSTPROCESSING)}, got {mode!r}")
    return task, (raw.strip() if task is None else canonicalize(task, raw, label_sep=label_separator(raw)))


# ----------------------------------------------------------------------------------------------- running
def run(
    the_plan: Plan,
    generate: Callable[[list[tuple[str, list[str]]], str | None], list[str]],
    routes: dict[int, Route],
    journal: Journal,
    loaded_adapters: Sequence[str],
    batch_size: int = 8,
    shard: tuple[int, int] = (1, 0),
    progress: bool = True,
    postprocessing: str = "canonical",
) -> dict:
    """Answer the plan's unfinished items of this shard, batch by batch, adapter by adapter.

    Args:
        generate: ``generate(batch of (question, image paths), adapter) -> raw answers`` (the model).
        shard: ``(num_shards, shard_index)``: this run answers items with ``index % num_shards == shard_index``.
        postprocessing: :data:`POSTPROCESSING` mode (:func:`postprocess`).

    Returns:
        Counters for the summary (answered now, resumed, errors, per adapter, seconds).
    """
    num_shards, shard_index = shard
    mine = [i for i in the_plan.items if i.index % num_shards == shard_index]
    todo = [i for i in mine if i.index not in journal.done]
    stats = {"records": len(mine), "resumed": len(mine) - len(todo), "answered": 0, "errors": 0}
    for item in [i for i in todo if i.error is not None]:
        journal.add({"i": item.index, "key": item.key, "answer": "", "task": item.task, "score": None,
                     "adapter": None, "raw": None, "error": item.error})  # never resumed: no digest needed
        stats["errors"] += 1
    groups: dict[str | None, list[Item]] = {}
    for item in (i for i in todo if i.error is None):
        adapter = resolve_adapter(routes[item.index].adapter, loaded_adapters)
        groups.setdefault(adapter, []).append(item)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(g) for g in groups.values()), desc="answering", unit="rec")
    start = time.perf_counter()
    for adapter in sorted(groups, key=lambda a: (a is None, a or "")):
        # records of one task and image count batch together: similar answer lengths, little padding (the general
        # adapter's batches would otherwise wait on the one 850-token chromosome answer among them)
        group = sorted(groups[adapter], key=lambda i: (routes[i.index].task or "", len(i.images), i.index))
        for b in range(0, len(group), batch_size):
            batch = group[b: b + batch_size]
            for item, raw, error in _generate_safely(generate, batch, adapter):
                route = routes[item.index]
                task, answer = (item.task or route.task, "") if error else postprocess(item, route, raw,
                                                                                        postprocessing)
                journal.add({"i": item.index, "key": item.key, "rd": item.digest, "answer": answer, "task": task,
                             "task_source": task_source(item, route), "routed_task": route.task,
                             "score": route.score, "adapter": adapter, "raw": raw, "error": error})
                stats["errors" if error else "answered"] += 1
            if bar is not None:
                bar.update(len(batch))
    if bar is not None:
        bar.close()
    stats["seconds"] = round(time.perf_counter() - start, 2)
    return stats


def _generate_safely(generate, batch: list[Item], adapter: str | None):
    """Generate a batch; if it fails (e.g. a corrupt image), redo it one by one so only the bad record fails."""
    try:
        raws = generate([(i.question, i.images) for i in batch], adapter)
        return [(i, r, None) for i, r in zip(batch, raws, strict=True)]
    except Exception as err:  # noqa: BLE001 - any failure of one record must not stop the run
        if len(batch) == 1:
            item = batch[0]
            return [(item, None, f"{item.path} record {item.record_index}: {type(err).__name__}: {err}")]
        return [out for item in batch for out in _generate_safely(generate, [item], adapter)]


# ----------------------------------------------------------------------------------------------- outputs
def write_outputs(the_plan: Plan, done: dict[int, dict], output: Path, shard: tuple[int, int] = (1, 0)) -> dict:
    """Write ``predictions.json`` (records unchanged except ``Answer``) and its ``.details.jsonl`` sidecar.

    Returns:
        Summary counts (records written, per adapter, per routed task, errors, missing).
    """
    num_shards, shard_index = shard
    predictions, details = [], []
    counts = {"per_adapter": Counter(), "per_task": Counter(), "errors": 0, "missing": 0}
    for item in the_plan.items:
        if item.index % num_shards != shard_index:
            continue
        record = the_plan.files[item.path][item.record_index]
        entry = done.get(item.index)
        if entry is None:
            counts["missing"] += 1
            entry = {"i": item.index, "key": item.key, "answer": "", "error": "not answered"}
        if isinstance(record, dict):
            record = {**record, "Answer": entry.get("answer", "")}
        predictions.append(record)
        details.append({**entry, "file": item.path, "record_index": item.record_index})
        counts["per_adapter"][str(entry.get("adapter"))] += 1
        counts["per_task"][str(entry.get("task"))] += 1
        counts["errors"] += bool(entry.get("error"))
    output.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write({output: lambda ascii: json.dumps(predictions, indent=2, ensure_ascii=ascii) + "\n",
                   details_path(output): lambda ascii: "".join(json.dumps(d, ensure_ascii=ascii) + "\n"
                                                               for d in details)})
    return {"records": len(predictions), "per_adapter": dict(counts["per_adapter"]),
            "per_task": dict(counts["per_task"]), "errors": counts["errors"], "missing": counts["missing"]}


def details_path(output: Path) -> Path:
    """The sidecar next to a predictions file: ``predictions.details.jsonl``."""
    return output.with_name(output.stem + ".details.jsonl")


def _atomic_write(files: dict[Path, Callable[[bool], str]]) -> None:
    """Write every file of a set, or none: each ``render(ensure_ascii=False)`` (the ASCII-escaped form when a record
    holds a lone surrogate, the same JSON once parsed) to a temporary file, then all renamed into place; a failure
    (a full disk) removes the temporaries and leaves the previous files whole."""
    temps = {path: path.with_name(path.name + ".tmp") for path in files}
    try:
        for path, render in files.items():
            with writing(temps[path]):
                try:
                    temps[path].write_text(render(False), encoding="utf-8")
                except UnicodeEncodeError:
                    temps[path].write_text(render(True), encoding="utf-8")
        for path, temp in temps.items():
            os.replace(temp, path)
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------- torchrun
@dataclass(frozen=True)
class Ranks:
    """This process's place in a ``torchrun`` launch; ``world_size`` 1 is a plain, single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """Launched by torchrun with more than one process."""
        return self.world_size > 1


#: How long a rank waits for the others at a barrier: they finish their shards at different times, and the
#: default (30 min) is shorter than an 8B run's shard.
DIST_TIMEOUT_S = 24 * 3600


def init_ranks(device: str) -> Ranks:
    """Join torch.distributed when ``torchrun`` started this process (``WORLD_SIZE`` > 1), else a world of one.

    The backend is gloo for a CPU run and nccl on CUDA (each rank on ``cuda:<LOCAL_RANK>``).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend, timeout=timedelta(seconds=DIST_TIMEOUT_S))
    return Ranks(dist.get_rank(), dist.get_world_size(), local_rank)


def barrier(ranks: Ranks) -> None:
    """Wait for every rank (nothing to wait for in a single-process run)."""
    if ranks.distributed:
        import torch.distributed as dist

        dist.barrier()


def gather(ranks: Ranks, value: object) -> list[object]:
    """Every rank's ``value``, in rank order (``[value]`` in a single-process run)."""
    if not ranks.distributed:
        return [value]
    import torch.distributed as dist

    values: list[object] = [None] * ranks.world_size
    dist.all_gather_object(values, value)
    return values


def close_ranks(ranks: Ranks) -> None:
    """Leave the process group."""
    if ranks.distributed:
        import torch.distributed as dist

        dist.destroy_process_group()


def rank_output(output: Path, rank: int) -> Path:
    """Where one torchrun rank writes its shard (its own journal and lock): ``<dir>/.ranks/rank-<r>/<name>``."""
    return output.parent / ".ranks" / f"rank-{rank}" / output.name


def merge_shards(the_plan: Plan, shard_outputs: Sequence[str | os.PathLike], output: Path) -> dict:
    """Join shard runs (their ``.details.jsonl`` sidecars) into one ``predictions.json``, checked for completeness.

    The shards must have run under one configuration: their journals' fingerprints (:func:`run_fingerprint`) must
    agree, except for the base model's path when its files are the same (shards run on different machines).

    Raises:
        ValueError: an item is answered by no shard or by two shards, a shard holds an unknown record, or the
            shards ran under different configurations (naming what differs).
    """
    check_same_configuration([journal_path(Path(o)) for o in shard_outputs])
    done: dict[int, dict] = {}
    for shard in shard_outputs:
        sidecar = details_path(Path(shard))
        for line_no, line in enumerate(sidecar.read_text(encoding="utf-8").splitlines(), 1):
            entry = json.loads(line)
            if not isinstance(entry, dict) or not isinstance(entry.get("i"), int) or "key" not in entry:
                raise ValueError(f"{sidecar} line {line_no}: not a details entry (needs 'i' and 'key')")
            i = entry["i"]
            if not 0 <= i < len(the_plan.items) or the_plan.items[i].key != entry["key"]:
                raise ValueError(f"{sidecar} line {line_no}: record {entry['key']!r} is not in the inputs")
            if i in done:
                raise ValueError(f"{sidecar} line {line_no}: record {entry['key']!r} answered by two shards")
            done[i] = entry
    missing = [item.key for item in the_plan.items if item.index not in done]
    if missing:
        raise ValueError(f"{len(missing)} record(s) answered by no shard, e.g. {missing[:3]}")
    return write_outputs(the_plan, done, output)


def check_same_configuration(journals: Sequence[Path]) -> None:
    """Refuse to merge shards whose journals were written under different configurations.

    Raises:
        ValueError: a journal is missing, or one differs from the first (naming both and what changed).
    """
    first = read_fingerprint(journals[0]) if journals else {}
    for journal in journals[1:]:
        parts = read_fingerprint(journal)
        a, b = dict(first), dict(parts)
        if "base_model_files" in a and a.get("base_model_files") == b.get("base_model_files"):
            a.pop("base_model", None)  # the same files under another path
            b.pop("base_model", None)
        if _digest(a) != _digest(b):
            raise ValueError(f"{journal} ran under another configuration than {journals[0]}: "
                             f"{'; '.join(_changes(a, b))}; merge only shards of one run")
