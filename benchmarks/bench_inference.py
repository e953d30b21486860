"""Inference speed: our routed, batched run vs the original's loop, on the same stand-in, adapters, router and records.

The original ``inference.py`` answered one record at a time: it built a GLiClass ``ZeroShotClassificationPipeline``
for every question, switched to the routed adapter and generated with batch size 1. Ours routes every question in
one batched pass, groups records by adapter (``set_adapter`` once per group) and generates in batches with left
padding (``mevlip.inference.run``). Both run here in one process on the same loaded model; the script prints
records/s of each, the ratio, and checks that both give the same adapter and the same answer for every record.

Uses the artefacts of ``make demo`` (trained stand-in, adapters, router, mini-FLARE validation records):

    python benchmarks/bench_inference.py                        # 200 records from demo_output/
    #   figures -> benchmarks/results/bench_inference.json (--output_file for another file)
    python benchmarks/bench_inference.py --demo_output DIR -n 100 --batch_size 32
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

from mevlip.answers import canonicalize
from mevlip.cli import UserError, add_common_args, add_option, make_parser, run_cli, setup_logging
from mevlip.inference.run import Journal, label_separator, plan, resolve_adapter, route_items, run
from mevlip.inference.vlm import VLM, VLMConfig
from mevlip.router import Router
from mevlip.tasks import GENERAL_ADAPTER

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/results_file.py, however this is run
from results_file import write_result  # noqa: E402

logger = logging.getLogger("bench_inference")
REPO = Path(__file__).resolve().parents[1]


def sample(items: list, n: int) -> list:
    """``n`` answerable items spread evenly over the discovery order (every dataset and task represented)."""
    ok = [i for i in items if i.error is None]
    step = max(1, len(ok) // n)
    return ok[::step][:n]


def original_way(vlm: VLM, router: Router, items: list, max_new_tokens: int) -> tuple[float, dict[int, tuple]]:
    """One record at a time: a GLiClass pipeline built per question, the routed adapter, generation at batch 1."""
    from gliclass import ZeroShotClassificationPipeline

    task_of = dict(zip(router.label_texts, router.labels, strict=True))  # the texts it scores -> task names
    out = {}
    start = time.perf_counter()
    for item in items:
        pipe = ZeroShotClassificationPipeline(router.model, router.tokenizer, classification_type="multi-label",
                                              device="cpu")
        with contextlib.redirect_stderr(io.StringIO()):  # its per-call tqdm bar
            result = pipe(item.question, router.label_texts, threshold=0.0)[0]  # the texts it was trained on
        best = max(result, key=lambda r: r["score"])
        task, score = task_of[best["label"]], best["score"]
        wanted = router.adapters[task] if score >= router.threshold else GENERAL_ADAPTER
        adapter = resolve_adapter(wanted, vlm.adapters)
        vlm.use(adapter)
        raw = vlm.generate([(item.question, item.images)], max_new_tokens)[0]
        parsed_as = item.task or task  # the record's TaskType decides the parser, as in the original
        out[item.index] = (adapter, canonicalize(parsed_as, raw, label_sep=label_separator(raw)))
    return time.perf_counter() - start, out


def our_way(vlm: VLM, router: Router, the_plan, items: list, batch_size: int, max_new_tokens: int,
            workdir: Path) -> tuple[float, dict[int, tuple]]:
    """``mevlip.inference.run``: one batched routing pass, then batches grouped by adapter."""
    the_plan = type(the_plan)(files=the_plan.files, items=items)
    journal = Journal(workdir / "journal.jsonl", the_plan.fingerprint(), overwrite=True)

    def generate(batch, adapter):
        vlm.use(adapter)
        return vlm.generate(batch, max_new_tokens)

    start = time.perf_counter()
    routes = route_items(items, "router", router)
    run(the_plan, generate, routes, journal, vlm.adapters, batch_size=batch_size, progress=False)
    seconds = time.perf_counter() - start
    journal.close()
    return seconds, {i: (e["adapter"], e["answer"]) for i, e in journal.done.items()}


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = make_parser(__doc__)
    parser.add_argument("--demo_output", default=str(REPO / "demo_output"), help="a finished `make demo` folder")
    parser.add_argument("-n", "--records", type=int, default=200,
                        help="validation records answered both ways (spread evenly over the discovery order)")
    parser.add_argument("--batch_size", type=int, default=16, help="our generation batch size")
    parser.add_argument("--max_new_tokens", type=int, default=1024, help="tokens generated per answer at most")
    parser.add_argument("--quantization", default="4bit", choices=["4bit", "none"],
                        help="4bit: the base the QLoRA adapters were trained on (as the demo)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    add_option(parser, "--output_file", aliases=("--output",),
               default=str(REPO / "benchmarks" / "results" / "bench_inference.json"), help="results file")
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Time both ways on the demo's artefacts, check they agree, write and return the figures."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    torch.set_num_threads(args.threads)
    demo = Path(args.demo_output)
    needed = [demo / "standin" / "pretrained" / "config.json", demo / "adapters" / GENERAL_ADAPTER,
              demo / "router" / "router_config.json", demo / "mini_flare" / "mini_flare.json"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise UserError(f"missing demo artefacts ({', '.join(missing)}); run `make demo` first")
    with tempfile.TemporaryDirectory() as tmp:
        the_plan = plan(demo / "mini_flare", ["validation-public", "validation-hidden"], scratch=Path(tmp) / "img")
        items = sample(the_plan.items, args.records)
        vlm = VLM(VLMConfig(str(demo / "standin" / "pretrained"), str(demo / "adapters"), "cpu", args.quantization))
        router = Router.from_pretrained(demo / "router")
        vlm.use(GENERAL_ADAPTER)
        vlm.generate([(items[0].question, items[0].images)], 4)  # warm-up
        fast, ours = our_way(vlm, router, the_plan, items, args.batch_size, args.max_new_tokens, Path(tmp))
        slow, theirs = original_way(vlm, router, items, args.max_new_tokens)
    same = sum(ours[i.index] == theirs[i.index] for i in items)
    res = {"records": len(items), "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
           "quantization": args.quantization, "threads": args.threads,
           "original_s": round(slow, 2), "original_records_per_s": round(len(items) / slow, 3),
           "ours_s": round(fast, 2), "ours_records_per_s": round(len(items) / fast, 3),
           "speedup": round(slow / fast, 2), "same_adapter_and_answer": f"{same}/{len(items)}"}
    write_result("bench_inference", res, argv, args.output_file)
    print(f"original loop (batch 1, router pipeline per record): {res['original_records_per_s']:.2f} records/s "
          f"({slow:.1f} s)\nours (batched routing, grouped by adapter, batch {args.batch_size}): "
          f"{res['ours_records_per_s']:.2f} records/s ({fast:.1f} s)\nspeed-up {res['speedup']:.1f}x; "
          f"same adapter and answer for {res['same_adapter_and_answer']} records")
    if same != len(items):
        print("WARNING: the two ways disagree on some records", file=sys.stderr)
    return res


if __name__ == "__main__":
    run_cli(main)
