"""The demo report's learning verdicts and per-task counts, on hand-made metric dicts (no demo run needed).

Every expected verdict is read off the numbers by hand: ``beats``/``below`` from the point estimates and the
task's direction (MAE: lower is better), ``clearly`` when the constant's value lies outside the model's 95 % CI.
"""

import json
from types import SimpleNamespace

import pytest

from mevlip.demo.report import learning_section, learning_verdict, write_report
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
    monkeypatch.setattr("mevlip.demo.report.metric_plot", lambda out, table: None)  # matplotlib: seconds, untested
    for mode, column in (("constant", 0), ("router", 1)):
        folder = tmp_path / "metrics" / mode
        folder.mkdir(parents=True)
        (folder / "metrics_predictions.json").write_text(json.dumps(_metrics(column)), encoding="utf-8")
    settings = SimpleNamespace(scale="tiny", seed=0, data_seed=0, preset="paper", jobs=2, threads=1,
                               pretrain_threads=2)
    write_report(tmp_path, {"predict": {"seconds": 3.0, "cached": False}}, settings)
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert results["learning"] == {t: PLAN[t][3] for t in TASK_NAMES}
    assert results["metrics"] == {t: {"constant": PLAN[t][0], "router": PLAN[t][1]} for t in TASK_NAMES}
    assert results["n"] == {t: 40 for t in TASK_NAMES}
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| Regression | mae | 40 | 9.00 | **5.20** |" in text  # MAE: the lower value is bold


def _results(seed, cls, counting, learning):
    """A hand-made results.json of one seed: two tasks filled, the rest absent."""
    return {"preset": "paper", "scale": "small", "seed": seed, "data_seed": 0, "threads": 1, "pretrain_threads": 2,
            "machine": "test CPU, 2 cores", "wall_seconds": 600.0,
            "metrics": {"classification": {"constant": 0.1, "router": cls},
                        "counting": {"constant": 86.0, "router": counting}},
            "learning": learning}


def test_seeds_summary_is_mean_min_max_and_counts_every_seeds_verdicts(tmp_path):
    from mevlip.demo.report import merge_seeds, write_seeds_summary

    good = {t: "beats (clearly)" for t in TASK_NAMES[:5]} | {t: "ties" for t in TASK_NAMES[5:]}
    bad = dict(good, counting="below (within noise)", classification="beats (within noise)")
    folders = {}
    for seed, cls, counting, learning in ((0, 0.60, 70.0, good), (1, 0.50, 90.0, bad), (2, 0.70, 80.0, good)):
        folder = tmp_path / f"s{seed}"
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps(_results(seed, cls, counting, learning)))
        folders[seed] = folder
    md = write_seeds_summary(tmp_path, folders, wall_seconds=1800.0)
    doc = json.loads((tmp_path / "seeds.json").read_text())
    assert doc["summary"]["classification"]["router"] == pytest.approx({"mean": 0.6, "min": 0.5, "max": 0.7, "n": 3})
    assert doc["summary"]["counting"]["router"] == pytest.approx({"mean": 80.0, "min": 70.0, "max": 90.0, "n": 3})
    assert doc["summary"]["counting"]["constant"] == pytest.approx({"mean": 86.0, "min": 86.0, "max": 86.0, "n": 3})
    # seed 1: of the five beaten clearly, classification only within noise and counting below: 3 clearly, 1 below
    assert [(v["seed"], v["beats_clearly"], v["below"]) for v in doc["verdicts"]] == [(0, 5, 0), (1, 3, 1), (2, 5, 0)]
    assert doc["verdict_holds"] is False and "seed 1: 3 clearly, 1 below" in doc["verdict_line"]
    text = md.read_text()
    assert "| Classification | balanced_accuracy | 0.100 [0.100, 0.100] | 0.600 [0.500, 0.700] |" in text
    assert "| Counting | mae | 86.00 [86.00, 86.00] | 80.00 [70.00, 90.00] |" in text
    assert "| **beats clearly / below** | 5 / 0 | 3 / 1 | 5 / 0 |" in text
    # runs of another machine merge into one range; seeds 0 and 2 alone hold the verdict
    other = tmp_path / "other.json"
    other.write_text(json.dumps(_results(0, 0.40, 100.0, good) | {"machine": "other CPU, 4 cores"}))
    merged = merge_seeds([tmp_path / "seeds.json", other], tmp_path / "merged")
    pooled = json.loads(merged.with_suffix(".json").read_text())
    assert pooled["summary"]["classification"]["router"]["min"] == 0.40 and len(pooled["runs"]) == 4
    assert pooled["machine"] == "other CPU, 4 cores + test CPU, 2 cores"
    only_good = tmp_path / "good.json"
    only_good.write_text(json.dumps({"runs": [doc["runs"][0], doc["runs"][2]], "preset": "paper", "scale": "small"}))
    assert json.loads(merge_seeds([only_good], tmp_path / "m2").with_suffix(".json").read_text())["verdict_holds"]


def test_merge_refuses_mixed_presets_and_compare_gives_differences(tmp_path):
    from mevlip.demo.report import compare_runs, main, merge_seeds

    a, b = _results(0, 0.60, 70.0, {}), _results(0, 0.55, 72.5, {}) | {"threads": 2}
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b | {"preset": "ours"}))
    with pytest.raises(ValueError, match="different presets"):
        merge_seeds([tmp_path / "a.json", tmp_path / "b.json"], tmp_path / "m")
    rows = {(r["task"], r["mode"]): r["diff"] for r in compare_runs(a, b)}
    assert rows == pytest.approx({("classification", "constant"): 0.0, ("classification", "router"): -0.05,
                                  ("counting", "constant"): 0.0, ("counting", "router"): 2.5})
    from mevlip.cli import UserError

    with pytest.raises(UserError, match="missing.json: no such file"):
        main(["--compare", str(tmp_path / "a.json"), str(tmp_path / "missing.json")])


def test_a_one_seed_report_places_its_figures_in_the_reference_range(tmp_path):
    from mevlip.demo.report import reference_section, seeds_document

    ref = seeds_document([_results(0, 0.60, 70.0, {}), _results(1, 0.70, 90.0, {})], "paper", "small")
    path = tmp_path / "demo_seeds.json"
    path.write_text(json.dumps(ref))
    settings = SimpleNamespace(preset="paper", scale="small")
    table = {"classification": {"router": 0.65, "constant": 0.1}, "counting": {"router": 95.0, "constant": 86.0}}
    text = "\n".join(reference_section(table, settings, path))
    assert "| Classification | ME-VLIP (with TC) | 0.650 | 0.650 [0.600, 0.700] | inside |" in text
    assert "| Counting | ME-VLIP (with TC) | 95.00 | 80.00 [70.00, 90.00] | **outside** |" in text
    assert "1 figure(s) outside the reference range." in text
    assert reference_section(table, SimpleNamespace(preset="ours", scale="small"), path) == []  # not comparable
