"""Per-sample scoring under the two profiles: ``flare25`` (the organisers' rules) and ``strict`` (corrected).

``flare25`` reproduces medfm-flare/FLARE25-QWen2.5VL ``evaluate_model.py`` (``docs/flare_format.md`` 4.A), the
evaluator behind the Q25 and MedGemma README tables. ``strict`` keeps its metric definitions (pooled per task type,
balanced accuracy, per-sample multi-label F1, prediction-order greedy matching at IoU > 0.5, MAE, the rule-based
report score) but reads answers with the canonical parsers of :mod:`mevlip.answers` and fixes what the organisers'
extraction gets wrong. Every difference, strict vs flare25:

1. Classification: any option letter A-Z is read (flare25 finds only A-E, so ``"F"``-``"K"`` answers fall back
   to the last word and ``"F. Eosinophil"`` becomes ``"eosinophil"``); class-word answers (CMMD) are read whole
   (flare25 turns ``"Luminal b"`` into ``"B"`` and ``"Triple negative"`` into ``"negative"``, so those classes can
   never match, not even the ground truth itself); an article ("A large mass ...") is not taken for option A
   unless it opens the answer; labels compare case-insensitively.
2. Multi-label: labels compare case-insensitively; the comma-containing periapical label "Endodontic Treatment,
   Restorative Treatment, and Complications" stays one label (flare25 splits it into three pieces when the
   answer has no ";"), and duplicate labels collapse.
3. Detection / instance detection: boxes are read by :func:`mevlip.answers.parse_boxes` / ``parse_instances``
   (JSON or Python lists anywhere in the text, negative and decimal coordinates, one bare box); flare25 only
   reads non-negative integers and needs the instance JSON to fill the whole answer.
4. Counting / regression: the first number in the answer (flare25: the max of "count is N"-style matches or of
   the integers > 10, and ``None`` for hedging phrases); an unparsable, non-finite or missing prediction counts as
   0 instead of being dropped; each absolute error is capped at ``error_cap`` (default 10,000) and numbers of
   magnitude >= 1e9 are unparsable, so one absurd output cannot push an MAE to 1e250; flare25 drops
   unparsable predictions and reports an infinite MAE when none is left or when one parses as inf/nan.
5. Report generation: an empty or missing report scores 0 (flare25's rule score gives an empty answer up to 0.885
   against an entity-free reference); the text is only stripped of chat residue (flare25 also keeps only what
   follows the last ``"Answer:"``).
6. A reference that the strict parser cannot read is not scored (listed as such); flare25 keeps it, as Q25 does.
7. Both keep only the text after the last "Answer:"; flare25 matches it case-sensitively for every task, strict
   in any case ("answer:", "The answer is:") for every task but report generation.

Missing predictions (``--missing wrong``) enter both profiles as an empty answer; under ``flare25`` that means a
wrong class, no labels, no boxes, and a dropped sample for counting/regression (any unparsable answer is dropped).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

from mevlip import answers
from mevlip.metrics import flare25_parsing as q25
from mevlip.metrics.green_rule import green_rule_components, severity_correlation
from mevlip.metrics.matching import INSTANCE_THRESHOLDS, match_boxes, match_instances
from mevlip.metrics.text_metrics import bleu_counts, clinical_efficacy_pair, flare25_bleu_stats, rouge_l

PROFILES: tuple[str, ...] = ("flare25", "strict")
#: The differences of ``strict`` from ``flare25``, one line each (written into every report).
STRICT_DIFFERENCES: tuple[str, ...] = (
    "classification: any option letter A-Z is read (flare25: A-E only, else the last word); class-word answers "
    "(CMMD 'Luminal b', 'Triple negative') are read whole (flare25 reduces them to 'B' / 'negative', so even the "
    "ground truth cannot match); an article is not taken for option A unless it opens the answer; "
    "case-insensitive labels",
    "multi-label: case-insensitive labels; the comma-containing periapical label stays one label (flare25 splits "
    "it in three when the answer has no ';'); duplicate labels collapse",
    "detection / instance detection: canonical box readers (JSON or Python lists anywhere in the text, negative "
    "and decimal coordinates); flare25 reads non-negative integers only and needs the instance JSON to fill the "
    "whole answer",
    "counting / regression: first number in the answer; unparsable, non-finite or missing predictions count as 0 "
    "instead of being dropped; |number| >= 1e9 is unparsable and each absolute error is capped (error_cap), so "
    "one absurd output cannot push the MAE to 1e250 (flare25: dropped, inf MAE when none is left or one is inf)",
    "report generation: an empty or missing report scores 0 (flare25's rule score can give it up to 0.885); only "
    "chat residue is stripped (flare25 also keeps only what follows the last 'Answer:')",
    "a reference the canonical parser cannot read is not scored; flare25 scores it as Q25 does",
    "both keep only the text after the last 'Answer:'; flare25 matches it case-sensitively in every task, strict in "
    "any case ('answer:', 'The answer is:') in every task but report generation",
)
#: Default cap on one sample's absolute error under ``strict`` (counting and regression).
DEFAULT_ERROR_CAP = 10_000.0
_NAN = float("nan")


def _memo(parse):
    """``parse`` with a small LRU cache for string answers (a target parsed again as its copy, repeated letters).

    Parsed values are shared between calls and must not be mutated (nothing here mutates them).
    """
    cached = lru_cache(maxsize=4096)(parse)

    def call(value):
        return cached(value) if isinstance(value, str) else parse(value)

    call.__wrapped__ = parse
    return call


_q25_choice, _q25_labels = _memo(q25.parse_classification), _memo(q25.parse_multilabel)
_q25_boxes, _q25_instances = _memo(q25.parse_boxes), _memo(q25.parse_instances)
_choice, _labels = _memo(answers.parse_choice), _memo(answers.split_labels)
_boxes, _instances = _memo(answers.parse_boxes), _memo(answers.parse_instances)


def _prf1(pred: set, ref: set) -> tuple[float, float, float]:
    tp = len(pred & ref)
    p = tp / len(pred) if pred else 0.0
    r = tp / len(ref) if ref else 0.0
    return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)


def _report_values(pred_text: str, ref_text: str, empty_is_zero: bool) -> dict:
    comps = green_rule_components(pred_text, ref_text)
    if empty_is_zero and not pred_text.strip():
        comps = (0.0,) * len(comps)
    return {"green_flare25_rule": comps[0], "components": comps[1:], "bleu": bleu_counts(pred_text, ref_text),
            "rougeL": 0.0 if empty_is_zero and not pred_text.strip() else rouge_l(pred_text, ref_text),
            # the organisers' own secondary figures, computed their way under both profiles
            "severity_correlation": severity_correlation(pred_text, ref_text),
            "bleu_flare25": flare25_bleu_stats(pred_text, ref_text),
            "clinical_efficacy": clinical_efficacy_pair(pred_text, ref_text)}


# ----------------------------------------------------------------------------------------------- flare25
def score_flare25(task: str, prediction: object, target: object) -> dict:
    """One sample under the organisers' rules.

    Args:
        task: canonical task name (:data:`mevlip.tasks.TASK_NAMES`).
        prediction: the raw prediction ``Answer`` (``None`` for a missing prediction: read as ``""``).
        target: the raw reference ``Answer``.

    Returns:
        ``{"parsed", "target", "scored", ...per-task values}``; see :mod:`mevlip.metrics.scores` for the columns.
    """
    text, ref = q25.as_text(prediction), q25.as_text(target)
    if task == "classification":
        pred, gt = q25.normalize_label(_q25_choice(text)), q25.normalize_label(ref)
        return {"parsed": pred, "target": gt, "scored": True, "correct": pred == gt}
    if task == "multi_label_classification":
        pred_set, ref_set = q25.label_set(_q25_labels(text)), q25.label_set(_q25_labels(ref))
        values = _prf1(pred_set, ref_set) if ref_set else (_NAN, _NAN, _NAN)
        return {"parsed": sorted(pred_set), "target": sorted(ref_set), "scored": bool(ref_set),
                "precision": values[0], "recall": values[1], "f1": values[2]}
    if task == "detection":
        pred_boxes, ref_boxes = _q25_boxes(text), _q25_boxes(ref)
        tp, fp, fn = match_boxes(pred_boxes, ref_boxes, 0.5)
        return {"parsed": pred_boxes, "target": ref_boxes, "scored": True, "tp": tp, "fp": fp, "fn": fn}
    if task == "instance_detection":
        pred_inst, ref_inst = _q25_instances(text), _q25_instances(ref)
        return {"parsed": pred_inst, "target": ref_inst, "scored": True, "counts": match_instances(pred_inst, ref_inst)}
    if task in ("counting", "regression"):
        if task == "counting":
            pred_num, gt_num = q25.parse_count(text), q25.reference_count(ref)
        else:
            pred_num, gt_num = q25.parse_regression(text), q25.reference_regression(ref)
        error = _NAN
        if gt_num is not None and pred_num is not None:
            try:
                error = abs(float(pred_num) - float(gt_num))
            except OverflowError:  # Q25: float() of a huge int fails and the task MAE becomes inf
                error = math.inf
            if math.isnan(error):  # Q25: sklearn rejects NaN and the task MAE becomes inf
                error = math.inf
        return {"parsed": pred_num, "target": gt_num, "scored": gt_num is not None and pred_num is not None,
                "abs_error": error}
    pred_text = q25.parse_report(text)
    return {"parsed": pred_text, "target": ref, "scored": True, **_report_values(pred_text, ref, False)}


# ----------------------------------------------------------------------------------------------- strict
_ANSWER_MARK = re.compile(r"\banswer\s*(?:is)?\s*:", re.IGNORECASE)


def _final_answer(value: object) -> object:
    """Text after the last "Answer:" (any case), as flare25 does case-sensitively; other values pass through."""
    if not isinstance(value, str):
        return value
    marks = list(_ANSWER_MARK.finditer(value))
    if marks and value[marks[-1].end():].strip():
        return value[marks[-1].end():].strip()
    return value


def _choice_label(value: object) -> str | None:
    choice = _choice(value)
    if not choice:
        return None
    return choice.upper() if len(choice) == 1 else " ".join(choice.split()).casefold()


def _label_set(value: object) -> set[str] | None:
    labels = _labels(value)
    return {" ".join(label.split()).casefold() for label in labels} if labels else None


def score_strict(task: str, prediction: object, target: object, error_cap: float = DEFAULT_ERROR_CAP) -> dict:
    """One sample under the corrected rules (module docstring, items 1-6); same return shape as
    :func:`score_flare25`. ``scored`` is False when the reference itself cannot be read."""
    if task != "report_generation":
        prediction = _final_answer(prediction)
    if task == "classification":
        pred, gt = _choice_label(prediction), _choice_label(target)
        return {"parsed": pred, "target": gt, "scored": gt is not None, "correct": pred is not None and pred == gt}
    if task == "multi_label_classification":
        pred_set, ref_set = _label_set(prediction) or set(), _label_set(target)
        values = _prf1(pred_set, ref_set) if ref_set else (_NAN, _NAN, _NAN)
        return {"parsed": sorted(pred_set), "target": sorted(ref_set or ()), "scored": bool(ref_set),
                "precision": values[0], "recall": values[1], "f1": values[2]}
    if task == "detection":
        pred_boxes, ref_boxes = _boxes(prediction) or [], _boxes(target)
        tp, fp, fn = match_boxes(pred_boxes, ref_boxes, 0.5) if ref_boxes is not None else (0, 0, 0)
        return {"parsed": pred_boxes, "target": ref_boxes, "scored": ref_boxes is not None,
                "tp": tp, "fp": fp, "fn": fn}
    if task == "instance_detection":
        pred_inst, ref_inst = _instances(prediction) or {}, _instances(target)
        counts = match_instances(pred_inst, ref_inst) if ref_inst is not None else [(0, 0, 0)] * len(
            INSTANCE_THRESHOLDS)
        return {"parsed": pred_inst, "target": ref_inst, "scored": ref_inst is not None, "counts": counts}
    if task in ("counting", "regression"):
        pred_num, gt_num = answers.parse_number(prediction), answers.parse_number(target)
        value = pred_num if pred_num is not None else 0.0
        error = min(abs(value - gt_num), error_cap) if gt_num is not None else _NAN
        return {"parsed": pred_num, "target": gt_num, "scored": gt_num is not None, "abs_error": error}
    pred_text = answers.strip_chat(q25.as_text(prediction))
    ref = q25.as_text(target)
    return {"parsed": pred_text, "target": ref, "scored": bool(ref.strip()), **_report_values(pred_text, ref, True)}


def score_sample(profile: str, task: str, prediction: object, target: object,
                 error_cap: float = DEFAULT_ERROR_CAP) -> dict:
    """Dispatch to :func:`score_flare25` or :func:`score_strict`."""
    if profile == "flare25":
        return score_flare25(task, prediction, target)
    if profile == "strict":
        return score_strict(task, prediction, target, error_cap)
    raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
