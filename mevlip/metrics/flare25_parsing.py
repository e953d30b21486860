"""The organisers' answer extraction, copied rule for rule (profile ``flare25``).

Source: medfm-flare/FLARE25-QWen2.5VL ``evaluate_model.py`` (``parse_answer``, the reference parsing in
``evaluate_model``, ``_normalize_label`` in ``calculate_metrics``) at commit 2e192d46; FLARE25-MedGemma carries the
same functions. ``docs/flare_format.md`` section 4.A describes them. Every regex below is theirs, byte for byte;
the only changes are that nothing here can raise (their code lets a few exceptions escape: ``int(float("inf"))``
in counting, for example) and that functions are split per task. The evaluator's canonical parsers live in
:mod:`mevlip.answers` and are used by the ``strict`` profile; do not mix the two.

Run time on garbage: a few of their regexes are super-linear on long digit runs (the ``%`` pattern is cubic: one
answer of 5,000 digits took minutes). Those are replaced by forms that return exactly the same matches
(possessive quantifiers, and no match attempt from inside a digit run, which can only fail where the attempt from
the start of the run failed); the tests compare each with the original on random strings. And since Q25
generated at most 150 new tokens except for instance detection, its regexes never saw more than that: we parse
the first :data:`MAX_CHARS` characters of the cleaned answer (instance detection, which only calls
``json.loads``, is not truncated).

Prediction side: the Q25 evaluator parses the decoded model output with ``parse_answer(output, task)``. Reference
side (their ``evaluate_model`` loop): detection, instance detection and multi-label references go through the same
parser; regression references are ``float(answer)``, counting ``int(float(answer))``; classification and report
references are used raw (``str(answer)`` from ``prepare_data.py``).
"""

from __future__ import annotations

import json
import math
import re

#: Characters of a cleaned answer given to the regex-based parsers (Q25 generated <= 150 tokens for them).
MAX_CHARS = 8000
#: The original patterns whose equivalent fast forms are used below (kept for the equivalence tests).
ORIGINAL_PATTERNS = {
    "percent": r'(-?\d+\.?\d*)\s*%',
    "box_any": r'\[?\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]?',
    "cells": r'(\d+)\s*cells?\s*(?:visible|present|identified|counted)',
    "edge_punct": r'^[\s\.,:\'\"]+|[\s\.,:\'\"]+$',
}

# ------------------------------------------------------------------------------------------- common cleaning
_INCOMPLETE = (  # counting: hedging phrases that make Q25 return None
    "to accurately count", "to provide an accurate count", "to count the cells",
    "we need to", "i would need to", "to determine", "to estimate",
    "follow these steps", "carefully examine", "inspect each",
)
_COUNT_EXPLICIT = tuple(re.compile(p) for p in (
    r'count.*?(?:is|are|equals?|totals?)\s*:?\s*(\d+)',
    r'(?:total|number|count)\s*(?:is|are|equals?|of)?\s*:?\s*(\d+)',
    r'(?<!\d)(\d++)\s*cells?\s*(?:visible|present|identified|counted)',  # = ORIGINAL_PATTERNS["cells"]
    r'approximately\s*(\d+)',
    r'estimated?\s*(\d+)',
))
_COUNT_STANDALONE = re.compile(r'(?<!step\s)(?<!\d\.\s)(?<!procedure\s)(\d+)(?!\.\s)', re.IGNORECASE)
_PERCENT = re.compile(r'(-\d++(?:\.\d*+)?|(?<!\d)\d++(?:\.\d*+)?)\s*+%')  # = ORIGINAL_PATTERNS["percent"]
_DECIMAL = re.compile(r'(-?\d+\.?\d*)')
_LETTER_AE = re.compile(r"\b([A-E])(?:[.\)\s]|$)")
_EDGE_PUNCT = re.compile(r'^[\s\.,:\'\"]+|(?<![\s\.,:\'\"])[\s\.,:\'\"]+$')  # = ORIGINAL_PATTERNS["edge_punct"]
_BRACKETED = re.compile(r'\[([^\]]+)\]')
_BOX_DOUBLE = re.compile(r'\[\s*\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]\s*\]')
_BOX_ANY = re.compile(r'(?<!\d)(\d++)\s*+,\s*+(\d++)\s*+,\s*+(\d++)\s*+,\s*+(\d++)')  # groups = ORIGINAL["box_any"]


def as_text(value: object) -> str:
    """A prediction or reference ``Answer`` as the text a model would have printed.

    Strings pass through; lists and dicts become JSON (so that box and instance parsers can read them, as
    they would read a model's JSON output); ``None`` becomes ``""``; anything else ``str()``.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        try:
            return json.dumps(value)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def clean_output(text: str) -> str:
    """Q25's chat-artefact removal, then the text after the last ``Answer:`` (case-sensitive)."""
    cleaned = text
    if "assistant\n" in cleaned:
        cleaned = cleaned.rsplit("assistant\n", 1)[-1].strip()
    elif "assistant:" in cleaned.lower():
        idx = cleaned.lower().rfind("assistant:")
        cleaned = cleaned[idx + len("assistant:"):].strip()
    for marker in ("system\n", "user\n"):
        if cleaned.startswith(marker):
            cleaned = cleaned[len(marker):].strip()
    if "Answer:" in cleaned:
        cleaned = cleaned.rsplit("Answer:", 1)[-1].strip()
    return cleaned


def _clean(output: str) -> str:
    """:func:`clean_output`, then at most :data:`MAX_CHARS` characters (for the regex-based parsers)."""
    return clean_output(output)[:MAX_CHARS]


# ------------------------------------------------------------------------------------------- classification
def parse_classification(output: str) -> str:
    """Q25: first ``\\b[A-E]`` followed by ``.``, ``)``, whitespace or the end (on the upper-cased text), else
    the last whitespace token; then surrounding spaces, ``.``, ``,``, ``:`` and quotes are stripped."""
    answer = _clean(output)
    match = _LETTER_AE.search(answer.upper())
    if match:
        answer = match.group(1)
    else:
        words = answer.split()
        if words:
            answer = words[-1]
    return _EDGE_PUNCT.sub("", answer)


def normalize_label(label: object) -> str:
    """Q25 ``_normalize_label`` (both sides): collapse whitespace; one letter upper-cased, the rest lower-cased."""
    if label is None:
        return ""
    s = " ".join(str(label).strip().split())
    if len(s) == 1 and s.isalpha():
        return s.upper()
    return s.lower()


# ------------------------------------------------------------------------------------------- multi-label
def parse_multilabel(output: str) -> list[str]:
    """Q25 multi-label parser (prediction and reference alike); case is kept, so matching is case-sensitive.

    With ``[...]`` the inside of the first bracket pair is split on ``;`` if present, else ``,`` (quotes stripped);
    otherwise the text is split the same way and each label loses quotes and ``.,;`` at its ends. An answer that
    yields no label comes back as ``[cleaned_text]`` (``[""]`` for an empty answer, which the F1 then skips).
    """
    answer = _clean(output)
    if "[" in answer and "]" in answer:
        match = _BRACKETED.search(answer)
        if match:
            inner = match.group(1)
            parts = inner.split(";") if ";" in inner else inner.split(",")
            return [p.strip().strip("'\"") for p in parts if p.strip()]
    if ";" in answer:
        labels = [p.strip() for p in answer.split(";") if p.strip()]
    elif "," in answer:
        labels = [p.strip() for p in answer.split(",") if p.strip()]
    else:
        labels = [answer.strip()] if answer.strip() else []
    cleaned = [c for c in (label.strip().strip("'\".,;") for label in labels) if c]
    return cleaned if cleaned else [answer.strip()]


def label_set(labels: list[str]) -> set[str]:
    """Q25's set for the F1: ``set(str(p).strip() for p in labels if p)``."""
    return {str(p).strip() for p in labels if p}


# ------------------------------------------------------------------------------------------- boxes
def parse_boxes(output: str) -> list[list[int]]:
    """Q25 detection parser: JSON object (all 4-long boxes of all keys), else ``[[d,d,d,d]]`` matches, else any
    4 comma-separated non-negative integers (brackets optional), else ``[]``. Never raises (their outer
    ``except Exception`` returns ``[]``)."""
    answer = _clean(output)
    try:
        if answer.startswith("{") and answer.endswith("}"):
            try:
                data = json.loads(answer)
                if isinstance(data, dict):
                    boxes = []
                    for value in data.values():
                        if isinstance(value, list):
                            for box in value:
                                if isinstance(box, list) and len(box) == 4:
                                    boxes.append([int(c) for c in box])
                    return boxes
            except json.JSONDecodeError:
                pass
        matches = _BOX_DOUBLE.findall(answer) or _BOX_ANY.findall(answer)
        return [[int(a), int(b), int(c), int(d)] for a, b, c, d in matches]
    except Exception:  # noqa: BLE001 - Q25 catches everything here and returns []
        return []


def parse_instances(output: str) -> dict[str, list[list]]:
    """Q25 instance-detection parser: the cleaned text must start with ``{``, end with ``}`` and be JSON; a value
    is a list of boxes (when its first item is a 4-list) or one flat 4-number box; coordinates ``int()``-ed.
    Anything else is ``{}`` (every reference box then counts as a false negative)."""
    answer = clean_output(output)
    try:
        if answer.startswith("{") and answer.endswith("}"):
            data = json.loads(answer)
            if isinstance(data, dict):
                result: dict[str, list[list]] = {}
                for key, boxes in data.items():
                    if isinstance(boxes, list):
                        if len(boxes) > 0 and isinstance(boxes[0], list) and len(boxes[0]) == 4:
                            result[str(key)] = [[int(c) for c in box] for box in boxes]
                        elif len(boxes) == 4 and all(isinstance(x, (int, float)) for x in boxes):
                            result[str(key)] = [[int(c) for c in boxes]]
                return result
        return {}
    except Exception:  # noqa: BLE001 - JSON errors, int() of a list, NaN, huge numbers: Q25 returns {}
        return {}


# ------------------------------------------------------------------------------------------- numbers
def parse_count(output: str) -> int | None:
    """Q25 counting parser: ``None`` on hedging phrases; else the max of the explicit "count is N"-style
    matches; else the max standalone integer (numbers <= 10 dropped unless alone); else ``int(float(text))``."""
    answer = _clean(output)
    try:
        low = answer.lower()
        if any(phrase in low for phrase in _INCOMPLETE):
            return None
        for pattern in _COUNT_EXPLICIT:
            matches = pattern.findall(low)
            if matches:
                return max(int(m) for m in matches)
        matches = _COUNT_STANDALONE.findall(answer)
        if matches:
            numbers = [int(m) for m in matches if int(m) > 10 or len(matches) == 1]
            if numbers:
                return max(numbers)
        return int(float(answer))
    except (ValueError, OverflowError, IndexError):  # Q25 lets OverflowError escape; we drop the sample instead
        return None


def parse_regression(output: str) -> float | None:
    """Q25 regression parser: first number followed by ``%``, else the first signed decimal, else
    ``float(text)`` (which accepts ``"inf"``/``"nan"``; such a value makes the task MAE infinite, as in Q25)."""
    answer = _clean(output)
    try:
        matches = _PERCENT.findall(answer) or _DECIMAL.findall(answer)
        if matches:
            return float(matches[0])
        return float(answer)
    except (ValueError, OverflowError, IndexError):
        return None


def reference_count(answer: str) -> int | None:
    """Counting reference: ``int(float(answer))`` (truncates), ``None`` when that fails."""
    try:
        return int(float(answer))
    except (ValueError, OverflowError, TypeError):
        return None


def reference_regression(answer: str) -> float | None:
    """Regression reference: ``float(answer)``, ``None`` when that fails."""
    try:
        value = float(answer)
    except (ValueError, OverflowError, TypeError):
        return None
    return value if not math.isnan(value) else None


def parse_report(output: str) -> str:
    """Q25 report "parser": the cleaned text, stripped."""
    return _clean(output).strip()
