"""Inference post-processing end to end: one record of each task type, routed right and routed
wrong, the model's raw output given by a fake generate function (the unit is what inference writes, not the model),
and the exact ``Answer`` string of ``predictions.json`` checked.

The rule under test (``mevlip.inference.run.postprocess``): the record's own ``TaskType`` chooses the answer parser
whenever the record has one, so a misrouted question still gets its task's parser, as the original did (its
``parse_answer`` read ``TaskType`` from the record); the routed task decides only for a record without a TaskType.
Every expected string below is worked out by hand from the raw output and the FLARE answer formats
(``docs/flare_format.md``): a letter for classification, the labels as given for multi-label, integer pixel boxes,
instance boxes keyed by id, a whole number for counting, one decimal for regression, the text stripped for reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mevlip.inference.run import Item, Journal, Plan, Route, run, write_outputs
from mevlip.tasks import TASK_NAMES

#: task -> (the record's TaskType spelling, the model's raw output, the Answer worked out by hand)
CASES = {
    "classification": ("Classification", "Answer: B. Benign", "B"),
    "multi_label_classification": ("Multi-label Classification", "Caries; Impacted tooth", "Caries; Impacted tooth"),
    "detection": ("Detection", "The box is [10, 20, 30.4, 40].", "[[10, 20, 30, 40]]"),
    "instance_detection": ("Instance_Detection", '{"1": [[1,2,3,4]], "2": [[5,6,7,8]]}',
                           '{"1": [[1, 2, 3, 4]], "2": [[5, 6, 7, 8]]}'),
    "counting": ("Cell Counting", "I count 7 cells.", "7"),
    "regression": ("Regression", "The ejection fraction is about 41.0 %.", "41.0"),
    "report_generation": ("Report Generation", "  Findings: heart normal.\nImpression: none.  ",
                          "Findings: heart normal.\nImpression: none."),
}
#: a wrong route for each task: the task whose parser would give another answer for that raw output
WRONG = {"classification": "report_generation", "multi_label_classification": "detection",
         "detection": "counting", "instance_detection": "detection", "counting": "regression",
         "regression": "counting", "report_generation": "classification"}


def test_the_cases_cover_every_task():
    assert sorted(CASES) == sorted(TASK_NAMES) and all(WRONG[t] != t for t in WRONG)


def _answers(tmp_path: Path, with_task_type: bool, routed: dict[str, str]) -> dict[str, str]:
    """Run inference over one record per task (TaskType kept or removed), routed as ``routed``; the Answers
    written to predictions.json, by the record's task."""
    path = str(tmp_path / "ds_questions_val.json")
    tasks = list(CASES)
    records, items = [], []
    for i, task in enumerate(tasks):
        task_type, _, _ = CASES[task]
        record = {"ImageName": f"img{i}.png", "Question": f"Q{i}?", "Answer": "", "Split": "val"}
        if with_task_type:
            record["TaskType"] = task_type
        records.append(record)
        items.append(Item(i, path, i, f"img{i}.png||Q{i}?", f"Q{i}?", [f"img{i}.png"],
                          task if with_task_type else None, task_type if with_task_type else None))
    the_plan = Plan(files={path: records}, items=items)
    routes = {i: Route(routed[t], 0.9, routed[t]) for i, t in enumerate(tasks)}
    raw = {f"Q{i}?": CASES[t][1] for i, t in enumerate(tasks)}

    def generate(batch, adapter):
        return [raw[q] for q, _ in batch]

    journal = Journal(tmp_path / "p.journal.jsonl", "x", overwrite=True)
    run(the_plan, generate, routes, journal, list(TASK_NAMES), batch_size=3, progress=False)
    journal.close()
    out = tmp_path / "predictions.json"
    write_outputs(the_plan, journal.done, out)
    written = json.loads(out.read_text(encoding="utf-8"))
    # only Answer changes
    assert [{k: v for k, v in r.items() if k != "Answer"} for r in written] == [
        {k: v for k, v in r.items() if k != "Answer"} for r in records]
    return {t: r["Answer"] for t, r in zip(tasks, written, strict=True)}


@pytest.mark.parametrize("routing", ["right", "wrong"])
def test_a_record_with_a_task_type_gets_its_own_tasks_answer_however_routed(tmp_path, routing):
    routed = {t: t for t in CASES} if routing == "right" else WRONG
    assert _answers(tmp_path, True, routed) == {t: c[2] for t, c in CASES.items()}


def test_a_record_without_a_task_type_is_parsed_as_routed(tmp_path):
    assert _answers(tmp_path, False, {t: t for t in CASES}) == {t: c[2] for t, c in CASES.items()}
    # routed wrong, the routed task's parser reads the raw output (worked by hand from each raw string above)
    assert _answers(tmp_path, False, WRONG) == {
        "classification": "Answer: B. Benign",  # as a report: the text, stripped
        "multi_label_classification": "",  # as detection: no box in "Caries; Impacted tooth"
        "detection": "10",  # as counting: the first whole number of the box
        "instance_detection": "[[1, 2, 3, 4], [5, 6, 7, 8]]",  # as detection: every box, ids dropped
        "counting": "7.0",  # as regression: one decimal
        "regression": "41",  # as counting: a whole number
        # as classification: no option letter, so the text without its final period
        "report_generation": "Findings: heart normal.\nImpression: none",
    }
