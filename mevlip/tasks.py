"""The seven FLARE 2025 Task 5 task types: one registry, read through :func:`get_task`.

The FLARE data spells its ``TaskType`` field differently per dataset (``Classification``, ``classification``,
``Multi-label Classification``, ``instance_detection``, ``Report_Generation``, ...; see
``docs/flare_format.md`` section 2.1), and the baseline code guesses further spellings (``Cell Counting``,
``Instance Detection``, ``Report Generation``). Every stage (data preparation, router, inference, evaluation)
maps them to one canonical name here, so there is exactly one place that knows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    """One canonical task type.

    Attributes:
        name: canonical name; also the LoRA adapter name and the ``flare_<name>`` dataset entry.
        title: human-readable title used in tables.
        answer_format: what a canonical answer looks like (documentation, shown in prompts-free reports).
        metric: name of the primary metric.
        higher_is_better: direction of the primary metric.
        spellings: ``TaskType`` strings seen in FLARE data or baseline code that mean this task.
    """

    name: str
    title: str
    answer_format: str
    metric: str
    higher_is_better: bool
    spellings: tuple[str, ...]

    @property
    def adapter(self) -> str:
        """Name of the task adapter (and its folder under the adapters directory)."""
        return self.name

    @property
    def dataset_entry(self) -> str:
        """Name of this task's entry in LLaMA-Factory's ``dataset_info.json``."""
        return f"flare_{self.name}"


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "classification", "Classification", "one option letter (or a class word, CMMD)",
            "balanced_accuracy", True,
            ("Classification", "classification"),
        ),
        TaskSpec(
            "multi_label_classification", "Multi-label classification",
            "labels joined by '; ' (periapical) or ', ' (chestdr)", "f1", True,
            ("Multi-label Classification", "multi-label classification", "multi_label_classification",
             "Multilabel Classification"),
        ),
        TaskSpec(
            "detection", "Detection", "JSON list of [x1, y1, x2, y2] integer pixel boxes", "f1@0.5", True,
            ("detection", "Detection"),
        ),
        TaskSpec(
            "instance_detection", "Instance detection", "JSON object: instance id -> list of boxes", "f1@0.5", True,
            ("instance_detection", "Instance Detection", "instance detection"),
        ),
        TaskSpec(
            "counting", "Counting", "an integer", "mae", False,
            ("Counting", "counting", "Cell Counting", "cell_counting"),
        ),
        TaskSpec(
            "regression", "Regression", "a number such as 20.0", "mae", False,
            ("regression", "Regression"),
        ),
        TaskSpec(
            "report_generation", "Report generation", "free text (one finding sentence per question)", "green", True,
            ("Report_Generation", "report_generation", "Report Generation", "report generation"),
        ),
    )
}

#: Canonical names in a fixed, documented order (tables, router label set, adapters).
TASK_NAMES: tuple[str, ...] = tuple(TASKS)
#: The adapter that answers when the router is unsure or routing is off.
GENERAL_ADAPTER = "general"


def _key(text: str) -> str:
    """Case-, separator- and space-insensitive form of a task-type spelling."""
    return re.sub(r"\s+", " ", re.sub(r"[_\-]+", " ", text.strip().lower()))


_ALIASES: dict[str, str] = {}
for _spec in TASKS.values():
    for _spelling in (_spec.name, _spec.title, *_spec.spellings):
        _ALIASES[_key(_spelling)] = _spec.name
_ALIASES[_key("multilabel classification")] = "multi_label_classification"


def normalize_task_type(task_type: object) -> str:
    """Map any known ``TaskType`` spelling to its canonical name.

    Raises:
        ValueError: the spelling is unknown (the message lists the canonical names).
    """
    if not isinstance(task_type, str) or not task_type.strip():
        raise ValueError(f"TaskType must be a non-empty string, got {task_type!r}")
    try:
        return _ALIASES[_key(task_type)]
    except KeyError:
        raise ValueError(f"unknown TaskType {task_type!r}; known task types: {', '.join(TASK_NAMES)}") from None


def get_task(task_type: str) -> TaskSpec:
    """The :class:`TaskSpec` of a canonical name or of any known spelling."""
    return TASKS[normalize_task_type(task_type)]
