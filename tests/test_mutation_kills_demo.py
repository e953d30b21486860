"""Demo verdict cases the mutation run (``make mutation``, docs/mutation.md) showed untested.

Every expected value is read off hand-made inputs: shares and counts by counting, means by hand, verdict lines as
the report words them.
"""

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from mevlip.demo.report import (
    MODE_TITLES,
    REFERENCE,
    _fmt,
    _num,
    _run_entry,
    ci95,
    compare_runs,
    format_validity,
    learning_section,
    learning_verdict,
    reference_section,
    seeds_document,
    summarise_runs,
)
from mevlip.tasks import TASK_NAMES


def test_number_and_cell_formats():
    assert _num("Infinity") == math.inf and _num("inf") == math.inf
    assert _num(3) == 3.0 and isinstance(_num(3), float) and _num(0.25) == 0.25
    assert _num("0.5") is None and _num(None) is None
    assert _fmt(None, True) == "n/a" and _fmt("x", True) == "x" and _fmt(math.inf, False) == "inf"
    assert _fmt(0.12345, True) == "0.123" and _fmt(12.3456, False) == "12.35" and _fmt(2, False) == "2.00"


def test_format_validity_counts_parsable_and_distinct_answers():
    predictions = [
        {"TaskType": "Classification", "Answer": "B"},
        {"TaskType": "classification", "Answer": "B"},
        {"TaskType": "Classification", "Answer": ""},  # does not parse
        {"TaskType": "Counting", "Answer": "12"},
        {"TaskType": "counting", "Answer": "many"},  # does not parse
        {"TaskType": "Detection"},  # no Answer at all
    ]
    assert format_validity(predictions) == {"classification": (2 / 3, 2, 3), "counting": (0.5, 2, 2),
                                            "detection": (0.0, 1, 1)}


def _metrics(values: dict[str, tuple]) -> dict:
    return {"primary_metrics": {t: {"flare25": v, "flare25_ci95": ci, "n": 10} for t, (v, ci) in values.items()}}


def test_learning_section_rows_cells_and_summary():
    constant = _metrics({"classification": (0.5, None), "counting": (9.0, None), "detection": (0.1, None)})
    router = _metrics({"classification": (0.8, [0.7, 0.9]), "counting": (12.0, [10.5, 13.0]),
                       "detection": (0.2, None)})
    validity = {"router": {"classification": (0.5, 2, 10), "counting": (1.0, 7, 10)}}
    lines = learning_section({"constant": constant, "router": router}, validity)
    assert lines[0] == "## Did training learn? (ME-VLIP with TC against the constant baseline)"
    assert "| Classification | 0.500 | 0.800 | [0.700, 0.900] | beats (clearly) | 50% |" in lines
    assert "| Counting | 9.00 | 12.00 | [10.50, 13.00] | below (clearly) | 100% |" in lines
    assert "| Detection | 0.100 | 0.200 | n/a | beats (within noise) | n/a |" in lines
    assert ("Beats the constant baseline on 2 of 3 tasks (1 clearly); clearly below it on 1: counting. 'Clearly': "
            "the constant's value lies outside the model's bootstrap 95 % interval.") in lines
    general = learning_section({"constant": constant, "general": router}, {}, mode="general")
    assert any(line.startswith("Beats the constant baseline on 2 of 3 tasks (1 clearly); clearly below it on 1:")
               for line in general)
    only_beats = learning_section({"constant": _metrics({"classification": (0.5, None)}),
                                   "router": _metrics({"classification": (0.8, [0.7, 0.9])})}, {})
    assert any(line.startswith("Beats the constant baseline on 1 of 1 tasks (1 clearly); clearly below it on 0. ")
               for line in only_beats)
    assert learning_section({"constant": constant}, {}) == []


def test_reference_section_range_edges_and_columns(tmp_path):
    ref = {"preset": "paper", "scale": "small", "machine": "ref CPU", "runs": [{}, {}, {}],
           "summary": {"classification": {"general": {"mean": 0.5, "min": 0.4, "max": 0.6},
                                          "constant": {"mean": 0.1, "min": 0.1, "max": 0.1},
                                          "untrained": {"mean": 0.2, "min": 0.2, "max": 0.2}}}}
    path = tmp_path / "ref.json"
    path.write_text(__import__("json").dumps(ref))
    table = {"classification": {"general": 0.6, "constant": 0.1 + 1e-12, "untrained": 0.9}}
    lines = reference_section(table, SimpleNamespace(preset="paper", scale="small"), path)
    assert lines[0] == f"## Against the reference range (3 seeds on ref CPU, `{path}`)"
    # the range's own ends are inside (a float tolerance); the untrained column is not compared
    assert "| Classification | general adapter | 0.600 | 0.500 [0.400, 0.600] | inside |" in lines
    assert "| Classification | constant baseline | 0.100 | 0.100 [0.100, 0.100] | inside |" in lines
    assert not any("untrained" in line for line in lines)
    assert lines[-3:] == ["", "Every figure lies inside the reference range.", ""]  # a paragraph of its own
    # the lower end's tolerance itself is still inside
    edge = reference_section({"classification": {"general": 0.4 - 1e-9}},
                             SimpleNamespace(preset="paper", scale="small"), path)
    assert "Every figure lies inside the reference range." in edge
    assert reference_section(table, SimpleNamespace(preset="paper", scale="tiny"), path) == []
    assert reference_section(table, SimpleNamespace(preset="paper", scale="small"), tmp_path / "none.json") == []
    below = reference_section({"classification": {"general": 0.4 - 1e-6}},
                              SimpleNamespace(preset="paper", scale="small"), path)
    assert "| Classification | general adapter | 0.400 | 0.500 [0.400, 0.600] | **outside** |" in below


def _run(seed, metrics, learning=None, **extra):
    return {"seed": seed, "metrics": metrics, "learning": learning or {}, **extra}


def test_summaries_skip_missing_and_infinite_values():
    runs = [_run(0, {"counting": {"router": 10.0, "general": math.inf}}),
            _run(1, {"counting": {"router": 20.0, "general": "n/a"}}),
            _run(2, {"counting": {"router": 60.0}, "regression": {"constant": 9.0}})]
    summary = summarise_runs(runs)
    assert summary == {"counting": {"router": {"mean": 30.0, "min": 10.0, "max": 60.0, "n": 3}},
                       "regression": {"constant": {"mean": 9.0, "min": 9.0, "max": 9.0, "n": 1}}}
    rows = compare_runs(runs[0], runs[2])
    assert rows == [{"task": "counting", "mode": "router", "a": 10.0, "b": 60.0, "diff": 50.0}]


def test_seeds_document_verdict_counts_and_line():
    five = {t: "beats (clearly)" for t in TASK_NAMES[:5]}
    runs = [_run(0, {}, five | {TASK_NAMES[5]: "below (within noise)"}, machine="B", n={"counting": 3}),
            _run(3, {}, five, machine="A"), _run(4, {}, dict(list(five.items())[:4]), machine="A")]
    doc = seeds_document(runs, "paper", "small", wall_seconds=60.0)
    assert doc["verdicts"] == [{"seed": 0, "beats_clearly": 5, "below": 1}, {"seed": 3, "beats_clearly": 5, "below": 0},
                               {"seed": 4, "beats_clearly": 4, "below": 0}]
    assert doc["verdict_holds"] is False
    assert doc["verdict_line"] == ("The verdict does NOT hold in every run (>= 5 tasks beaten clearly and none below): "
                                   "seed 0: 5 clearly, 1 below; seed 3: 5 clearly, 0 below; seed 4: 4 clearly, 0 below")
    assert (doc["preset"], doc["scale"], doc["machine"], doc["wall_seconds"], doc["n"]) == \
        ("paper", "small", "A + B", 60.0, {"counting": 3})
    holds = seeds_document([runs[1]], "ours", "tiny")
    assert holds["verdict_holds"] is True and holds["verdict_line"] == (
        "In every run ME-VLIP beats the constant clearly on at least 5 of 7 tasks and is below it on none.")
    assert seeds_document([], "paper", "small")["n"] is None


def test_ci95_and_run_entries():
    metrics = {"router": {"primary_metrics": {"counting": {"flare25_ci95": [1, "Infinity"]}, "other_task": {
        "flare25_ci95": [0, 1]}, "regression": {"flare25_ci95": None}}}, "constant": None, "general": {}}
    result = ci95(metrics)
    assert result["counting"] == {"router": [1.0, math.inf]}
    assert set(result) == set(TASK_NAMES) and result["regression"] == {} and result["classification"] == {}
    results = {k: k for k in ("seed", "data_seed", "threads", "pretrain_threads", "machine", "wall_seconds",
                              "metrics", "n", "learning")} | {"preset": "paper"}
    assert _run_entry(results) == {k: v for k, v in results.items() if k != "preset"}
    assert _run_entry(results, Path("runs/s0"))["folder"] == "runs/s0"
    assert set(MODE_TITLES) >= {"constant", "general", "router"}


@pytest.mark.parametrize("value,higher,text", [(0.5, True, "0.500"), (0.5, False, "0.50")])
def test_fmt_direction(value, higher, text):
    assert _fmt(value, higher) == text


# ------------------------------------------------------------------------------------------ 20 % sample survivors
def test_learning_section_skips_a_task_one_run_lacks_and_keeps_its_layout():
    constant = _metrics({"classification": (0.5, None)})
    router = _metrics({"classification": (0.8, [0.7, 0.9]), "counting": (3.0, [2.0, 4.0])})  # no constant counting
    lines = learning_section({"constant": constant, "router": router}, {})
    assert lines[:4] == ["## Did training learn? (ME-VLIP with TC against the constant baseline)", "",
                         "| task | constant | ME-VLIP | its 95 % CI | verdict | answers in format |",
                         "|---|---|---|---|---|---|"]
    assert lines[4].startswith("| Classification |") and len(lines) == 8
    assert lines[5] == "" and lines[6].startswith("Beats the constant baseline on 1 of 1 tasks") and lines[7] == ""


def test_reference_section_header_and_outside_count(tmp_path):
    ref = {"preset": "paper", "scale": "small", "machine": "m", "runs": [{}],
           "summary": {"classification": {"general": {"mean": 0.5, "min": 0.4, "max": 0.6},
                                          "constant": {"mean": 0.1, "min": 0.1, "max": 0.1}}}}
    path = tmp_path / "ref.json"
    path.write_text(__import__("json").dumps(ref))
    lines = reference_section({"classification": {"general": 0.7, "constant": 0.2}},
                              SimpleNamespace(preset="paper", scale="small"), path)
    assert lines[2:4] == ["| task | column | this run | reference mean [min, max] | |", "|---|---|---|---|---|"]
    assert lines[-2:] == ["2 figure(s) outside the reference range.", ""]


# ----------------------------------------------------------------------------------------------- full run survivors
# (2026-12-03): each case below failed before on a mutant that every other test let through.
def test_a_baseline_on_the_upper_end_of_the_interval_is_within_noise():
    # lower is better: 0.75 beats 0.8, and 0.8 is the interval's own upper end, so inside it: not "clearly"
    assert learning_verdict({"flare25": 0.75, "flare25_ci95": [0.7, 0.8]}, {"flare25": 0.8}, False) \
        == "beats (within noise)"
    assert learning_verdict({"flare25": 0.75, "flare25_ci95": [0.7, 0.79]}, {"flare25": 0.8}, False) \
        == "beats (clearly)"


def test_learning_summary_names_every_task_clearly_below():
    constant = _metrics({"counting": (9.0, None), "regression": (4.0, None)})
    router = _metrics({"counting": (12.0, [10.5, 13.0]), "regression": (6.0, [5.0, 7.0])})
    lines = learning_section({"constant": constant, "router": router}, {})
    assert lines[-2] == ("Beats the constant baseline on 0 of 2 tasks (0 clearly); clearly below it on 2: counting, "
                         "regression. 'Clearly': the constant's value lies outside the model's bootstrap 95 % "
                         "interval.")


def test_reference_section_names_a_reference_inside_the_repository_by_its_relative_path():
    runs = len(__import__("json").loads(REFERENCE.read_text(encoding="utf-8"))["runs"])  # the committed reference
    lines = reference_section({"classification": {"general": 0.5}}, SimpleNamespace(preset="paper", scale="small"))
    assert lines[0].endswith(", `benchmarks/results/demo_seeds.json`)") and lines[0].startswith(
        f"## Against the reference range ({runs} seeds on ")
    assert lines[1] == ""


def test_reference_section_upper_tolerance_is_inside(tmp_path):
    ref = {"preset": "paper", "scale": "small", "machine": "m", "runs": [{}],
           "summary": {"classification": {"general": {"mean": 0.5, "min": 0.4, "max": 0.6}}}}
    path = tmp_path / "ref.json"
    path.write_text(__import__("json").dumps(ref))
    lines = reference_section({"classification": {"general": 0.6 + 1e-9}}, SimpleNamespace(preset="paper",
                                                                                          scale="small"), path)
    assert "| Classification | general adapter | 0.600 | 0.500 [0.400, 0.600] | inside |" in lines
