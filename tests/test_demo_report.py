"""The demo report's learning verdicts and per-task counts, on hand-made metric dicts (no demo run needed).

Every expected verdict is read off the numbers by hand: ``beats``/``below`` from the point estimates and the
task's direction (MAE: lower is better), ``clearly`` when the constant's value lies outside the model's 95 % CI.
"""

import json
from types import SimpleNamespace

import pytest

from mevlip.demo_report import learning_section, learning_verdict, write_report
from mevlip.tasks import TASK_NAMES, TASKS


def _row(value, ci=None):
    return {"flare25": value, "flare25_ci95": ci, "n": 40}


@pytest.mark.parametrize("model,constant,higher,verdict", [
    (_row(0.70, [0.65, 0.75]), _row(0.50), True, "beats (clearly)"),
    (_row(0.55, [0.45, 0.65]), _row(0.50), True, "beats (within noise)"),
    (_row(0.40, [0.30, 0.45]), _row(0.50), True, "below (clearly)"),
    (_row(0.45, [0.35, 0.55]), _row(0.50), True, "below (within noise)"),
    (_row(0.55, [0.50, 0.60]), _row(0.50), True, "beats (within noise)"),  # the interval's ends are inside
    (_row(0.55), _row(0.50), True, "beats (within noise)"),  # no interval: never "clearly"
    (_row(5.2, [3.6, 7.6]), _row(9.0), False, "beats (clearly)"),  # MAE: lower is better
    (_row(10.0, [8.0, 12.0]), _row(9.0), False, "below (within noise)"),
    (_row(12.0, [10.0, 14.0]), _row(9.0), False, "below (clearly)"),
    (_row(0.9, [0.85, 0.95]), _row(9.0), True, "below (clearly)"),  # the same numbers read as higher-is-better
    (_row("Infinity"), _row(9.0), False, "below (within noise)"),  # an infinite MAE (nothing parsed)
    (_row(0.0, [0.0, 0.0]), _row(0.0), True, "ties"),
    (_row(None), _row(0.5), True, "n/a"),
    (None, _row(0.5), True, "n/a"),
    (_row(0.5), None, True, "n/a"),
])
def test_learning_verdict(model, constant, higher, verdict):
    assert learning_verdict(model, constant, higher) == verdict


#: task -> (constant, ME-VLIP, its CI, expected verdict); one of each verdict, by hand.
PLAN = {
    "classification": (0.13, 0.72, [0.67, 0.78], "beats (clearly)"),
    "multi_label_classification": (0.24, 0.46, [0.40, 0.52], "beats (clearly)"),
    "detection": (0.023, 0.052, [0.022, 0.097], "beats (within noise)"),
    "instance_detection": (0.0, 0.0, [0.0, 0.0], "ties"),
    "counting": (86.3, 90.1, [70.0, 110.0], "below (within noise)"),
    "regression": (9.0, 5.2, [3.6, 7.6], "beats (clearly)"),
    "report_generation": (0.86, 0.55, [0.50, 0.60], "below (clearly)"),
}


def _metrics(mode_value: int) -> dict:
    return {"primary_metrics": {t: _row(PLAN[t][mode_value], PLAN[t][2] if mode_value == 1 else None)
                                for t in TASK_NAMES}}


def test_plan_covers_every_task():
    assert set(PLAN) == set(TASK_NAMES)


def test_learning_section_counts_each_verdict():
    metrics = {"constant": _metrics(0), "router": _metrics(1)}
    validity = {"router": {t: (1.0, 3, 40) for t in TASK_NAMES}}
    lines = learning_section(metrics, validity)
    for task, (_, _, _, verdict) in PLAN.items():
        row = next(line for line in lines if line.startswith(f"| {TASKS[task].title} |"))
        assert row.split(" | ")[4] == verdict, task
    summary = next(line for line in lines if line.startswith("Beats the constant baseline"))
    # beats: classification, multi-label, detection, regression (3 of them clearly); clearly below: report
    assert summary.startswith("Beats the constant baseline on 4 of 7 tasks (3 clearly); clearly below it on 1: "
                              "report_generation.")


def test_learning_section_needs_both_runs():
    assert learning_section({"router": _metrics(1), "constant": None}, {}) == []


def test_results_json_carries_the_table_and_the_verdicts(tmp_path, monkeypatch):
    monkeypatch.setattr("mevlip.demo_report.metric_plot", lambda out, table: None)  # matplotlib: seconds, untested
    for mode, column in (("constant", 0), ("router", 1)):
        folder = tmp_path / "metrics" / mode
        folder.mkdir(parents=True)
        (folder / "metrics_predictions.json").write_text(json.dumps(_metrics(column)), encoding="utf-8")
    settings = SimpleNamespace(scale="tiny", seed=0, preset="paper")
    write_report(tmp_path, {"predict": {"seconds": 3.0, "cached": False}}, settings)
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert results["learning"] == {t: PLAN[t][3] for t in TASK_NAMES}
    assert results["metrics"] == {t: {"constant": PLAN[t][0], "router": PLAN[t][1]} for t in TASK_NAMES}
    assert results["n"] == {t: 40 for t in TASK_NAMES}
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| Regression | mae | 40 | 9.00 | **5.20** |" in text  # MAE: the lower value is bold
