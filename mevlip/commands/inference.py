"""ME-VLIP inference: answer every FLARE question and write ``predictions.json`` in the challenge format.

    cd docker_internvl && python inference.py --base_dataset_path <test dataset> --output_dir <out> \\
        --output_filename predictions.json --max_new_tokens 512 --device cuda:0

Model locations default to the paper's base model and to environment variables the container sets
(``MEVLIP_BASE_MODEL``, ``MEVLIP_ADAPTERS_DIR``, ``MEVLIP_ROUTER_DIR``). See ``mevlip/inference/run.py`` for the flow.

Several processes, under an existing launcher (gloo on CPU, nccl on GPU, each rank on ``cuda:<LOCAL_RANK>``)::

    torchrun --nproc_per_node 4 inference.py --base_dataset_path <data> --output_dir <out> --device cuda

Each rank answers the records ``index % world_size == rank`` into ``<out>/.ranks/rank-<r>/`` (its own journal and
lock, so each resumes on its own); after all have finished, rank 0 writes the one merged ``<out>/predictions.json``.

Shards launched by hand (``--num_shards N --shard_index i``, one folder or several) each write
``predictions.shard-<i>-of-<N>.json`` with its own journal and lock; ``merge_predictions.py`` joins them.

Inputs: every question file at any depth under ``--base_dataset_path`` (flat, ``<dataset>/``,
``<Category>/<dataset>/``, ``<split>/<Category>/<dataset>/``, deeper), as the original walked it; a record needs only
``ImageName`` and ``Question``. JSON files that are not question lists are skipped and named in the summary.

A rerun into the same output resumes its journal only when the inputs and every setting that changes an answer
are the same (see ``--overwrite``); a second run of the same output while the first is alive is refused. SIGTERM
(``docker stop``) ends the run like Ctrl-C: what is answered stays in the journal for the rerun.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import time
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
from mevlip.flare import add_zip_limit_args, zip_limits_from_args
from mevlip.inference.run import (
    ROUTINGS,
    Journal,
    OutputLock,
    ResumeError,
    barrier,
    close_ranks,
    gather,
    init_ranks,
    journal_path,
    merge_shards,
    plan,
    rank_output,
    route_items,
    run,
    run_fingerprint,
    shard_output,
    write_outputs,
)
from mevlip.presets import DEFAULT_PRESET, PRESETS, get_preset

logger = logging.getLogger("inference")
DEFAULT_BASE_MODEL = "OpenGVLab/InternVL3-8B-hf"


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (the original README's flags first)."""
    p = make_parser(__doc__)
    p.add_argument("--base_dataset_path", required=True,
                   help="folder holding the question files (*.json lists of records) at any depth, their images "
                        "relative to each file's folder")
    p.add_argument("--output_dir", required=True, help="where predictions.json and its sidecars go")
    p.add_argument("--output_filename", default="predictions.json",
                   help="name of the predictions file in --output_dir; its sidecars share its stem")
    p.add_argument("--max_new_tokens", type=POSITIVE_INT, default=512, help="tokens generated per answer at most")
    p.add_argument("--device", default="auto",
                   help="auto (the first CUDA GPU; without one it stops and says so), cuda, cuda:N or cpu")
    p.add_argument("--base_model", default=os.environ.get("MEVLIP_BASE_MODEL", DEFAULT_BASE_MODEL),
                   help="hub id or local folder of the base model (default: env MEVLIP_BASE_MODEL, else "
                        f"{DEFAULT_BASE_MODEL}; here %(default)s)")
    p.add_argument("--adapters_dir", default=os.environ.get("MEVLIP_ADAPTERS_DIR"),
                   help="LoRA adapters: ours (general/, classification/, ...) or the authors' release as downloaded "
                        "(internvl-all/lora/sft/ = general, classification/, ...) (default: env MEVLIP_ADAPTERS_DIR, "
                        "here %(default)s; none: the base model answers)")
    p.add_argument("--router_dir", default=os.environ.get("MEVLIP_ROUTER_DIR"),
                   help="the task classifier: ours (train_task_classifier.py) or a plain GLiClass folder such as "
                        "the authors' release (default: env MEVLIP_ROUTER_DIR, here %(default)s)")
    p.add_argument("--routing", default="router", choices=ROUTINGS,
                   help="router: ME-VLIP's task classifier; record: the record's own TaskType (oracle ablation); "
                        "general: the general adapter only (the paper's 'without TC')")
    p.add_argument("--threshold", type=PROBABILITY, default=None,
                   help="router confidence below which the general adapter answers (default: the router's, 0.3)")
    p.add_argument("--router_scoring", default="softmax", choices=["softmax", "sigmoid"],
                   help="router confidence: softmax over the seven labels (the original's single-label pipeline) "
                        "or a sigmoid per label (gliclass multi-label)")
    p.add_argument("--strict", action="store_true",
                   help="refuse to run when an adapter the routing can use is missing (default: it falls back to "
                        "the general adapter, or to the base model, as printed at start)")
    p.add_argument("--batch_size", type=POSITIVE_INT, default=8,
                   help="questions per generation batch (within one adapter)")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                   help="what the model is fed (docs/fidelity.md): " + "; ".join(
                       f"{name}: {preset.summary}" for name, preset in PRESETS.items())
                   + ". Use the preset the adapters were trained with (the released ones: paper or original)")
    p.add_argument("--multi_image", default=None, choices=["keep", "first"],
                   help="override the preset: keep every image of a record, or the first only (default: the "
                        "preset's)")
    p.add_argument("--limit", type=POSITIVE_INT, default=None,
                   help="answer only the first N records of each question file, for a quick smoke run of a real "
                        "model; predictions.json then holds just those (default: every record)")
    p.add_argument("--splits", nargs="*", default=None,
                   help="split folders directly under --base_dataset_path to answer (default: everything but "
                        "training/)")
    p.add_argument("--quantization", default="auto", choices=["auto", "4bit", "none"],
                   help="auto: 4-bit nf4 on CUDA (as the paper), none (float32) on CPU")
    p.add_argument("--crop_to_patches", action="store_const", const=True, default=None,
                   help="override the preset: tile each image (up to 12 tiles + a thumbnail); only if the recipes did "
                        "(default: the preset's)")
    add_option(p, "--no_crop_to_patches", aliases=("--no-crop_to_patches",), dest="crop_to_patches",
               action="store_const", const=False, help="override the preset: one tile per image (default: the "
                                                       "preset's)")
    p.add_argument("--system", default=None,
                   help="override the preset's system prompt; must equal the recipes' default_system "
                        "(default: the preset's)")
    p.add_argument("--num_shards", type=POSITIVE_INT, default=1,
                   help="split the work over N runs launched by hand: shard i writes <stem>.shard-<i>-of-<N>.json "
                        "(own journal and lock, so shards may share --output_dir); merge with merge_predictions.py. "
                        "Under torchrun the ranks split it themselves")
    p.add_argument("--shard_index", type=NON_NEGATIVE_INT, default=0,
                   help="which of the --num_shards parts this run answers")
    p.add_argument("--overwrite", action="store_true",
                   help="ignore a previous run's journal and start afresh. Without it a rerun resumes the journal "
                        "only if the inputs and everything that changes an answer are unchanged (base model, preset, "
                        "routing, threshold, router scoring, generation settings, and the base model's, adapters' "
                        "and router's files: each file up to 256 MiB hashed whole, a larger one (a base-model "
                        "shard) by its size and first and last 4 MiB, so an edit inside such a file that keeps its "
                        "size is not seen: use --overwrite then); otherwise it stops naming what changed. Within "
                        "a resumed journal, a record whose question, image names, TaskType or image bytes changed "
                        "is answered again (counted as changed_since_journal in the summary)")
    p.add_argument("--images_dir", default=None,
                   help="where image zips are extracted when the input folder cannot be written (a read-only "
                        "mount; default: <output_dir>/.images)")
    add_zip_limit_args(p)
    add_common_args(p, progress=True)
    return p


def check_adapters(args):
    """Find the adapters, log which adapter answers each task (and what falls back, and why); ``--strict`` refuses gaps.

    Returns:
        The :class:`mevlip.inference.layout.AdapterLayout` found, or ``None`` without ``--adapters_dir``.
    """
    from mevlip.inference.layout import AdapterLayoutError, describe, find_adapters, needed_adapters

    try:
        layout = find_adapters(args.adapters_dir) if args.adapters_dir else None
    except AdapterLayoutError as err:
        raise UserError(f"--adapters_dir: {err}") from None
    for line in describe(layout, args.routing):
        logger.info(line)
    needed = needed_adapters(args.routing)
    missing = list(needed) if layout is None else layout.missing(needed)
    if args.strict and missing:
        why = "; ".join(layout.absent.get(n, "not found") for n in missing) if layout else "no --adapters_dir"
        raise UserError(f"--strict: adapter(s) {', '.join(missing)} missing ({why})")
    return layout


def make_generate(args):
    """The generation step, the one interface a serving engine would implement.

    Returns:
        ``(generate, adapters)``: ``generate(batch of (question, image paths), adapter) -> raw answers`` and the
        adapter names it can switch to. Only the transformers + peft engine (:class:`mevlip.inference.vlm.VLM`)
        exists: an engine is added when it can be tested on the hardware it needs.
    """
    from mevlip.inference.vlm import VLM, VLMConfig

    vlm = VLM(VLMConfig(args.base_model, args.adapters_dir, args.device, args.quantization, args.preset,
                        args.system, args.crop_to_patches))

    def generate(batch, adapter):
        vlm.use(adapter)
        return vlm.generate(batch, args.max_new_tokens)

    return generate, vlm.adapters


def _stop_on_sigterm() -> None:
    """Let SIGTERM (``docker stop``, a scheduler's kill) end the run as Ctrl-C does: ``finally`` blocks run, the
    journal keeps every answer already written, and the exit code is 143."""
    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def without_task_type(the_plan, routing: str) -> dict:
    """Summary counts of answerable records without a known ``TaskType``, and what answered them."""
    count = sum(1 for i in the_plan.items if i.error is None and i.task is None)
    if not count:
        return {"records_without_task_type": 0}
    how = {"router": "routed and post-processed by the router's task",
           "record": "answered by the general adapter (--routing record has no task to route them by)",
           "general": "answered by the general adapter, output kept as generated (no task to parse it by)"}[routing]
    logger.info("%d record(s) without a known TaskType: %s", count, how)
    return {"records_without_task_type": count, "records_without_task_type_handling": how}


def main(argv: list[str] | None = None) -> dict:
    """Run inference; returns the summary that is also written to ``<output stem>.summary.json``."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    _stop_on_sigterm()
    from mevlip.device import DeviceError, resolve_device

    try:
        args.device = resolve_device(args.device)
    except DeviceError as err:
        raise UserError(str(err)) from None
    if not 0 <= args.shard_index < args.num_shards:
        raise UserError(f"--shard_index must be in [0, {args.num_shards}), got {args.shard_index}")
    preset = get_preset(args.preset)
    multi_image = args.multi_image or preset.inference_images
    if args.routing == "router" and not args.router_dir:
        raise UserError("--routing router needs --router_dir (or MEVLIP_ROUTER_DIR); or use --routing record/general")
    ranks = init_ranks(args.device)
    final = Path(args.output_dir) / args.output_filename
    folder_lock = None
    if ranks.distributed:
        if args.num_shards != 1:
            raise UserError("under torchrun the ranks are the shards; drop --num_shards/--shard_index")
        if args.device.startswith("cuda"):
            args.device = f"cuda:{ranks.local_rank}"
        shard, output = (ranks.world_size, ranks.rank), rank_output(final, ranks.rank)
        logger.info("rank %d of %d: answering records i %% %d == %d into %s", ranks.rank, ranks.world_size,
                    ranks.world_size, ranks.rank, output.parent)
    else:
        shard = (args.num_shards, args.shard_index)
        output = shard_output(final, *shard)
    layout = check_adapters(args)
    start = time.perf_counter()
    try:  # a user error (no dataset, a folder in use, a journal of another configuration): one line, no traceback
        if ranks.distributed and ranks.rank == 0:  # the merged output; each rank locks its own journal below
            folder_lock = OutputLock(journal_path(final))
        if ranks.rank != 0:
            barrier(ranks)  # rank 0 plans first and extracts the image zips once; the others then find them
        scratch = Path(args.images_dir) if args.images_dir else Path(args.output_dir) / ".images"
        the_plan = plan(args.base_dataset_path, args.splits, multi_image, scratch=scratch,
                        limits=zip_limits_from_args(args), exclude=[args.output_dir], limit=args.limit)
        if ranks.rank == 0:
            barrier(ranks)
        if not the_plan.items:
            looked = f"; skipped: {'; '.join(f'{k}: {v}' for k, v in list(the_plan.skipped.items())[:3])}" \
                if the_plan.skipped else ""
            raise UserError(f"no questions to answer under {args.base_dataset_path} (no JSON list of records with "
                            f"ImageName and Question at any depth{looked})")
        journal = Journal(journal_path(output), run_fingerprint(the_plan, vars(args)), args.overwrite,
                          digests={i.index: i.digest for i in the_plan.items})
        if journal.changed:
            logger.info("%d answer(s) in %s are answered again: their record (question, images, TaskType) or "
                        "image bytes changed since", journal.changed, journal.path)
    except (FileNotFoundError, ResumeError, ValueError) as err:
        raise UserError(str(err)) from err
    router = None
    if args.routing == "router":
        from mevlip.router import Router, RouterError

        try:
            router = Router.from_pretrained(args.router_dir, device="cpu" if args.device == "cpu" else args.device,
                                            scoring=args.router_scoring)
        except RouterError as err:
            raise UserError(f"--router_dir: {err}") from None
        if args.threshold is not None:
            router.threshold = args.threshold
        logger.info("router %s: questions whose top %s score is below %.2f go to the general adapter",
                    args.router_dir, router.scoring_name, router.threshold)
    pending = [i for i in the_plan.items if i.index % shard[0] == shard[1] and i.index not in journal.done]
    routes = route_items(pending, args.routing, router)
    loaded: list[str] = []
    stats = {"records": 0, "resumed": len(journal.done), "answered": 0, "errors": 0, "seconds": 0.0}
    if pending:
        try:
            generate, loaded = make_generate(args)
        except (OSError, ValueError) as err:  # no such model folder, not a model, offline without a cached hub id
            journal.close()
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(f"cannot load the model (--base_model {args.base_model}, --adapters_dir "
                            f"{args.adapters_dir}): {first}") from None
        stats = run(the_plan, generate, routes, journal, loaded, args.batch_size, shard,
                    progress=not args.no_progress, postprocessing=preset.postprocess)
    journal.close()
    stats["changed"] = journal.changed
    written = write_outputs(the_plan, journal.done, output, shard)
    if ranks.distributed:
        # every rank's shard is on disk before rank 0 merges them; the counters travel with the gather
        all_stats = gather(ranks, {**stats, "adapters_loaded": loaded})
        if ranks.rank == 0:
            written = merge_shards(the_plan, [rank_output(final, r) for r in range(ranks.world_size)], final)
            stats = {k: sum(s[k] for s in all_stats) for k in ("answered", "resumed", "changed")}
            stats["seconds"] = max(s["seconds"] for s in all_stats)
            loaded = sorted({a for s in all_stats for a in s["adapters_loaded"]})
            output = final
        close_ranks(ranks)
    wall = time.perf_counter() - start
    summary = {"output": str(output), "preset": args.preset, "routing": args.routing, "base_model": args.base_model,
               "adapters_dir": args.adapters_dir, "adapters_loaded": loaded,
               "adapter_folders": {n: str(f) for n, f in layout.folders.items()} if layout else {},
               "router_dir": args.router_dir, "router_scoring": args.router_scoring if router else None,
               "shard": list(shard), "world_size": ranks.world_size, **written, "answered_now": stats["answered"],
               "resumed": stats["resumed"], "changed_since_journal": stats["changed"],
               "generation_seconds": stats["seconds"], "wall_seconds": round(wall, 2),
               "records_per_second": round(stats["answered"] / stats["seconds"], 3) if stats["seconds"] else None,
               "question_files": len(the_plan.files), **without_task_type(the_plan, args.routing),
               "file_errors": the_plan.file_errors, "skipped_inputs": the_plan.skipped}
    if ranks.distributed and ranks.rank == 0:
        summary["shard"] = None  # the merged output holds every record
    output.with_name(output.stem + ".summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if folder_lock is not None:
        folder_lock.release()
    logger.info("wrote %s: %d records (%d answered now, %d resumed, %d errors) in %.1f s; per adapter: %s",
                output, written["records"], stats["answered"], stats["resumed"], written["errors"], wall,
                written["per_adapter"])
    return summary


if __name__ == "__main__":
    run_cli(main)
