"""benchmarks/mutation.py's choice of what mutmut runs: a full run resumes where it stopped, --survivors and
--sample pick from mutmut's recorded results (``mutants/<file>.meta``)."""

import json

import pytest
from scripts import load_script

SOURCE = '''
def kept(x):
    return x


def left_out():
    pass


class Box:
    def open(self):
        return 1
'''


@pytest.fixture
def mutation(tmp_path, monkeypatch):
    module = load_script("benchmarks/mutation.py")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(SOURCE, encoding="utf-8")
    monkeypatch.setattr(module, "REPO", tmp_path)
    monkeypatch.setattr(module, "GROUPS", {"g": {"pkg/mod.py": {"left_out": "why"}}})
    return module


def write_meta(root, codes):
    meta = root / "mutants" / "pkg" / "mod.py.meta"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes}), encoding="utf-8")


CODES = {
    "pkg.mod.x_kept__mutmut_1": 1,        # killed
    "pkg.mod.x_kept__mutmut_2": None,     # not checked yet
    "pkg.mod.x_kept__mutmut_3": 0,        # survived
    "pkg.mod.x_left_out__mutmut_1": None,  # a function left out of the group: never run
    "pkg.mod.xǁBoxǁopen__mutmut_1": -24,  # timed out
    "pkg.mod.xǁBoxǁopen__mutmut_2": None,
    "pkg.mod.xǁBoxǁopen__mutmut_3": 33,   # reached by no test
}


def test_the_first_full_run_names_the_functions_of_the_group(mutation):
    assert mutation.to_run("g") == ["pkg.mod.x_kept__mutmut_*", "pkg.mod.xǁBoxǁopen__mutmut_*"]


def test_a_full_run_goes_on_with_the_mutants_not_checked_yet(mutation, tmp_path):
    write_meta(tmp_path, CODES)
    assert mutation.to_run("g") == ["pkg.mod.x_kept__mutmut_2", "pkg.mod.xǁBoxǁopen__mutmut_2"]


def test_survivors_are_the_mutants_run_and_not_killed(mutation, tmp_path):
    write_meta(tmp_path, CODES)
    assert sorted(mutation.to_run("g", survivors_only=True)) == [
        "pkg.mod.x_kept__mutmut_3", "pkg.mod.xǁBoxǁopen__mutmut_1", "pkg.mod.xǁBoxǁopen__mutmut_3"]


def test_a_sample_adds_a_share_of_the_unchecked_mutants_to_the_survivors(mutation, tmp_path):
    write_meta(tmp_path, CODES)
    picked = mutation.to_run("g", sample=0.5, seed=3)
    assert picked[:3] == mutation.to_run("g", survivors_only=True)
    assert len(picked) == 4 and picked[3] in {"pkg.mod.x_kept__mutmut_2", "pkg.mod.xǁBoxǁopen__mutmut_2"}
    assert mutation.to_run("g", sample=0.5, seed=3) == picked  # the draw is the seed's


def test_timeouts_are_run_again_alone_and_only_a_second_timeout_stands(mutation, tmp_path, monkeypatch):
    write_meta(tmp_path, CODES)
    meta = tmp_path / "mutants" / "pkg" / "mod.py.meta"
    calls = []

    def fake_run(cmd, cwd, env):
        calls.append(cmd)
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        if len(calls) == 1:  # the run: one mutant killed, one hangs
            codes.update({"pkg.mod.x_kept__mutmut_2": 1, "pkg.mod.xǁBoxǁopen__mutmut_2": -24})
        else:  # alone: the earlier timeout is killed in time, the new one hangs again
            codes.update({"pkg.mod.xǁBoxǁopen__mutmut_1": 1})
        meta.write_text(json.dumps({"exit_code_by_key": codes}), encoding="utf-8")
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(mutation.subprocess, "run", fake_run)
    result = mutation.run_group("g", survivors_only=False, max_children=2)
    assert calls[0][calls[0].index("--max-children") + 1] == "2"
    assert calls[0][-2:] == ["pkg.mod.x_kept__mutmut_2", "pkg.mod.xǁBoxǁopen__mutmut_2"]
    assert calls[1][calls[1].index("--max-children"):] == [
        "--max-children", "1", "pkg.mod.xǁBoxǁopen__mutmut_1", "pkg.mod.xǁBoxǁopen__mutmut_2"]
    assert (result["names"], result["timeouts_rerun"], result["timeouts_confirmed"]) == (2, 2, 1)
    counts = mutation.module_counts("pkg/mod.py", {"left_out": "why"})
    assert (counts["killed"], counts["timeout"], counts["survived"], counts["no tests"]) == (3, 1, 1, 1)


def test_a_group_part_way_through_counts_what_ran(mutation, tmp_path):
    """Mid-run, the score is over the mutants checked so far: killed + timeout of killed, timeout, survived and
    reached-by-no-test (here 1 + 1 of 4; the two not checked yet and the left-out function are not counted)."""
    write_meta(tmp_path, CODES)
    counts = mutation.module_counts("pkg/mod.py", {"left_out": "why"})
    assert (counts["mutants"], counts["checked"], counts["not checked"], counts["score"]) == (6, 4, 2, 0.5)
    [group] = mutation.report({}, {})["groups"].values()
    assert (group["mutants"], group["checked"], group["score"]) == (6, 4, 0.5)


def test_a_run_without_timeouts_runs_mutmut_once(mutation, tmp_path, monkeypatch):
    write_meta(tmp_path, {k: v for k, v in CODES.items() if v != -24})
    calls = []
    monkeypatch.setattr(mutation.subprocess, "run",
                        lambda cmd, cwd, env: calls.append(cmd) or type("Done", (), {"returncode": 0})())
    assert mutation.run_group("g", survivors_only=True)["timeouts_rerun"] == 0
    assert len(calls) == 1
