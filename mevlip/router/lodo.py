"""Leave-one-dataset-out: how well the router routes the questions of a dataset it never saw.

Held-out validation questions of a template-generated dataset share their wordings with training, so a router
can score 100% on them and still misroute a new dataset's wording (the demo router sent 21% of real FLARE
hidden-validation questions to the wrong task). Here each fold trains a fresh router without one dataset
(:func:`mevlip.router.data.lodo_folds`: for a task no other dataset has, a share of its template families
instead) and routes that dataset's questions; the figures are per dataset and over all held-out questions.

A dataset of 5 questions flips between 60 % and 100 % with the router's seed alone, so a fold can be trained with
several router seeds (:func:`run_fold_seeds`, ``--lodo_seeds``): its accuracy is then the mean over the seeds
(every seed routes the same questions, so this is also the pooled share), with the range beside it, and the
targets are judged on the means. The folds themselves (which template families a one-dataset task holds out) are
drawn once, with the run's own seed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter

from mevlip.router.data import Fold
from mevlip.router.report import evaluate
from mevlip.router.routing import Router
from mevlip.router.train import RouterTrainConfig, train_router
from mevlip.tasks import TASKS

logger = logging.getLogger(__name__)

#: The issue's targets: overall accuracy, and the least accuracy any dataset may have.
TARGET_OVERALL, TARGET_PER_DATASET = 0.97, 0.90


def run_fold(cfg: RouterTrainConfig, fold: Fold, labels: list[str], threshold: float) -> dict:
    """Train on a fold's training rows, route its held-out rows; the fold's figures."""
    start = time.perf_counter()
    model, tokenizer, label_tokenizer, info = train_router(cfg, fold.train, labels, progress=False)
    router = Router(model, tokenizer, label_tokenizer, labels, {x: TASKS[x].adapter for x in labels}, threshold,
                    cfg.device, min(cfg.max_length, 512), label_texts=model.config.router_label_texts)
    ev = evaluate(router, fold.test, max_errors=10)
    return {"dataset": fold.dataset, "held_out": fold.held_out, "families": fold.families,
            "train_rows": len(fold.train), "n": ev["n"], "correct": ev["n"] - ev["errors"],
            "accuracy": ev["accuracy"], "below_threshold": ev["below_threshold"],
            "predicted": {k: c["predicted"] for k, c in ev["per_class"].items() if c["predicted"]},
            "error_rows": ev["error_rows"], "steps": info["steps"],
            "seconds": round(time.perf_counter() - start, 1)}


def run_fold_seeds(cfg: RouterTrainConfig, fold: Fold, labels: list[str], threshold: float,
                   seeds: list[int]) -> dict:
    """:func:`run_fold` once per router seed, merged: ``n`` and ``correct`` summed over the seeds (so ``accuracy`` is
    the mean over them), ``questions`` the held-out questions, ``per_seed`` each seed's figures and the range as
    ``accuracy_min`` / ``accuracy_max``. With one seed the figures are :func:`run_fold`'s.

    Raises:
        ValueError: no seed, or a seed given twice.
    """
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--lodo_seeds needs distinct seeds, got {seeds}")
    runs = [run_fold(dataclasses.replace(cfg, seed=seed), fold, labels, threshold) for seed in seeds]
    first = runs[0]
    predicted: Counter = Counter()
    for r in runs:
        predicted.update(r["predicted"])
    n, correct = sum(r["n"] for r in runs), sum(r["correct"] for r in runs)
    accuracies = [r["accuracy"] for r in runs if r["accuracy"] is not None]
    return {"dataset": fold.dataset, "held_out": fold.held_out, "families": fold.families,
            "train_rows": first["train_rows"], "questions": first["n"], "seeds": list(seeds), "n": n,
            "correct": correct, "accuracy": correct / n if n else None,
            "accuracy_min": min(accuracies) if accuracies else None,
            "accuracy_max": max(accuracies) if accuracies else None,
            "below_threshold": sum(r["below_threshold"] for r in runs), "predicted": dict(predicted),
            "error_rows": [{**e, "seed": seed} for seed, r in zip(seeds, runs, strict=True) for e in r["error_rows"]],
            "per_seed": [{"seed": seed, "correct": r["correct"], "accuracy": r["accuracy"], "seconds": r["seconds"]}
                         for seed, r in zip(seeds, runs, strict=True)],
            "steps": first["steps"], "seconds": round(sum(r["seconds"] for r in runs), 1)}


def summarize_lodo(folds: list[dict]) -> dict:
    """Overall accuracy (all held-out questions pooled, over every seed), the weakest dataset (by its mean over the
    seeds), and whether the targets are met (on those means)."""
    n = sum(f["n"] for f in folds)
    correct = sum(f["correct"] for f in folds)
    scored = [f for f in folds if f["n"]]
    worst = min(scored, key=lambda f: f["accuracy"]) if scored else None
    overall = correct / n if n else None
    return {"n": n, "accuracy": overall,
            "mean_dataset_accuracy": sum(f["accuracy"] for f in scored) / len(scored) if scored else None,
            "worst_dataset": worst["dataset"] if worst else None,
            "worst_accuracy": worst["accuracy"] if worst else None,
            "below_target": [f["dataset"] for f in scored if f["accuracy"] < TARGET_PER_DATASET],
            "targets": {"overall": TARGET_OVERALL, "per_dataset": TARGET_PER_DATASET},
            "meets_targets": bool(scored) and overall >= TARGET_OVERALL
            and all(f["accuracy"] >= TARGET_PER_DATASET for f in scored),
            "seeds": folds[0].get("seeds", []) if folds else [],
            "seconds": round(sum(f["seconds"] for f in folds), 1), "folds": folds}


def leave_one_dataset_out(cfg: RouterTrainConfig, folds: list[Fold], labels: list[str], threshold: float,
                          seeds: list[int] | None = None) -> dict:
    """Run every fold (same settings as the router itself; once per seed of ``seeds``, default the run's own seed),
    logging each, and summarise (:func:`summarize_lodo`)."""
    seeds = seeds or [cfg.seed]
    results = []
    for i, fold in enumerate(folds):
        result = run_fold_seeds(cfg, fold, labels, threshold, seeds)
        results.append(result)
        logger.info("leave-one-dataset-out %d/%d %s: %d/%d (%.1f%%; seeds %s), %s, %.0f s", i + 1, len(folds),
                    fold.dataset, result["correct"], result["n"], 100 * (result["accuracy"] or 0),
                    " ".join(map(str, seeds)), fold.held_out, result["seconds"])
    return summarize_lodo(results)
