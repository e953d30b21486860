"""benchmarks/check_readme_figures.py on a crafted README and crafted result files, and on the repository's own READMEs
against the committed result files (``benchmarks/results/``)."""

import json

import pytest
from scripts import load_script

from mevlip.demo.report import MODE_TITLES
from mevlip.tasks import TASK_NAMES, TASKS

check = load_script("benchmarks/check_readme_figures.py")

BENCH = {"command": "python benchmarks/bench_router.py", "bi-encoder": {"speedup": 8.04, "questions": 2000,
                                                                         "same_top_label": "2000/2000"},
         "runs": [{"accuracy": 0.98148}]}
STATS_LINE = "[router] 10 unique questions (2 duplicates dropped) -> train 9, test 1"


def _readme(speedup="8.0", questions="2,000", label="2000/2000", accuracy="98.1", table_cell="0.716",
            beats="6 of 7", extra_row=""):
    header = "| task | metric | n | " + " | ".join(MODE_TITLES[m] for m in ("constant", "router")) + " |"
    # the demo report's precision: 3 decimals, 2 for MAE (lower is better)
    cells = {t: ("0.100", "**0.200**") if TASKS[t].higher_is_better else ("**0.10**", "0.20") for t in TASK_NAMES}
    cells["classification"] = ("0.100", table_cell)
    rows = "\n".join(f"| {TASKS[t].title} | m | 40 | {cells[t][0]} | {cells[t][1]} |" for t in TASK_NAMES)
    return f"""# X

{header}
|---|---|---|---|---|
{rows}

It beats the baseline on {beats} tasks.

## Benchmarks (crafted)

| command | what | ours | ratio |
|---|---|---|---|
| `bench_router.py` | {questions}<!--fig benchmarks/results/bench_router.json bi-encoder.questions--> \
questions | {label}<!--fig benchmarks/results/bench_router.json bi-encoder.same_top_label--> same | \
{speedup}<!--fig benchmarks/results/bench_router.json bi-encoder.speedup-->x |
{extra_row}
## Router

Paraphrases: {accuracy}<!--fig benchmarks/results/bench_router.json runs.0.accuracy*100-->%.

<!--fig-block demo_output/data/prepare_stats.json prepare_summary-->
```
{STATS_LINE}
...
```
"""


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "bench_router.json").write_text(json.dumps(BENCH))
    (tmp_path / "demo_output" / "data").mkdir(parents=True)
    stats = {"parts": {}, "router": {"unique_questions": 10, "duplicates": 2, "train": 9, "test": 1}}
    (tmp_path / "demo_output" / "data" / "prepare_stats.json").write_text(json.dumps(stats))
    results = {"metrics": {t: {"constant": 0.1, "router": 0.716 if t == "classification" else 0.2}
                           for t in TASK_NAMES},
               "n": {t: 40 for t in TASK_NAMES},
               "learning": {t: "ties" if t == "instance_detection" else "beats (clearly)" for t in TASK_NAMES}}
    (tmp_path / "demo_output" / "results.json").write_text(json.dumps(results))
    return tmp_path


def _run(repo, text):
    (repo / "README.md").write_text(text, encoding="utf-8")
    return check.check(repo, ("README.md",))


def test_every_figure_that_matches_passes(repo):
    report = _run(repo, _readme())
    assert report.differ == [] and report.unchecked == []
    # 3 marked figures + 1 percentage, 1 printed line, 7 x (n + 2 modes) table cells, 1 "beats" sentence
    assert len(report.ok) == 4 + 1 + 7 * 3 + 1
    assert check.main(["--root", str(repo), "--readmes", "README.md"]) == 0


@pytest.mark.parametrize("change,needle", [
    ({"speedup": "12.1"}, "bi-encoder.speedup gives '8.0'"),
    ({"speedup": "8.04"}, None),  # more decimals than the README needs are still the same figure
    ({"speedup": "8.1"}, "gives '8.0'"),
    ({"speedup": "7.9-8.1"}, None),  # a machine-dependent figure: the range seen across runs holds 8.04
    ({"speedup": "8.1-12.1"}, "gives '8.0-12.1'"),  # outside the range: the widened range would hold it
    ({"speedup": "8.05-9"}, "gives '8.04-9.00'"),
    ({"speedup": "~8"}, "gives '8.04'"),
    ({"questions": "2000"}, None),
    ({"questions": "1,999"}, "gives '2,000'"),
    ({"label": "199/200"}, "gives '2000/2000'"),
    ({"accuracy": "100"}, "gives '98'"),
    ({"accuracy": "98.15"}, None),  # 98.148 at two decimals
    ({"table_cell": "**0.716**"}, None),
    ({"table_cell": "0.72"}, "results.json gives '0.716'"),
    ({"beats": "7 of 7"}, "results.json has 6 of 7"),
    ({"extra_row": "| `x` | y | 12 ms | 3x |\n"}, "unmarked figure in '12 ms'"),
])
def test_a_changed_figure_fails(repo, change, needle):
    report = _run(repo, _readme(**change))
    if needle is None:
        assert report.differ == []
    else:
        assert any(needle in line for line in report.differ), report.differ
        assert check.main(["--root", str(repo), "--readmes", "README.md"]) == 1


def test_a_printed_line_that_the_run_does_not_print_fails(repo):
    report = _run(repo, _readme().replace(STATS_LINE, STATS_LINE.replace("train 9", "train 8")))
    assert len(report.differ) == 1 and "is not printed for demo_output/data/prepare_stats.json" in report.differ[0]


def test_missing_result_files_are_listed_not_passed(repo):
    (repo / "benchmarks" / "results" / "bench_router.json").unlink()
    (repo / "demo_output" / "results.json").unlink()
    report = _run(repo, _readme())
    assert report.differ == []
    assert sum("bench_router.json (absent)" in line for line in report.unchecked) == 4
    assert any("demo table needs demo_output/results.json" in line for line in report.unchecked)
    assert check.main(["--root", str(repo), "--readmes", "README.md"]) == 0
    assert check.main(["--root", str(repo), "--readmes", "README.md", "--require_all"]) == 1


def test_a_key_the_file_lacks_fails(repo):
    report = _run(repo, _readme().replace("bi-encoder.speedup", "uni-encoder.speedup"))
    assert any("has no key 'uni-encoder.speedup'" in line for line in report.differ)


def test_a_seeds_table_is_checked_against_the_committed_seeds_reference(repo):
    """Cells written `mean [min, max]` come from benchmarks/results/demo_seeds.json, not from one demo run."""
    summary = {t: {"constant": {"mean": 0.1, "min": 0.1, "max": 0.1},
                   "router": {"mean": 0.6, "min": 0.55, "max": 0.65}} for t in TASK_NAMES}
    (repo / "benchmarks" / "results" / "demo_seeds.json").write_text(json.dumps(
        {"summary": summary, "n": {t: 40 for t in TASK_NAMES}, "runs": []}))
    header = "| task | metric | n | " + " | ".join(MODE_TITLES[m] for m in ("constant", "router")) + " |"

    def readme(router_cell):
        rows = []
        for t in TASK_NAMES:  # as seeds.md writes them: 3 decimals, 2 for MAE
            f = "{:.3f}" if TASKS[t].higher_is_better else "{:.2f}"
            cell = router_cell if t == "classification" else \
                f"{f.format(0.6)} [{f.format(0.55)}, {f.format(0.65)}]"
            rows.append(f"| {TASKS[t].title} | m | 40 | {f.format(0.1)} [{f.format(0.1)}, {f.format(0.1)}] | {cell} |")
        return f"# X\n\n{header}\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n"

    report = _run(repo, readme("0.600 [0.550, 0.650]"))
    assert not report.differ and sum("Classification" in line for line in report.ok) == 3  # n, constant, router
    report = _run(repo, readme("0.600 [0.500, 0.650]"))  # a min the reference does not have
    assert report.differ == ["README.md:5: Classification / ME-VLIP (with TC): '0.600 [0.500, 0.650]' but "
                             "demo_seeds.json gives '0.600 [0.550, 0.650]'"]
    (repo / "benchmarks" / "results" / "demo_seeds.json").unlink()
    report = _run(repo, readme("0.600 [0.550, 0.650]"))
    assert any("benchmarks/results/demo_seeds.json (absent" in line for line in report.unchecked)


def test_update_rewrites_the_marked_figures_that_differ_and_nothing_else(repo):
    """After a rerun, --update writes the run's figures into the README (at the README's precision; a range is
    widened to include the number); blocks, the demo table and unmarked text stay as they were, still checked."""
    readme = _readme(speedup="12.1", questions="1,999", accuracy="100.0", table_cell="0.72").replace(
        STATS_LINE, STATS_LINE.replace("train 9", "train 8"))
    (repo / "README.md").write_text(readme.replace("It beats", "It (12.1x) beats"), encoding="utf-8")
    assert check.main(["--root", str(repo), "--readmes", "README.md", "--update"]) == 1  # block, table still differ
    text = (repo / "README.md").read_text(encoding="utf-8")
    assert "| `bench_router.py` | 2,000<!--fig benchmarks" in text
    assert "same | 8.0<!--fig benchmarks/results/bench_router.json bi-encoder.speedup-->x |" in text
    assert "Paraphrases: 98.1<!--fig" in text and "It (12.1x) beats" in text and "train 8" in text
    assert f"| {TASKS['classification'].title} | m | 40 | 0.100 | 0.72 |" in text
    report = check.check(repo, ("README.md",))
    assert len(report.differ) == 2 and all("12.1" not in line for line in report.differ)
    ranged = _readme(speedup="9.5-12.1", accuracy="~98")
    (repo / "README.md").write_text(ranged, encoding="utf-8")
    check.check(repo, ("README.md",), update=True)
    assert (repo / "README.md").read_text(encoding="utf-8") == ranged.replace("9.5-12.1", "8.0-12.1").replace(
        "~98<", "98.1<")


def test_the_readmes_agree_with_the_committed_result_files():
    """Every figure quoted from a committed result file equals it (or lies in its quoted range); only the figures
    that need ``make demo``'s output may go unchecked (the demo table is checked against a missing file here, so a
    local demo_output/ of another seed cannot fail this)."""
    report = check.check(check.REPO, demo_results="no/demo_output/results.json")
    assert report.differ == []
    assert [u for u in report.unchecked if "demo_output" not in u] == []
    assert len(report.ok) >= 100  # 152 without demo_output/, at the time of writing
