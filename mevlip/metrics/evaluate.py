"""Score a predictions file against FLARE ground truth under both profiles: the library behind evaluation.py.

:func:`evaluate` runs the whole pipeline and returns the results dict (what ``metrics_*.json`` holds) and the
per-sample rows (the JSONL); :mod:`mevlip.metrics.report` writes them. Results are per task type (pooled over
datasets, as the organisers report) and per dataset, with sample counts and seeded bootstrap 95% intervals of each
primary metric (the same resamples for both profiles, so their intervals are paired).
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np

from mevlip.flare import VALIDATION_SPLITS
from mevlip.metrics import flare25_parsing as q25
from mevlip.metrics.profiles import DEFAULT_ERROR_CAP, PROFILES, STRICT_DIFFERENCES, score_sample
from mevlip.metrics.records import MatchResult, load_ground_truth, load_predictions, match_predictions
from mevlip.metrics.scores import (
    HIGHER_IS_BETTER,
    PRIMARY,
    aggregate,
    bootstrap_weights,
    build_columns,
    point_weights,
    quantile_ci,
    take,
)
from mevlip.tasks import TASK_NAMES

logger = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """What to score and how (the CLI's flags)."""

    base_dataset_path: str
    prediction_file: str
    splits: tuple[str, ...] = VALIDATION_SPLITS
    missing: str = field(default="wrong", metadata={"help": "missing prediction: 'wrong' (scored) or 'skip'"})
    primary: str = field(default="flare25", metadata={"help": "profile shown first and charted"})
    bootstrap: int = field(default=200, metadata={"help": "bootstrap replicates for 95% CIs (0: none)"})
    seed: int = 0
    error_cap: float = DEFAULT_ERROR_CAP
    green_model: str | None = None
    green_batch_size: int = 8
    green_max_length: int = 2048
    green_max_new_tokens: int | None = None

    def __post_init__(self):
        if self.missing not in ("wrong", "skip"):
            raise ValueError(f"--missing must be 'wrong' or 'skip', got {self.missing!r}")
        if self.primary not in PROFILES:
            raise ValueError(f"--primary must be one of {', '.join(PROFILES)}, got {self.primary!r}")
        if self.bootstrap < 0:
            raise ValueError(f"--bootstrap must be >= 0, got {self.bootstrap}")
        if not self.error_cap > 0:
            raise ValueError(f"--error_cap must be > 0, got {self.error_cap}")
        self.splits = tuple(self.splits)


def _number(value: float) -> float | None:
    """A metric value for the results: NaN (undefined) becomes None; inf stays inf (written as "Infinity")."""
    value = float(value)
    return None if math.isnan(value) else value


def _weights(m: int, config: EvalConfig, seed_parts: tuple[str, ...], cache: dict) -> np.ndarray:
    """Bootstrap weights of one slice, seeded by its name: both profiles resample the same rows (paired CIs)."""
    if seed_parts not in cache:
        rng = np.random.default_rng([config.seed, *(zlib.crc32(p.encode()) for p in seed_parts)])
        cache[seed_parts] = bootstrap_weights(m, config.bootstrap, rng)
    return cache[seed_parts]


def unparsable(value: dict) -> bool:
    """Whether a profile's parser read nothing from a prediction (``parsed`` is None or empty)."""
    parsed = value.get("parsed")
    return parsed is None or (isinstance(parsed, (str, list, tuple, dict, set)) and not parsed)


def _slice_result(task: str, profile: str, cols: dict, missing: np.ndarray, config: EvalConfig,
                  seed_parts: tuple[str, ...], cache: dict, unparsed: np.ndarray | None = None) -> dict:
    m = len(cols["scored"])
    metrics = {k: _number(v[0]) for k, v in aggregate(task, cols, point_weights(m), profile).items()}
    result = {"n": m, "n_scored": int(cols["scored"].sum()), "n_missing": int(missing.sum()),
              "n_unparsable": int(unparsed.sum()) if unparsed is not None else 0, "metrics": metrics}
    if task == "classification":
        result["n_classes"] = int(np.unique(cols["gt_code"][cols["scored"] & (cols["gt_code"] >= 0)]).size)
    if config.bootstrap and m:
        W = _weights(m, config, seed_parts, cache)
        values = aggregate(task, cols, W, profile, primary_only=True)[PRIMARY[task]]
        result["ci95"] = {PRIMARY[task]: quantile_ci(values)}
    return result


def _green_llm(samples, config: EvalConfig) -> dict[int, float]:
    """Real GREEN per report sample index (on the raw prediction text, as the PaliGemma evaluator)."""
    from mevlip.metrics.green_llm import GreenJudge

    index = [i for i, s in enumerate(samples) if s.task == "report_generation"]
    if not index:
        return {}
    judge = GreenJudge(config.green_model, batch_size=config.green_batch_size, max_length=config.green_max_length,
                       max_new_tokens=config.green_max_new_tokens)
    refs = [q25.as_text(samples[i].target) for i in index]
    hyps = [q25.as_text(samples[i].prediction) for i in index]
    return dict(zip(index, judge.score(refs, hyps, progress=True), strict=True))


def score_samples(match: MatchResult, config: EvalConfig) -> tuple[dict, list[dict]]:
    """Per-profile, per-task results and the per-sample rows, from matched samples."""
    samples = match.samples
    green = _green_llm(samples, config) if config.green_model else {}
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, sample in enumerate(samples):
        by_task[sample.task].append(i)
    rows = [{"key": s.key, "dataset": s.dataset, "split": s.split, "task": s.task, "status": s.status,
             "prediction": s.prediction, "target": s.target} for s in samples]
    profiles: dict[str, dict] = {profile: {"tasks": {}} for profile in PROFILES}
    for task in (t for t in TASK_NAMES if t in by_task):
        index = by_task[task]
        missing = np.array([samples[i].status == "missing" for i in index], bool)
        datasets = np.array([samples[i].dataset for i in index])
        weights: dict[tuple[str, ...], np.ndarray] = {}  # shared by the profiles, dropped after the task
        for profile in PROFILES:
            values = []
            for i in index:
                value = score_sample(profile, task, samples[i].prediction, samples[i].target, config.error_cap)
                if i in green:
                    value["green_llm"] = green[i]
                values.append(value)
                rows[i][profile] = value
            cols = build_columns(task, values)
            # answered but unreadable by this profile's parser (flare25 drops such counts; strict scores them 0)
            unparsed = ~missing & np.array([unparsable(v) for v in values], bool)
            result = _slice_result(task, profile, cols, missing, config, (task,), weights, unparsed)
            result["primary_metric"] = PRIMARY[task]
            result["datasets"] = {}
            for name in dict.fromkeys(datasets.tolist()):
                sel = datasets == name
                result["datasets"][name] = _slice_result(task, profile, take(cols, sel), missing[sel], config,
                                                         (task, name), weights, unparsed[sel])
            profiles[profile]["tasks"][task] = result
    return profiles, rows


def _primary_table(profiles: dict) -> dict:
    table = {}
    for task in TASK_NAMES:
        if task not in profiles["flare25"]["tasks"]:
            continue
        metric = PRIMARY[task]
        table[task] = {"metric": metric, "higher_is_better": HIGHER_IS_BETTER[metric],
                       "n": profiles["flare25"]["tasks"][task]["n"],
                       "n_missing": profiles["flare25"]["tasks"][task]["n_missing"]}
        for profile in PROFILES:
            entry = profiles[profile]["tasks"][task]
            table[task][profile] = entry["metrics"].get(metric)
            table[task][f"{profile}_ci95"] = entry.get("ci95", {}).get(metric)
            table[task][f"{profile}_n_scored"] = entry["n_scored"]
            table[task][f"{profile}_n_unparsable"] = entry["n_unparsable"]
    return table


def evaluate(config: EvalConfig, provenance: dict | None = None) -> tuple[dict, list[dict]]:
    """Load, match, score and aggregate.

    Returns:
        ``(results, rows)``: the metrics document and one row per scored sample.

    Raises:
        PredictionFileError: the predictions file is not a JSON list (message names the file).
        FileNotFoundError: the dataset root or its question files are missing.
    """
    gt, problems = load_ground_truth(config.base_dataset_path, config.splits)
    predictions = load_predictions(config.prediction_file)
    match = match_predictions(gt, predictions, config.missing, source=str(config.prediction_file))
    match.gt_problems = problems
    logger.info("%d ground-truth records, %d predictions, %d matched, %d missing, %d unknown", match.n_gt,
                match.n_predictions, sum(s.status == "ok" for s in match.samples), len(match.missing_keys),
                len(match.unknown_keys))
    profiles, rows = score_samples(match, config)
    results = {
        "config": asdict(config),
        **(provenance or {}),
        "primary_profile": config.primary,
        "profiles_order": [config.primary] + [p for p in PROFILES if p != config.primary],
        "report_generation_note": "green_flare25_rule is the organisers' rule-based keyword composite "
                                  "(FLARE25-QWen2.5VL utils/metrics.py), not Stanford GREEN; green_llm is the "
                                  "LLM-judged GREEN and is present only with --green_model.",
        "matching": match.summary(),
        "higher_is_better": HIGHER_IS_BETTER,
        "primary_metrics": _primary_table(profiles),
        "profiles": profiles,
        "strict_vs_flare25": list(STRICT_DIFFERENCES),
    }
    return results, rows
