"""Metrics cases the mutation run (``make mutation``, docs/mutation.md) showed untested.

Expected values are worked out by hand (means, counts, the organisers' formulas as written in
``shared/flare_format.md`` and the docstrings) or come from an independent implementation named in the test.
"""

import json as _json
import logging
import shutil

import pytest
from conftest_metrics import ground_truth_records

import mevlip.metrics.green_llm as green_llm
from mevlip.flare import discover
from mevlip.metrics.evaluate import EvalConfig, evaluate, score_samples
from mevlip.metrics.records import MatchResult, Sample, load_ground_truth


class _FakeJudge:
    """Stands in for the LLM judge: records what evaluation asks and answers fixed scores (the unit here is
    evaluation's use of the judge, not the model, which tests/test_metrics_green.py runs for real)."""

    calls: list = []

    def __init__(self, model, batch_size, max_length, max_new_tokens):
        self.calls.append(("init", model, batch_size, max_length, max_new_tokens))

    def score(self, references, candidates, progress=False):
        self.calls.append(("score", list(references), list(candidates)))
        return [0.25, 0.75][: len(references)]


def test_llm_green_scores_only_report_samples_and_lands_on_them(monkeypatch):
    monkeypatch.setattr(green_llm, "GreenJudge", _FakeJudge)
    _FakeJudge.calls = []
    samples = [Sample("k0", "iu", "validation-public", "report_generation", "Heart normal.", "Heart is normal.", "ok"),
               Sample("k1", "busi", "validation-public", "classification", "B", "B", "ok"),
               Sample("k2", "iu", "validation-hidden", "report_generation", "No effusion.", ["No", "effusion."],
                      "ok")]
    config = EvalConfig("root", "pred.json", bootstrap=0, green_model="judge-dir", green_batch_size=3,
                        green_max_length=99, green_max_new_tokens=7)
    profiles, rows = score_samples(MatchResult(samples=samples), config)
    # the raw texts go to the judge (a list prediction as JSON text, as the organisers' as_text writes it)
    asked = ("score", ["Heart normal.", "No effusion."], ["Heart is normal.", '["No", "effusion."]'])
    assert _FakeJudge.calls == [("init", "judge-dir", 3, 99, 7), asked]
    assert [r["flare25"].get("green_llm") for r in rows] == [0.25, None, 0.75]
    assert [r["strict"].get("green_llm") for r in rows] == [0.25, None, 0.75]
    for profile in ("flare25", "strict"):
        assert profiles[profile]["tasks"]["report_generation"]["metrics"]["green_llm"] == pytest.approx(0.5)
    _FakeJudge.calls = []
    score_samples(MatchResult(samples=samples[1:2]), config)  # no report sample: the judge is never loaded
    assert _FakeJudge.calls == []
    score_samples(MatchResult(samples=samples), EvalConfig("root", "pred.json", bootstrap=0))
    assert _FakeJudge.calls == []


# ----------------------------------------------------------------------------- evaluate() on a whole prediction file


def test_evaluate_logs_its_counts_names_the_file_of_a_bad_prediction_and_says_what_the_rule_is(
        mini_flare_tiny, tmp_path, caplog):
    records = ground_truth_records(mini_flare_tiny)
    pred = tmp_path / "predictions.json"
    pred.write_text(_json.dumps([*records, "not a record"]), encoding="utf-8")
    with caplog.at_level(logging.INFO):
        results, _ = evaluate(EvalConfig(str(mini_flare_tiny), str(pred), bootstrap=0))
    n = len(records)
    # every GT record answered, one more prediction that is no record: n + 1 predictions, n matched
    assert f"{n} ground-truth records, {n + 1} predictions, {n} matched, 0 missing, 0 unknown" in caplog.messages
    # only an invalid record is wrong: still warned, naming the predictions file
    assert f"{pred}: 0 missing, 0 unknown, 0 duplicate keys, 1 invalid records" in caplog.messages
    assert results["matching"]["invalid_predictions"]["items"] == [
        f"{pred} record {n}: needs a JSON object with ImageName and Question, got 'not a record'"]
    assert results["report_generation_note"].startswith("green_flare25_rule is the organisers' rule-based keyword")


def test_ground_truth_problems_of_every_file_are_kept(mini_flare_tiny, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(mini_flare_tiny / "validation-public", root / "validation-public")
    files = discover(root, ["validation-public"])[:2]
    for qfile in files:  # one record that is not a JSON object at the end of two files
        data = _json.loads(qfile.path.read_text(encoding="utf-8"))
        qfile.path.write_text(_json.dumps([*data, 7]), encoding="utf-8")
    _, problems = load_ground_truth(root, ("validation-public",))
    assert len(problems) == 2
    assert [sum(str(q.path) in p for p in problems) for q in files] == [1, 1]


def test_an_unparsable_count_leaves_no_sample_and_the_flare25_mae_is_infinite():
    # flare25 (Q25): a prediction that does not parse is dropped; with none left the task MAE is inf (not None)
    samples = [Sample("k0", "cell", "validation-public", "counting", "10", "many", "ok")]
    profiles, rows = score_samples(MatchResult(samples=samples), EvalConfig("root", "pred.json", bootstrap=0))
    task = profiles["flare25"]["tasks"]["counting"]
    assert task["metrics"]["mae"] == float("inf") and task["datasets"]["cell"]["metrics"]["mae"] == float("inf")
    # answered, but not readable: counted as unparsable in the task and in its dataset
    assert (task["n_scored"], task["n_unparsable"]) == (0, 1)
    assert (task["datasets"]["cell"]["n_scored"], task["datasets"]["cell"]["n_unparsable"]) == (0, 1)
    assert {k: rows[0][k] for k in ("key", "dataset", "split", "task", "status", "prediction", "target")} == {
        "key": "k0", "dataset": "cell", "split": "validation-public", "task": "counting", "status": "ok",
        "prediction": "many", "target": "10"}


def test_a_non_positive_error_cap_is_named():
    with pytest.raises(ValueError) as err:
        EvalConfig("root", "pred.json", error_cap=0)
    assert str(err.value) == "--error_cap must be > 0, got 0"
