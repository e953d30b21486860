"""The task-type registry: every spelling seen in FLARE data and baseline code maps to one canonical name."""

import pytest

from mevlip.tasks import GENERAL_ADAPTER, TASK_NAMES, TASKS, get_task, normalize_task_type

# Spellings from docs/flare_format.md 2.1 (data) and the baselines' guesses (Q25 inference.py task_mapping).
SPELLINGS = {
    "Classification": "classification",
    "classification": "classification",
    " CLASSIFICATION ": "classification",
    "Multi-label Classification": "multi_label_classification",
    "multi-label classification": "multi_label_classification",
    "multi_label_classification": "multi_label_classification",
    "Multilabel classification": "multi_label_classification",
    "detection": "detection",
    "Detection": "detection",
    "instance_detection": "instance_detection",
    "Instance Detection": "instance_detection",
    "instance detection": "instance_detection",
    "Counting": "counting",
    "counting": "counting",
    "Cell Counting": "counting",
    "cell_counting": "counting",
    "regression": "regression",
    "Regression": "regression",
    "Report_Generation": "report_generation",
    "report_generation": "report_generation",
    "Report Generation": "report_generation",
    "report generation": "report_generation",
    "report-generation": "report_generation",
}


@pytest.mark.parametrize("spelling,canonical", sorted(SPELLINGS.items()))
def test_every_spelling_normalises(spelling, canonical):
    assert normalize_task_type(spelling) == canonical
    assert get_task(spelling).name == canonical


def test_seven_tasks_each_reached_by_some_spelling():
    assert len(TASK_NAMES) == 7
    assert set(SPELLINGS.values()) == set(TASK_NAMES)


@pytest.mark.parametrize("bad", ["segmentation", "class", "detect", "", "   ", None, 3])
def test_unknown_spelling_is_a_clear_error(bad):
    with pytest.raises(ValueError) as err:
        normalize_task_type(bad)
    if isinstance(bad, str) and bad.strip():
        assert repr(bad) in str(err.value)
        assert "classification" in str(err.value) and "report_generation" in str(err.value)


def test_adapter_and_dataset_names():
    assert GENERAL_ADAPTER not in TASK_NAMES
    assert TASKS["counting"].adapter == "counting"
    assert TASKS["multi_label_classification"].dataset_entry == "flare_multi_label_classification"
    assert [t.higher_is_better for t in TASKS.values()] == [True, True, True, True, False, False, True]
