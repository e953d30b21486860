"""The label texts a router scores: the task names, or a short description of each task type.

A bi-encoder router embeds each label's text with its label model and compares the question with it. The bare
names (``classification``, ``multi_label_classification``) are close neighbours for a sentence encoder and say
nothing about what a question of that task looks like, so a router trained on a few datasets learns their
wordings instead of the task: without one dataset's questions (leave-one-dataset-out), the demo router sent
bone-marrow single-choice questions to multi-label classification and alveolar-bone-resorption questions to report
generation. :data:`DESCRIPTIONS` says, for each task type, what it asks and what its answer is, in the generic
terms of the FLARE task definitions (``docs/flare_format.md`` 2.1; the answer formats of :mod:`mevlip.tasks`):
they name no dataset, organ or class of any mini-FLARE or FLARE dataset. The texts are stored with the router
(``router_config.json`` ``label_texts`` and ``config.json`` ``router_label_texts``), so that a router is scored with
the texts it was trained on.
"""

from __future__ import annotations

from mevlip.tasks import TASKS

#: ``--label_prompts``: score the task names, or the task descriptions below.
LABEL_PROMPTS = ("names", "descriptions")

#: What each task type asks, and what its answer looks like (generic: no dataset, organ or class names).
DESCRIPTIONS = {
    "classification": "classification: a single-choice question with options or class words (A, B, C or x, y or z); "
                      "the answer is the one correct option, such as yes or no, a type, a grade or a category",
    "multi_label_classification": "multi-label classification: which findings are present; the candidate labels "
                                  "are listed without letters; select all that apply, several at once",
    "detection": "detection: locate the object or region and give its bounding box coordinates "
                 "[x_min, y_min, x_max, y_max]",
    "instance_detection": "instance detection: detect every instance of each labelled class and return a JSON "
                          "dictionary of bounding boxes per label",
    "counting": "counting: how many objects are there; count them and answer with a whole number",
    "regression": "regression: measure or estimate a continuous value, such as a size, length, angle, ratio or "
                  "percentage, and answer with a number",
    "report_generation": "report generation: an open question without options; describe the findings of the "
                         "image in free-text sentences, as a radiology report does",
}


def label_texts(labels: list[str], prompts: str) -> list[str]:
    """The texts scored for ``labels`` (canonical task names): the names themselves, or their descriptions.

    Raises:
        ValueError: ``prompts`` is not one of :data:`LABEL_PROMPTS`, or a label has no description.
    """
    if prompts not in LABEL_PROMPTS:
        raise ValueError(f"--label_prompts must be one of {LABEL_PROMPTS}, got {prompts!r}")
    if prompts == "names":
        return list(labels)
    missing = [x for x in labels if x not in DESCRIPTIONS]
    if missing:
        raise ValueError(f"no label description for {missing}; known task types: {', '.join(TASKS)}")
    return [DESCRIPTIONS[x] for x in labels]
