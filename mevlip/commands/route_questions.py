"""Route questions with a trained task router and write, per question, the task type, its score and the adapter.

    python task_classifier/route_questions.py --router_dir task_classifier/model \\
        --questions DATA_ROOT/validation-public --output_file routed.json

``--router_dir`` takes our router folder (``train_task_classifier.py``) or a plain GLiClass folder such as the authors'
release ``MaiAShaaban/flare-gliclass-small-v1.0``. Scores are a softmax over the labels by default, as the original
inference.py's single-label pipeline, and the 0.3 threshold applies to it (``--scoring sigmoid``: per-label sigmoid).

``--questions`` takes FLARE question files (JSON lists of records), folders (a FLARE root or a split folder,
walked with ``mevlip.flare.discover(..., gt="exclude")``), router sets (``{"text", "true_labels"}`` rows) or
JSON lists of strings. When the inputs carry their task type (``TaskType`` or ``true_labels``), accuracy and a
confusion table are printed, so a team can check routing on its own validation data.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from mevlip.cli import (
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    PROBABILITY,
    UserError,
    add_common_args,
    add_option,
    make_parser,
    run_cli,
    setup_logging,
)
from mevlip.flare import SPLITS, FlareDataError, discover, load_records
from mevlip.router.report import confusion_markdown, summarize
from mevlip.tasks import normalize_task_type

logger = logging.getLogger("route_questions")
#: ``mevlip.router.SCORINGS``; the router (torch, gliclass) is imported only to route, so that ``--help`` and a bad
#: input answer at once (tests/test_cli.py checks the two stay equal).
SCORINGS = ("softmax", "sigmoid")


def _split_root(path: Path) -> tuple[Path, list[str] | None]:
    """A FLARE root as is; a split folder (``.../validation-public``) as its parent and that one split."""
    if path.name in SPLITS:
        return path.parent, [path.name]
    return path, None


def read_questions(path: str | Path) -> list[dict]:
    """Question entries ``{source, index, question, task_type, image}`` from one input path.

    Raises:
        FlareDataError: an unreadable file, or a JSON list that is neither records, router rows nor strings.
    """
    path = Path(path)
    if path.is_dir():
        root, splits = _split_root(path)
        entries = []
        for qfile in discover(root, splits=splits, gt="exclude"):
            entries += _from_records(qfile.path, load_records(qfile))
        if not entries:
            raise FlareDataError(f"{path}: no FLARE question files found")
        return entries
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:  # missing, not JSON, not UTF-8, nested too deep
        raise FlareDataError(f"{path}: cannot read questions ({type(err).__name__}: {err})") from err
    if not isinstance(data, list) or not data:
        raise FlareDataError(f"{path}: expected a non-empty JSON list")
    if all(isinstance(x, str) for x in data):
        return [{"source": str(path), "index": i, "question": q, "task_type": None} for i, q in enumerate(data)]
    if all(isinstance(x, dict) and "Question" in x for x in data):
        return _from_records(path, load_records(path))
    if all(isinstance(x, dict) and "text" in x for x in data):
        return [{"source": str(path), "index": i, "question": x["text"],
                 "task_type": (x.get("true_labels") or [None])[0]} for i, x in enumerate(data)]
    raise FlareDataError(f"{path}: expected FLARE records, router rows or strings")


def _from_records(path, loaded) -> list[dict]:
    return [{"source": str(path), "index": i, "question": r["Question"], "task_type": r["TaskType"],
             "image": r["ImageName"]} for i, r in zip(loaded.indices, loaded.records, strict=True)]


def build_parser() -> argparse.ArgumentParser:
    """The CLI."""
    parser = make_parser(__doc__)
    parser.add_argument("--router_dir", required=True,
                        help="router folder written by train_task_classifier.py, or a plain GLiClass folder "
                             "(the authors' release)")
    parser.add_argument("--questions", nargs="+", required=True,
                        help="question files, FLARE roots/split folders, router sets or JSON lists of strings")
    add_option(parser, "--output_file", aliases=("--output",), default="routed.json",
               help="JSON list to write, one entry per question")
    parser.add_argument("--threshold", type=PROBABILITY, default=None,
                        help="override the router's routing threshold (default: the router's)")
    parser.add_argument("--scoring", default="softmax", choices=SCORINGS,
                        help="softmax over the labels (the original inference.py's single-label pipeline) "
                             "or a sigmoid per label (gliclass multi-label); the threshold applies to this score")
    parser.add_argument("--batch_size", type=POSITIVE_INT, default=64, help="questions per forward pass")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (the first GPU)")
    parser.add_argument("--threads", type=NON_NEGATIVE_INT, default=0, help="torch CPU threads (0: torch's default)")
    add_common_args(parser, progress=True)
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Route, write ``--output_file`` and print accuracy when task types are known; returns a summary."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    try:  # an unreadable or unknown questions file: one line naming it
        entries = [e for p in args.questions for e in read_questions(p)]
    except FlareDataError as err:
        raise UserError(str(err)) from None
    from mevlip.device import DeviceError, resolve_device
    from mevlip.router import Router, RouterError

    try:
        args.device = resolve_device(args.device)
    except DeviceError as err:
        raise UserError(str(err)) from None
    try:
        router = Router.from_pretrained(args.router_dir, device=args.device, threshold=args.threshold,
                                        scoring=args.scoring)
    except RouterError as err:
        raise UserError(str(err)) from None
    routes = router.route([e["question"] for e in entries], batch_size=args.batch_size,
                          progress=not args.no_progress)
    rows = []
    for e, r in zip(entries, routes, strict=True):
        row = {"source": e["source"], "index": e["index"], "Question": e["question"]}
        if e.get("image") is not None:
            row["ImageName"] = e["image"]
        true = normalize_task_type(e["task_type"]) if e["task_type"] else None
        row.update(TaskType=e["task_type"], true_task=true, task=r.task, score=round(r.score, 6), adapter=r.adapter,
                   scoring=router.scoring_name)
        rows.append(row)
    Path(args.output_file).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output_file).write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    fallback = sum(r.is_fallback for r in routes)
    empty = sum(r.task is None for r in routes)
    logger.info("routed %d questions -> %s (%d below threshold %.2f of the %s score, %d empty: general adapter)",
                len(rows), args.output_file, fallback - empty, router.threshold, router.scoring_name, empty)
    summary = {"n": len(rows), "below_threshold": fallback - empty, "empty": empty, "scoring": router.scoring_name,
               "output": args.output_file}
    known = [r for r in rows if r["true_task"]]
    if known:
        if any(r["true_task"] not in router.labels for r in known):
            logger.warning("some task types are not in the router's label set %s", router.labels)
        known = [r for r in known if r["true_task"] in router.labels and r["task"] is not None]
        stats = summarize(router.labels, [r["true_task"] for r in known], [r["task"] for r in known],
                          [r["score"] for r in known], router.threshold)
        print(f"\naccuracy {stats['accuracy']:.4f} on {stats['n']} questions with a task type "
              f"({stats['errors']} misrouted)\n")
        print(confusion_markdown(stats))
        summary["accuracy"] = stats["accuracy"]
        summary["confusion"] = stats["confusion"]
    return summary


if __name__ == "__main__":
    run_cli(main)
