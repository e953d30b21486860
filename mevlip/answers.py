"""Answer formats of the FLARE tasks: parse a text into a value, and write a value in the dataset's own form.

One module for the ground truth, the generator, inference post-processing and evaluation, so that they all
agree on what an answer is. Formats follow ``docs/flare_format.md`` sections 3.2-3.3:

* classification: one option letter (``"B"``) or a class word (CMMD: ``"Malignant"``, ``"Luminal b"``);
* multi-label: labels joined by ``"; "`` (periapical, one label holds commas) or ``", "`` (chestdr);
* detection: a JSON list of integer pixel boxes ``"[[x1, y1, x2, y2], ...]"``;
* instance detection: a JSON object ``{"1": [[...], [...]], ..., "X": [...], "Y": [...]}``;
* counting: an integer; regression: a number written like ``"20.0"``; report: free text.

``parse_*`` functions are strict-but-tolerant readers of *canonical* answers and of model outputs that contain
one; they return ``None`` when nothing of the right shape is there. ``canonicalize`` turns raw model output into
the dataset's answer string for a task (what inference writes into ``predictions.json``).
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterable, Sequence

from mevlip.tasks import normalize_task_type

Box = list[int]

#: Labels that themselves contain commas (periapical; flare_format.md 3.2). Splitting must keep them whole.
COMMA_LABELS: tuple[str, ...] = ("Endodontic Treatment, Restorative Treatment, and Complications",)
#: Numbers beyond this are treated as unparsable (a model can emit "1e250"; flare_format.md 6, F26 notes).
NUMBER_LIMIT = 1e9

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_LETTER = re.compile(r"^(?:(?:the\s+)?answer(?:\s+is)?\s*[:\-]?\s*)?\(?([A-Za-z])\)?(?=$|[\s.:),;\]])", re.IGNORECASE)


def _text(value: object) -> str:
    """Any answer value (str, number, list, dict, None) as text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def strip_chat(text: str) -> str:
    """Drop chat-template residue around an answer (``assistant\\n`` prefixes, ``<|im_end|>``)."""
    text = text.replace("<|im_end|>", "").replace("<|endoftext|>", "")
    for marker in ("assistant\n", "assistant:"):
        if marker in text:
            text = text.rsplit(marker, 1)[1]
    return text.strip()


# ----------------------------------------------------------------------------------------------- classification
def parse_choice(value: object, options: Sequence[str] | None = None) -> str | None:
    """The chosen option: an upper-case letter, or a class word.

    Args:
        value: the answer text, e.g. ``"B"``, ``"B. Benign"``, ``"(c)"``, ``"Answer: D"``, ``"Malignant"``.
        options: class words a dataset answers with (CMMD), matched case-insensitively, longest first; when
            given, an answer that is neither a letter nor one of them is ``None``.

    Returns:
        The letter, the matched class word, or (without ``options``) the answer text itself, so that
        class-word ground truth such as ``"Luminal b"`` survives.
    """
    text = strip_chat(_text(value))
    if not text:
        return None
    if options:
        low = text.lower()
        for option in sorted(options, key=len, reverse=True):
            if low.startswith(option.lower()):
                return option
    match = _LETTER.match(text)
    if match:
        return match.group(1).upper()
    return None if options else text.rstrip(".").strip()


# ----------------------------------------------------------------------------------------------- multi-label
def split_labels(value: object) -> list[str] | None:
    """Split a multi-label answer into its labels, keeping comma-containing labels whole.

    ``"; "`` separates labels when present (periapical), else ``", "`` (chestdr). Duplicates are dropped,
    order kept. Returns ``None`` for an empty answer.
    """
    text = strip_chat(_text(value)).strip().strip("[]").strip()
    if not text:
        return None
    protected = {f"\x00{i}\x00": label for i, label in enumerate(COMMA_LABELS)}
    for token, label in protected.items():
        text = re.sub(re.escape(label), token, text, flags=re.IGNORECASE)
    parts = text.split(";") if ";" in text else text.split(",")
    labels: list[str] = []
    for part in parts:
        label = part.strip().strip("'\"").strip(" .")
        label = protected.get(label, label)
        if label and label not in labels:
            labels.append(label)
    return labels or None


def join_labels(labels: Iterable[str], sep: str = "; ") -> str:
    """Write labels the way the dataset does (``"; "`` for periapical, ``", "`` for chestdr)."""
    return sep.join(labels)


# ----------------------------------------------------------------------------------------------- boxes
def _as_box(item: object) -> Box | None:
    if isinstance(item, (list, tuple)) and len(item) == 4:
        try:
            box = [float(v) for v in item]
        except (TypeError, ValueError):
            return None
        if all(math.isfinite(v) and abs(v) < NUMBER_LIMIT for v in box):
            return [int(round(v)) for v in box]
    return None


def _literal(text: str) -> object:
    for loader in (json.loads, ast.literal_eval):
        try:
            return loader(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return None


def parse_boxes(value: object) -> list[Box] | None:
    """A list of ``[x1, y1, x2, y2]`` boxes from a JSON/Python list (one box or many) or from free text.

    Returns ``None`` when no box can be read; ``[]`` for an explicit empty list.
    """
    if isinstance(value, (list, tuple)):
        data: object = value
    else:
        text = strip_chat(_text(value))
        start = text.find("[")
        data = _literal(text[start: text.rfind("]") + 1]) if start >= 0 else None
        if data is None:  # free text: every run of 4 numbers inside brackets
            groups = re.findall(r"\[\s*([^\[\]]+?)\s*\]", text)
            boxes = [_as_box(_NUMBER.findall(g)) for g in groups]
            boxes = [b for b in boxes if b is not None]
            return boxes or None
    if isinstance(data, (list, tuple)):
        if len(data) == 0:
            return []
        single = _as_box(data)
        if single is not None:
            return [single]
        boxes = [_as_box(item) for item in data]
        boxes = [b for b in boxes if b is not None]
        return boxes or None
    return None


def format_boxes(boxes: Iterable[Sequence[float]]) -> str:
    """``"[[x1, y1, x2, y2], ...]"`` with integer coordinates, as the FLARE ground truth is written."""
    return json.dumps([[int(round(v)) for v in box] for box in boxes])


def parse_instances(value: object) -> dict[str, list[Box]] | None:
    """An instance-detection answer: ``{id: [box, ...]}``; a single box per id is accepted."""
    if isinstance(value, dict):
        data: object = value
    else:
        text = strip_chat(_text(value))
        start, end = text.find("{"), text.rfind("}")
        data = _literal(text[start: end + 1]) if 0 <= start < end else None
    if not isinstance(data, dict):
        return None
    out: dict[str, list[Box]] = {}
    for key, boxes in data.items():
        parsed = parse_boxes(boxes) if isinstance(boxes, (list, tuple)) else None
        if parsed:
            out[str(key)] = parsed
    return out


def format_instances(instances: dict[str, Iterable[Sequence[float]]]) -> str:
    """The chromosome answer format: a JSON object string, keys in the given order."""
    return json.dumps({str(k): [[int(round(v)) for v in b] for b in boxes] for k, boxes in instances.items()})


# ----------------------------------------------------------------------------------------------- numbers
def parse_number(value: object) -> float | None:
    """The first finite number in an answer (``"20.0"``, ``"about 35 cells"``, ``42``), else ``None``.

    Numbers whose magnitude reaches :data:`NUMBER_LIMIT` count as unparsable, so one absurd output cannot
    dominate an MAE.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        match = _NUMBER.search(re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", strip_chat(_text(value))))
        if not match:
            return None
        try:
            number = float(match.group(0))
        except (ValueError, OverflowError):
            return None
    return number if math.isfinite(number) and abs(number) < NUMBER_LIMIT else None


def format_count(value: float) -> str:
    """A count as the dataset writes it: an integer string."""
    return str(int(round(value)))


def format_percentage(value: float) -> str:
    """A regression value as the dataset writes it: one decimal, ``"20.0"``."""
    return f"{value:.1f}"


# ----------------------------------------------------------------------------------------------- dispatch
def answer_value_problem(task_type: str, value: object) -> str | None:
    """Why an ``Answer`` value from the data cannot be a target for its task, or ``None`` when it can.

    Text is always usable (an empty one, or an empty list or object, is the caller's to judge), and so is a finite
    number. JSON also allows
    values that no task's answer can be (docs/flare_format.md 3.3): a bool, a non-finite number (``1e309`` loads as
    ``inf``, ``NaN`` and ``-Infinity`` load too), ``null``, and lists or objects except those that parse as the
    task's own form (boxes for detection, labels for multi-label classification, instances for instance detection).
    Writing those as text or letting a metric skip them would train or score something that is not the dataset's
    answer.
    """
    task = normalize_task_type(task_type)
    if isinstance(value, str):
        return None
    if isinstance(value, bool) or value is None:
        return f"Answer is {json.dumps(value)}, not an answer"
    if isinstance(value, (int, float)):
        return None if math.isfinite(value) else f"Answer is not a finite number ({value})"
    if isinstance(value, (list, dict)) and not value:
        return None  # empty: the caller's "empty answer"
    if isinstance(value, list):
        if task == "detection" and value and parse_boxes(value) is not None:
            return None
        if task == "multi_label_classification" and value and all(isinstance(v, str) and v.strip() for v in value):
            return None
    if isinstance(value, dict) and task == "instance_detection" and parse_instances(value) is not None:
        return None
    kind = {list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
    return f"Answer is {kind}, which a {task} answer cannot be"


def parse_answer(task_type: str, value: object, options: Sequence[str] | None = None) -> object | None:
    """Parse an answer in the format of its task; ``None`` when it does not parse.

    Returns: a letter/word (classification), a label list, a box list, an id->boxes dict, a float, or the
    stripped text (report).
    """
    task = normalize_task_type(task_type)
    if task == "classification":
        return parse_choice(value, options)
    if task == "multi_label_classification":
        return split_labels(value)
    if task == "detection":
        return parse_boxes(value)
    if task == "instance_detection":
        return parse_instances(value)
    if task in ("counting", "regression"):
        return parse_number(value)
    text = strip_chat(_text(value))
    return text or None


def canonicalize(task_type: str, raw: object, options: Sequence[str] | None = None, label_sep: str = "; ") -> str:
    """Turn a raw model output into the dataset's answer string for the task (``""`` if nothing parses).

    Only the leading/trailing chat residue is removed: the first line of an answer is never dropped
    (the original ME-VLIP inference did drop it).
    """
    task = normalize_task_type(task_type)
    parsed = parse_answer(task, raw, options)
    if parsed is None:
        return ""
    if task == "multi_label_classification":
        return join_labels(parsed, label_sep)  # type: ignore[arg-type]
    if task == "detection":
        return format_boxes(parsed)  # type: ignore[arg-type]
    if task == "instance_detection":
        return format_instances(parsed)  # type: ignore[arg-type]
    if task == "counting":
        return format_count(parsed)  # type: ignore[arg-type]
    if task == "regression":
        return format_percentage(parsed)  # type: ignore[arg-type]
    return str(parsed)


# ----------------------------------------------------------------------------------------------- the original's
def original_parse_answer(output: str, task_type: str | None = None) -> str:
    """The original inference.py's ``parse_answer``, line for line (for the ``original`` preset).

    Original repository, ``docker_internvl/inference.py``: strip; keep what follows "Please provide a clear and
    concise answer." if present; if the output has a newline, DROP ITS FIRST LINE; then by the record's raw
    ``TaskType``, lower-cased and compared as written there: ``classification`` -> the last line;
    ``multi-label classification`` -> every ``;``-separated part of every line, re-joined with ``"; "``;
    ``detection``/``instance_detection`` -> the first ``{...}``/``[...]`` span, re-serialised by ``json`` when it
    parses; ``cell counting``/``regression``/``counting`` -> the first number as written, ``"0"`` when none;
    anything else (``report generation``, ``Report_Generation``, ``multi_label_classification``, ...) unchanged.
    """
    output = output.strip()
    marker = "Please provide a clear and concise answer."
    if marker in output:
        output = output.split(marker)[-1].strip()
    if "\n" in output:
        output = output.split("\n", 1)[-1].strip()
    task = (task_type or "").strip().lower()
    if task == "classification":
        lines = output.splitlines()
        return lines[-1].strip() if lines else output
    if task == "multi-label classification":
        labels = [part.strip() for line in output.splitlines() for part in re.split(r"[;]", line) if part.strip()]
        return "; ".join(labels)
    if task in ("detection", "instance_detection"):
        match = re.search(r"\{.*\}|\[.*\]", output, re.DOTALL)
        if not match:
            return output
        try:
            return json.dumps(json.loads(match.group()))
        except (ValueError, RecursionError):  # the original caught everything here
            return match.group()
    if task in ("cell counting", "regression", "counting"):
        match = re.search(r"[-+]?[0-9]*\.?[0-9]+", output)
        return match.group() if match else "0"
    return output
