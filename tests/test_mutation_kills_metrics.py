"""Metrics cases the mutation run (``make mutation``, docs/mutation.md) showed untested.

Expected values are worked out by hand (means, counts, the organisers' formulas as written in
``docs/flare_format.md`` and the docstrings) or come from an independent implementation named in the test.
"""

import json as _json
import logging
import shutil
from pathlib import Path

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
    assert results["report_generation_note"] == (
        "green_flare25_rule is the organisers' rule-based keyword composite (FLARE25-QWen2.5VL utils/metrics.py), not "
        "Stanford GREEN; green_llm is the LLM-judged GREEN and is present only with --green_model.")


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


# ----------------------------------------------------------------------------------------------- full run survivors
# (2026-12-03): each case below failed before on a mutant that every other test let through. Expected values are
# worked by hand from the organisers' code as the docstrings quote it.
def test_q25_multilabel_single_label_and_strip_set():
    from mevlip.metrics.flare25_parsing import parse_multilabel

    assert parse_multilabel("'Nevus.'") == ["Nevus"]  # one label: quotes and end punctuation stripped
    assert parse_multilabel("X-ray; CT") == ["X-ray", "CT"]  # only quotes and .,; are stripped, not letters


def test_q25_instances_an_empty_list_does_not_drop_the_other_ids():
    from mevlip.metrics.flare25_parsing import parse_instances

    assert parse_instances('{"1": [], "2": [[1, 2, 3, 4]]}') == {"2": [[1, 2, 3, 4]]}


def test_green_clean_response_template_branch_and_last_assistant_turn():
    # the judge's prompt repeats the answer template; the answer is the text after the LAST <|assistant|>, and
    # there, when the template line is present, the text between the first and second "[Explanation]:"
    text = ("[Explanation]:\n    <Explanation>\n P <|assistant|> Q <|assistant|>[Explanation]:\n    <Explanation>\n"
            " A [Explanation]: B</s>")
    assert green_llm.clean_response(text) == "\n    <Explanation>\n A "
    # without the template line: the text after the last "[Explanation]:"
    assert green_llm.clean_response("x <|assistant|> y [Explanation]: one [Explanation]: two<unk>") == " two"


def test_green_numbered_sub_categories_keep_their_positions():
    text = ("[Clinically Significant Errors]:\n(1) False report of a finding: 2.\n(3) Misidentification: 1.\n\n"
            "[Matched Findings]:\n3. a")
    assert green_llm.parse_error_counts(text, green_llm.CATEGORIES[0]) == (3, [2, 0, 1, 0, 0, 0])
    with pytest.raises(ValueError, match=r"^Category Other is not a valid category\. Please choose from "
                                         r"\['Clinically Significant Errors', 'Clinically Insignificant Errors', "
                                         r"'Matched Findings'\]\.$"):
        green_llm.parse_error_counts(text, "Other")


def test_llm_green_shows_progress_and_refuses_a_judge_that_answers_too_few(monkeypatch):
    seen = {}

    class Short(_FakeJudge):
        def score(self, references, candidates, progress=False):
            seen["progress"] = progress
            return [0.5]  # one score for two reports

    monkeypatch.setattr(green_llm, "GreenJudge", Short)
    samples = [Sample(f"k{i}", "iu", "validation-public", "report_generation", "a", "b", "ok") for i in range(2)]
    with pytest.raises(ValueError, match="zip"):
        score_samples(MatchResult(samples=samples), EvalConfig("root", "pred.json", bootstrap=0, green_model="j"))
    assert seen["progress"] is True  # the judge runs minutes per hundred reports: it shows its progress


def test_bootstrap_weights_by_slice_name_are_reproducible_and_differ_between_slices():
    from mevlip.metrics.evaluate import _weights

    config = EvalConfig("root", "pred.json", bootstrap=50)
    a = _weights(20, config, ("flare25", "classification"), {})
    assert a.shape == (50, 20) and (a.sum(axis=1) == 20).all()
    assert (a == _weights(20, config, ("flare25", "classification"), {})).all()  # a new cache, the same draw
    assert not (a == _weights(20, config, ("flare25", "counting"), {})).all()


def test_bootstrap_weights_of_one_row_and_index_zero():
    import numpy as np

    from mevlip.metrics.scores import bootstrap_weights

    assert bootstrap_weights(1, 3, np.random.default_rng(0)).tolist() == [[1.0], [1.0], [1.0]]
    w = bootstrap_weights(2, 200, np.random.default_rng(0))
    assert w[:, 0].sum() > 0 and w[:, 1].sum() > 0 and (w.sum(axis=1) == 2).all()


def test_green_rule_size_at_half_the_larger_is_the_lowest_band():
    from mevlip.metrics.green_rule import compare_sizes

    # |1 - 2| / 2 = 0.5, not < 0.5: the organisers' last band, 0.2
    assert compare_sizes("1 cm", "2 cm") == 0.2
    assert compare_sizes("3 cm", "5 cm") == 0.5  # 0.4


def test_write_outputs_makes_missing_folders_and_writes_indented_json(tmp_path, monkeypatch):
    from mevlip.metrics import report

    monkeypatch.setattr(report, "bar_chart", lambda results, path: None)  # plotting is not the unit here
    monkeypatch.setattr(report, "markdown", lambda results: "# md\n")
    paths = report.write_outputs({"x": 1.5, "y": [1, 2]}, [{"k": "a"}], tmp_path / "a" / "b", "metrics.json")
    assert paths["json"].read_text(encoding="utf-8") == '{\n  "x": 1.5,\n  "y": [\n    1,\n    2\n  ]\n}\n'
    assert paths["markdown"].read_text(encoding="utf-8") == "# md\n"
    assert paths["samples"].read_text(encoding="utf-8") == '{"k": "a"}\n'


def test_greedy_matching_takes_the_first_of_equal_ious_and_a_default_threshold_of_half():
    from mevlip.metrics.matching import greedy_counts

    # prediction 0 ties on both references: the first (j = 0) is taken, so prediction 1 has none left above 0.5
    assert greedy_counts([[0.8, 0.8], [0.8, 0.0]], 2, 0.5) == (1, 1, 1)
    assert greedy_counts([[0.6]], 1) == (1, 0, 0)  # default threshold 0.5: 0.6 matches
    assert greedy_counts([[0.5]], 1) == (0, 1, 1)  # strictly greater


def test_iou_of_boxes_apart_on_one_axis_small_boxes_and_a_nan_corner():
    from mevlip.metrics.matching import iou

    assert iou([0, 0, 1, 1], [2, 0, 3, 1]) == 0.0  # apart in x only (the y ranges overlap)
    assert iou([0, 0, 1, 1], [0, 2, 1, 3]) == 0.0  # apart in y only
    assert iou([0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5]) == 1.0  # a union below 1 is still a union
    assert iou([0, 0, 0.5, 0.5], [0, 0, 0.5, 0.25]) == 0.5
    assert iou([0, 0, float("nan"), 1], [0, 0, 1, 1]) == 0.0  # a malformed box scores 0, not NaN


def test_match_instances_counts_a_value_that_is_no_list_as_no_boxes():
    from mevlip.metrics.matching import match_instances

    assert match_instances({"1": [[0, 0, 1, 1]]}, {"1": "xy"}, thresholds=(0.5,)) == [(0, 1, 0)]
    assert match_instances({"1": "xy"}, {"1": [[0, 0, 1, 1]]}, thresholds=(0.5,)) == [(0, 0, 1)]


def test_q25_count_prefers_an_explicit_count_and_nan_is_no_regression_reference():
    from mevlip.metrics.flare25_parsing import parse_count, reference_regression

    # "count is 7" wins; the standalone numbers (7, 3) would give nothing (both <= 10, not alone)
    assert parse_count("The count is 7, in 3 fields.") == 7
    assert reference_regression("nan") is None and reference_regression("2.5") == 2.5


def test_primary_table_skips_absent_tasks_and_carries_the_intervals():
    from mevlip.metrics.evaluate import _primary_table
    from mevlip.metrics.profiles import PROFILES

    entry = {"n": 4, "n_missing": 1, "n_scored": 3, "n_unparsable": 0, "metrics": {"mae": 2.0},
             "ci95": {"mae": [1.0, 3.0]}}
    table = _primary_table({p: {"tasks": {"counting": entry}} for p in PROFILES})
    assert list(table) == ["counting"]  # classification, first in task order, is absent: skipped, not the end
    row = table["counting"]
    assert row["metric"] == "mae" and row["n"] == 4 and row["n_missing"] == 1
    for p in PROFILES:
        assert row[p] == 2.0 and row[f"{p}_ci95"] == [1.0, 3.0] and row[f"{p}_n_scored"] == 3


def _gt(key, target="A"):
    return Sample(key, "ds", "validation-public", "classification", target)


def test_match_predictions_messages_duplicates_and_the_warning(caplog):
    from mevlip.metrics.records import match_predictions

    long = ["x" * 100]
    result = match_predictions([_gt("a||q"), _gt("a||q"), _gt("b||q")], ["no", long])
    assert result.invalid_predictions == [
        "predictions record 0: needs a JSON object with ImageName and Question, got 'no'",
        f"predictions record 1: needs a JSON object with ImageName and Question, got {str(long)[:80]!r}"]
    assert result.duplicate_gt_keys == ["a||q"]  # twice; "b||q" once
    with pytest.raises(ValueError, match=r"^missing must be 'wrong' or 'skip', got 'drop'$"):
        match_predictions([], [], missing="drop")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        only_missing = match_predictions([_gt("b||q")], [], source="p.json")
    assert only_missing.missing_keys == ["b||q"]
    assert caplog.messages == ["p.json: 1 missing, 0 unknown, 0 duplicate keys, 0 invalid records"]


def test_load_predictions_names_what_it_got(tmp_path):
    from mevlip.metrics.records import PredictionFileError, load_predictions

    path = tmp_path / "p.json"
    path.write_text('{"a": 1}', encoding="utf-8")
    with pytest.raises(PredictionFileError, match=r"p\.json: expected a JSON list of prediction records, got dict$"):
        load_predictions(path)


def test_report_number_cells():
    from mevlip.metrics.report import _fmt

    assert _fmt(None) == "\u2013" and _fmt(float("inf")) == "inf" and _fmt(3) == "3" and _fmt("x") == "x"
    assert _fmt(999.5) == "999.5000" and _fmt(1000.0) == "1000" and _fmt(1000.5) == "1000"
    assert _fmt(12345.6) == "1.235e+04"


def test_jsonable_numpy_scalars_and_other_objects():
    import numpy as np

    from mevlip.metrics.report import jsonable

    assert jsonable({"a": np.float32(0.5), "b": np.int64(3), "c": float("-inf"), "d": float("inf")}) == {
        "a": 0.5, "b": 3, "c": "-Infinity", "d": "Infinity"}
    assert jsonable(Path("a") / "b") == "a/b"


def test_write_outputs_sample_rows_keep_unicode_and_turn_nan_into_null(tmp_path, monkeypatch):
    from mevlip.metrics import report

    monkeypatch.setattr(report, "bar_chart", lambda results, path: None)
    monkeypatch.setattr(report, "markdown", lambda results: "")
    rows = [{"k": "\u00e9"}, {"k": "\u00e9", "v": float("nan")}, {"v": float("inf")}]
    paths = report.write_outputs({}, rows, tmp_path, "m.json")
    assert paths["samples"].read_text(encoding="utf-8").splitlines() == [
        '{"k": "\u00e9"}', '{"k": "\u00e9", "v": null}', '{"v": "Infinity"}']


def test_micro_precision_recall_f1_rows_by_hand():
    import numpy as np

    from mevlip.metrics.scores import _prf

    # (tp, fp, fn) rows: only false positives; all right; mixed; nothing at all
    p, r, f = _prf(np.array([[0.0, 2.0, 0.0], [2.0, 0.0, 0.0], [1.0, 1.0, 2.0], [0.0, 0.0, 0.0]]))
    assert p.tolist() == [0.0, 1.0, 0.5, 0.0]
    assert r.tolist() == pytest.approx([0.0, 1.0, 1 / 3, 0.0])  # no reference box: recall 0 (Q25), not 1
    assert f.tolist() == pytest.approx([0.0, 1.0, 0.4, 0.0])


def test_flare25_counting_uses_the_count_parser_and_a_huge_count_is_an_infinite_error():
    import math

    from mevlip.metrics.profiles import score_flare25

    # the count parser reads "40 cells" (an explicit cell count); the regression parser would read the first 3
    assert score_flare25("counting", "about 3 of 40 cells", "40")["abs_error"] == 0.0
    assert score_flare25("regression", "about 3 of 40 cells", "40")["abs_error"] == 37.0
    # float() of a 401-digit count overflows: Q25's task MAE becomes inf
    assert score_flare25("counting", "1" + "0" * 400, "5")["abs_error"] == math.inf


def test_box_tasks_are_scored_under_flare25_and_unreadable_references_are_not_under_strict():
    from mevlip.metrics.matching import INSTANCE_THRESHOLDS
    from mevlip.metrics.profiles import score_flare25, score_strict

    assert score_flare25("detection", "[[0, 0, 10, 10]]", "[[0, 0, 10, 10]]")["scored"] is True
    assert score_flare25("instance_detection", '{"1": [[0, 0, 10, 10]]}', '{"1": [[0, 0, 10, 10]]}')["scored"] is True
    det = score_strict("detection", "[[0, 0, 10, 10]]", "no boxes here")
    assert (det["scored"], det["tp"], det["fp"], det["fn"]) == (False, 0, 0, 0)
    ok = score_strict("detection", "[[0, 0, 10, 10]]", "[[0, 0, 10, 10]]")
    assert (ok["scored"], ok["tp"], ok["fp"], ok["fn"]) == (True, 1, 0, 0)
    inst = score_strict("instance_detection", '{"1": [[0, 0, 10, 10]]}', "no boxes here")
    assert inst["scored"] is False and inst["counts"] == [(0, 0, 0)] * len(INSTANCE_THRESHOLDS)
    multi = score_strict("multi_label_classification", "a; b", "a; b")
    assert multi["scored"] is True and multi["f1"] == 1.0


def test_strict_report_of_an_empty_answer_scores_zero_rouge():
    from mevlip.metrics.profiles import score_strict

    assert score_strict("report_generation", "   ", "Heart is normal.")["rougeL"] == 0.0


def test_corpus_bleu_equals_nltk_when_the_hypotheses_are_longer():
    import warnings

    import numpy as np
    from nltk.translate.bleu_score import corpus_bleu

    from mevlip.metrics.text_metrics import bleu_counts, corpus_bleu_from_counts, tokenize

    # the seeded pairs of tests/test_metrics_text.py only shorten the reference: here the brevity penalty is 1
    pairs = [("the heart is normal in size and the lungs are clear today", "the heart is normal in size"),
             ("no acute cardiopulmonary process is seen on this film", "no acute cardiopulmonary process")]
    ours = float(corpus_bleu_from_counts(np.sum([bleu_counts(h, r) for h, r in pairs], axis=0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = corpus_bleu([[tokenize(r)] for _, r in pairs], [tokenize(h) for h, _ in pairs])
    assert 0.0 < ours < 1.0 and ours == pytest.approx(theirs, rel=1e-9)


def test_eval_config_messages_and_the_error_cap_edge():
    for kwargs, message in [({"missing": "drop"}, "--missing must be 'wrong' or 'skip', got 'drop'"),
                            ({"primary": "x"}, "--primary must be one of flare25, strict, got 'x'"),
                            ({"bootstrap": -1}, "--bootstrap must be >= 0, got -1")]:
        with pytest.raises(ValueError) as err:
            EvalConfig("root", "pred.json", **kwargs)
        assert str(err.value) == message
    assert EvalConfig("root", "pred.json", error_cap=0.5).error_cap == 0.5  # any positive cap


def test_q25_clean_output_takes_the_last_assistant_colon_turn():
    from mevlip.metrics.flare25_parsing import clean_output

    assert clean_output("Assistant: hello. assistant: B") == "B"


def test_score_sample_passes_the_error_cap_and_names_the_profiles():
    from mevlip.metrics.profiles import score_sample, score_strict

    assert score_sample("strict", "counting", "100", "1", error_cap=5.0)["abs_error"] == 5.0
    with pytest.raises(ValueError, match=r"^unknown profile 'x'; choose from flare25, strict$"):
        score_sample("x", "counting", "1", "1")
    inst = score_strict("instance_detection", '{"1": [[0, 0, 10, 10]]}', '{"1": [[0, 0, 10, 10]]}')
    assert inst["scored"] is True and inst["counts"][0] == (1, 0, 0)
    unread = score_strict("counting", "5", "no number")
    assert unread["scored"] is False and unread["abs_error"] != unread["abs_error"]  # NaN: not scored


def test_ground_truth_of_no_question_file_is_named(tmp_path):
    from mevlip.metrics.records import load_ground_truth

    with pytest.raises(FileNotFoundError) as err:
        load_ground_truth(tmp_path, ("validation-public", "validation-hidden"))
    assert str(err.value) == f"no question files under {tmp_path} for splits validation-public, validation-hidden"


def test_provenance_time_is_utc():
    from mevlip.metrics.report import provenance

    assert provenance()["created"].endswith("+00:00")


def test_green_rule_structure_and_significance_edges_by_hand():
    from mevlip.metrics import green_rule as g

    ref = "findings: a. impression: b. technique: c."
    assert g._structure_score("findings: x", ref, 10, 10) == pytest.approx(0.7 / 3 + 0.3)  # 1 of 3 sections
    assert g._structure_score("x", "no section", 1, 1) == pytest.approx(1.0)  # a 1-word reference: ratio 1
    assert g._structure_score("x", "no section", 4, 2) == pytest.approx(0.7)  # ratio exactly 2: max(0, 2 - 2)
    # one reference finding of weight 0.7 (cardiomegaly, severity 0), found: all of the weight is captured
    ref_m = {"cardiomegaly": [("cardiomegaly", False, 0, 0, None, 0.7)]}
    assert g._significance_score({"cardiomegaly": [("cardiomegaly",)]}, ref_m) == pytest.approx(1.0)


def test_evaluation_bookkeeping_values():
    import math

    from mevlip.metrics.evaluate import _number, unparsable

    assert _number(float("nan")) is None and _number(math.inf) == math.inf and _number(2) == 2.0
    assert [unparsable({"parsed": v}) for v in (None, "", [], {}, "A", 0.0, [1])] == [
        True, True, True, True, False, False, False]


def test_task_results_name_their_primary_metric_classes_and_the_strict_cap(monkeypatch):
    samples = [Sample(f"k{i}", "ds", "validation-public", "classification", t, p, "ok")
               for i, (t, p) in enumerate([("A", "A"), ("B", "A"), ("A", "B"), ("C", "C")])]
    samples.append(Sample("k9", "ds", "validation-public", "counting", "3", "13", "ok"))
    profiles, _ = score_samples(MatchResult(samples=samples), EvalConfig("root", "p.json", bootstrap=0, error_cap=2))
    cls = profiles["flare25"]["tasks"]["classification"]
    assert cls["primary_metric"] == "balanced_accuracy" and cls["n_classes"] == 3  # A, B, C
    assert profiles["flare25"]["tasks"]["counting"]["metrics"]["mae"] == 10.0
    assert profiles["strict"]["tasks"]["counting"]["metrics"]["mae"] == 2.0  # strict caps each error at error_cap
    assert "ci95" not in cls  # no bootstrap, no interval


def test_small_text_helpers_by_hand():
    from mevlip.metrics import green_rule as g
    from mevlip.metrics.flare25_parsing import as_text
    from mevlip.metrics.text_metrics import _ce_category, tokenize

    assert as_text(5) == "5" and as_text(2.5) == "2.5" and as_text(None) == ""
    assert as_text([{1}]) == "[{1}]"  # not JSON-serialisable: str() of it
    assert tokenize("Heart: OK") == ["heart", ":", "ok"]
    text = "no" + " " * 49 + "effusion"  # "no" starts 51 characters before the finding: outside the 50 looked at
    assert g._negated(text.lower(), 51) is False and g._negated(text.lower(), 50) is True
    # the organisers' clinical-efficacy category: the first mention of a term, negated within 20 characters before
    assert _ce_category("the lungs are not severe") == "normal"
    assert _ce_category("patient without acute distress") == "normal"
    assert _ce_category("no " + "x" * 18 + "severe") == "critical"  # "no " ends 21 characters before: too far
    assert _ce_category("no " + "x" * 17 + "severe") == "normal"
    assert _ce_category("severe now. no severe") == "critical"  # the first mention decides


def test_organisers_bleu_of_a_batch_is_each_row_alone():
    import numpy as np

    from mevlip.metrics.text_metrics import flare25_bleu_from_stats, flare25_bleu_stats

    rows = [np.array(flare25_bleu_stats("the heart is normal in size", "the heart is normal")),
            np.array(flare25_bleu_stats("the lungs are clear", "the lungs are clear and expanded")),
            np.array(flare25_bleu_stats("x", "the heart"))]  # no match: 0
    alone = [float(flare25_bleu_from_stats(r)) for r in rows]
    assert alone[0] > 0 and alone[1] > 0 and alone[2] == 0.0
    assert flare25_bleu_from_stats(np.stack(rows)).tolist() == pytest.approx(alone)


def test_evaluate_names_how_strict_differs(mini_flare_tiny, tmp_path):
    records = ground_truth_records(mini_flare_tiny)
    pred = tmp_path / "predictions.json"
    pred.write_text(_json.dumps(records), encoding="utf-8")
    results, _ = evaluate(EvalConfig(str(mini_flare_tiny), str(pred), bootstrap=0))
    differences = results["strict_vs_flare25"]
    assert len(differences) >= 6 and all(isinstance(d, str) and d for d in differences)


def test_flare25_nan_error_is_infinite_and_rule_components_are_averaged():
    import math

    from mevlip.metrics.green_rule import COMPONENTS, green_rule_components
    from mevlip.metrics.profiles import score_flare25

    assert score_flare25("regression", "nan", "5")["abs_error"] == math.inf  # Q25: sklearn rejects NaN -> inf
    pairs = [("Heart is normal. No effusion.", "Heart is normal. Small left effusion."),
             ("Mild cardiomegaly.", "Mild cardiomegaly.")]
    samples = [Sample(f"k{i}", "iu", "validation-public", "report_generation", ref, pred, "ok")
               for i, (pred, ref) in enumerate(pairs)]
    profiles, _ = score_samples(MatchResult(samples=samples), EvalConfig("root", "p.json", bootstrap=0))
    metrics = profiles["flare25"]["tasks"]["report_generation"]["metrics"]
    for i, name in enumerate(COMPONENTS):  # the mean of the per-pair components (green_rule's own tests pin those)
        expected = sum(green_rule_components(p, r)[i + 1] for p, r in pairs) / 2
        assert metrics[f"rule_{name}"] == pytest.approx(expected)


def test_entity_score_counts_every_mention_of_a_type_the_prediction_lacks_and_one_class_accuracy():
    import numpy as np

    from mevlip.metrics import green_rule as g
    from mevlip.metrics.scores import balanced_accuracy

    def mention(term="opacity", weight=0.8):
        return (term, False, 0.0, 0.0, None, weight)

    # opacity found perfectly (1.0 x 0.8); two pneumothorax mentions (1.0 each) missing: 0.8 / (0.8 + 1 + 1)
    ref = {"opacity": [mention()], "pneumothorax": [mention("pneumothorax", 1.0), mention("pneumothorax", 1.0)]}
    assert g._entity_score({"opacity": [mention()]}, ref) == pytest.approx(0.8 / 2.8)
    # one reference class, half right: balanced accuracy 0.5 (the mean recall of that one class)
    W = np.ones((1, 4))
    out = balanced_accuracy(W, np.array([0, 0, 0, 0]), np.array([True, False, True, False]), np.ones(4, bool))
    assert out.tolist() == [0.5]


def test_instance_greedy_pass_takes_the_first_of_equal_ious():
    from mevlip.metrics.matching import _greedy_once

    # as greedy_counts: reference 0 goes to prediction 0, prediction 1 finds nothing left; 0.8 <= 0.95: not stable
    assert _greedy_once([[0.8, 0.8], [0.8, 0.0]], 2, 0.5, 0.95) == (1, 1, 1, False)


def test_a_slice_with_no_scored_row_is_infinite_under_flare25_and_undefined_under_strict():
    import math

    import numpy as np

    from mevlip.metrics.profiles import score_flare25
    from mevlip.metrics.scores import aggregate, build_columns

    cols = build_columns("counting", [score_flare25("counting", "5", "n/a")])  # unreadable reference: not scored
    W = np.ones((1, 1))
    default = aggregate("counting", cols, W)  # the default profile is flare25
    assert default["mae"].tolist() == [math.inf] and default["rmse"].tolist() == [math.inf]
    strict = aggregate("counting", cols, W, "strict")
    assert math.isnan(strict["mae"][0]) and math.isnan(strict["rmse"][0])
    samples = [Sample("k", "ds", "validation-public", "counting", "n/a", "5", "ok")]
    profiles, _ = score_samples(MatchResult(samples=samples), EvalConfig("root", "p.json", bootstrap=20))
    assert profiles["strict"]["tasks"]["counting"]["metrics"] == {"mae": None, "rmse": None}
    assert profiles["strict"]["tasks"]["counting"]["ci95"] == {"mae": None}
    assert profiles["flare25"]["tasks"]["counting"]["metrics"] == {"mae": math.inf, "rmse": math.inf}
    assert profiles["flare25"]["tasks"]["counting"]["ci95"] == {"mae": [math.inf, math.inf]}


def test_corpus_bleu_equals_nltk_when_only_unigrams_match_or_the_hypothesis_is_one_word():
    import warnings

    import numpy as np
    from nltk.translate.bleu_score import corpus_bleu

    from mevlip.metrics.text_metrics import bleu_counts, corpus_bleu_from_counts, tokenize

    # nltk gives a tiny positive value here (its floor for a zero precision), not 0: ours must match it
    for hyp, ref in [("b a", "a b"), ("a", "a b c d e")]:
        ours = float(corpus_bleu_from_counts(np.array(bleu_counts(hyp, ref))))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = corpus_bleu([[tokenize(ref)]], [tokenize(hyp)])
        assert 0.0 < theirs < 1e-200 and ours == pytest.approx(theirs, rel=1e-9, abs=1e-300)


def test_a_hidden_split_without_its_gt_file_is_warned_about_and_refused(tmp_path, caplog):
    from mevlip.flare import FlareDataError
    from mevlip.metrics.records import load_ground_truth

    ds = tmp_path / "validation-hidden" / "Xray" / "chestdr"
    ds.mkdir(parents=True)
    qfile = ds / "chestdr_questions_val.json"
    qfile.write_text(_json.dumps([{"TaskType": "Classification", "Modality": "Xray", "ImageName": "imagesVal/a.png",
                                   "Question": "Q? A. x B. y", "Answer": "", "Split": "val"}]), encoding="utf-8")
    with caplog.at_level(logging.WARNING), pytest.raises(FlareDataError, match="no ground truth"):
        load_ground_truth(tmp_path, ("validation-hidden",))
    assert f"{qfile} has no _withGT file next to it: its empty answers cannot be scored" in caplog.messages


def test_provenance_names_a_missing_package_none(monkeypatch):
    from importlib import metadata

    from mevlip.metrics import report

    def version(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(report.metadata, "version", version)
    versions = report.provenance()["versions"]
    assert set(versions) > {"python"} and all(v is None for k, v in versions.items() if k != "python")


def test_provenance_names_the_commit_of_this_repository():
    import subprocess

    from mevlip.metrics import report

    repo = Path(report.__file__).resolve().parents[2]
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
    expected = (done.stdout.strip() or None) if done.returncode == 0 else None  # None outside a git checkout
    assert report.provenance()["git_hash"] == expected
