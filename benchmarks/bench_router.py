"""Routing speed: N questions in batched passes (mevlip.router.Router) vs one GLiClass pipeline per question.

The original built a ``ZeroShotClassificationPipeline`` for every question and classified it alone (tqdm bar
and all); :class:`mevlip.router.Router` classifies all questions in batches and, for the bi-encoder, embeds the
7 labels once. Both run on the same model in the same process; the script prints both timings, the ratio, and
checks that both ways pick the same task type for the questions the baseline timed.

    python benchmarks/bench_router.py                                  # a fresh MiniLM router, 2,000 questions
    python benchmarks/bench_router.py --router_dir task_classifier/model --architecture both

Figures are written to ``benchmarks/results/bench_router.json`` (``--output_file`` for another file).
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

from mevlip.cli import add_common_args, add_option, make_parser, run_cli, setup_logging
from mevlip.router import Router, save_router
from mevlip.router.data import collect_questions
from mevlip.router.train import RouterTrainConfig, build_model
from mevlip.synth import generate
from mevlip.tasks import TASK_NAMES

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/results_file.py, however this is run
from results_file import write_result  # noqa: E402

logger = logging.getLogger("bench_router")


def questions(n: int, seed: int = 0) -> list[str]:
    """``n`` FLARE-style questions from a generated mini-FLARE (repeated when it has fewer unique texts)."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, scale="small", seed=seed)
        texts = list(collect_questions(tmp, ["training", "validation-public", "validation-hidden", "testing"]))
    return [texts[i % len(texts)] for i in range(n)]


def fresh_router(architecture: str, out: Path) -> Path:
    """An untrained router on the embedded encoder (same compute as a trained one)."""
    model, tok, label_tok = build_model(RouterTrainConfig(architecture=architecture))
    return save_router(model, tok, label_tok, out, list(TASK_NAMES))


def original_way(router: Router, texts: list[str], threshold: float) -> tuple[float, list[str]]:
    """One ``ZeroShotClassificationPipeline`` built and called per question, as the original inference did."""
    from gliclass import ZeroShotClassificationPipeline

    task_of = dict(zip(router.label_texts, router.labels, strict=True))  # the texts it scores -> task names
    top = []
    start = time.perf_counter()
    for text in texts:
        pipe = ZeroShotClassificationPipeline(router.model, router.tokenizer, classification_type="multi-label",
                                              device="cpu")
        with contextlib.redirect_stderr(io.StringIO()):  # its per-call tqdm bar would flood the terminal
            result = pipe(text, router.label_texts, threshold=threshold)[0]
        top.append(task_of[max(result, key=lambda r: r["score"])["label"]] if result else "")
    return time.perf_counter() - start, top


def bench(router_dir: Path, texts: list[str], baseline_n: int, batch_size: int) -> dict:
    """Time both ways on one router; returns per-question milliseconds, the ratio and the agreement."""
    router = Router.from_pretrained(router_dir)
    router.classify(texts[:batch_size], batch_size=batch_size)  # warm-up (first-call allocations)
    start = time.perf_counter()
    batched = router.classify(texts, batch_size=batch_size)
    fast = time.perf_counter() - start
    # threshold 0 keeps every label, so the top label is comparable with the router's arg-max
    slow, top = original_way(router, texts[:baseline_n], threshold=0.0)
    agree = sum(a == b for a, (b, _) in zip(top, batched, strict=False))
    res = {"architecture": router.model.config.architecture_type, "questions": len(texts),
           "batched_s": round(fast, 2), "batched_ms_per_q": round(1000 * fast / len(texts), 2),
           "original_questions": baseline_n, "original_s": round(slow, 2),
           "original_ms_per_q": round(1000 * slow / baseline_n, 2), "same_top_label": f"{agree}/{baseline_n}"}
    res["speedup"] = round(res["original_ms_per_q"] / res["batched_ms_per_q"], 1)
    return res


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = make_parser(__doc__)
    parser.add_argument("--router_dir", help="a trained router (default: a fresh one per --architecture)")
    parser.add_argument("--architecture", choices=("bi-encoder", "uni-encoder", "both"), default="bi-encoder",
                        help="fresh routers to build when --router_dir is not given")
    parser.add_argument("-n", "--questions", type=int, default=2000, help="questions routed in batched passes")
    parser.add_argument("--baseline_n", type=int, default=2000,
                        help="questions routed the original way (fewer saves time; timings are per question)")
    parser.add_argument("--batch_size", type=int, default=64, help="router batch size")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    add_option(parser, "--output_file", aliases=("--json",),
               help="results file (default: benchmarks/results/bench_router.json)")
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark and print one line per architecture."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    texts = questions(args.questions)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.router_dir:
            dirs = [Path(args.router_dir)]
        else:
            archs = ("bi-encoder", "uni-encoder") if args.architecture == "both" else (args.architecture,)
            dirs = [fresh_router(a, Path(tmp) / a) for a in archs]
        for router_dir in dirs:
            res = bench(router_dir, texts, min(args.baseline_n, len(texts)), args.batch_size)
            results.append(res)
            print(f"{res['architecture']}: batched {res['batched_ms_per_q']} ms/question ({res['questions']} in "
                  f"{res['batched_s']} s) | original way {res['original_ms_per_q']} ms/question "
                  f"({res['original_questions']} in {res['original_s']} s) | speed-up {res['speedup']}x | "
                  f"same top label {res['same_top_label']} | torch threads {torch.get_num_threads()}", flush=True)
    # keyed by architecture, the names the READMEs quote ("bi-encoder.speedup")
    write_result("bench_router", {r["architecture"]: r for r in results}, argv, args.output_file)
    return results


if __name__ == "__main__":
    run_cli(lambda argv: 0 if main(argv) else 1)
