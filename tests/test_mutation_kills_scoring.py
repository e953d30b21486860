"""Evaluation cases a mutation sample (``make mutation``, docs/mutation.md) showed unpinned: Q25's output cleaning and
multi-label parsing, the organisers' clinical-efficacy categories, GREEN judge parsing, masked means, ground-truth
warnings and the output files. Each expected value is worked out by hand from the rule its docstring quotes."""

import json
import logging
import math
import warnings

import numpy as np
import pytest

from mevlip.metrics import flare25_parsing as q25
from mevlip.metrics import green_llm, records, report, scores
from mevlip.metrics.profiles import _prf1
from mevlip.metrics.text_metrics import clinical_efficacy_pair, rouge_l


def test_q25_cleaning_by_hand():
    assert q25.clean_output("system\nB") == "B" and q25.clean_output("user\n  C ") == "C"
    assert q25.clean_output("Answer: A. Answer: B") == "B"  # the text after the LAST "Answer:"
    assert q25.clean_output("x assistant\nfirst assistant\n D ") == "D"
    assert q25.clean_output("Assistant: E") == "E"


def test_q25_multilabel_by_hand():
    assert q25.parse_multilabel("['Caries'; 'Impacted tooth, left']") == ["Caries", "Impacted tooth, left"]
    assert q25.parse_multilabel("[Xanthoma, 'X-ray artefact']") == ["Xanthoma", "X-ray artefact"]
    assert q25.parse_multilabel("Caries; Impacted tooth.") == ["Caries", "Impacted tooth"]


def test_rouge_l_by_hand():
    # LCS of "the heart is normal" and "the heart size is normal": the heart is normal (4 tokens)
    p, r = 4 / 5, 4 / 4
    assert rouge_l("the heart size is normal", "the heart is normal") == pytest.approx(2 * p * r / (p + r))
    assert rouge_l("a b c", "c b a") == pytest.approx(1 / 3)  # one token in order


def test_clinical_efficacy_categories_by_hand():
    # a category term at the very start counts; "no " within 20 characters before a term cancels it
    assert clinical_efficacy_pair("Severe effusion.", "There is an abnormality.") == 0.5  # critical vs abnormal
    assert clinical_efficacy_pair("There is no urgent finding.", "Unremarkable.") == 1.0  # both normal
    assert clinical_efficacy_pair("Heart size.", "Unremarkable study.") == 1.0  # no term: normal
    assert clinical_efficacy_pair("Possible nodule.", "Unremarkable study.") == 0.0  # uncertain vs normal


def test_prf1_of_empty_sets():
    assert _prf1(set(), set()) == (0.0, 0.0, 0.0) and _prf1({"a"}, set()) == (0.0, 0.0, 0.0)
    assert _prf1({"a", "b"}, {"b", "c", "d"}) == pytest.approx((0.5, 1 / 3, 0.4))


def test_green_judge_parsing_by_hand():
    text = ("[Explanation]: x <|assistant|> first <|assistant|> [Clinically Significant Errors]:\n"
            "(a) False report of a finding: 2.\n(c) Missing a finding: 1.\n\n[Matched Findings]:\n3. a; b; c\n")
    assert green_llm.clean_response("a<|assistant|>b<|assistant|>c</s>") == "c"
    # two "[Explanation]:" without the template's line after it: the text after the LAST one
    assert green_llm.clean_response("[Explanation]: first [Explanation]: last") == " last"
    assert green_llm.parse_error_counts(text, "Clinically Significant Errors") == (3, [2, 0, 1, 0, 0, 0])
    assert green_llm.parse_error_counts(text, "Matched Findings") == (3, [0] * 6)
    assert green_llm.parse_error_counts("[Matched Findings]:\nnone listed\n", "Matched Findings") == (0, [0] * 6)
    assert green_llm.parse_error_counts("[Matched Findings]:\nNo matches.\n", "Matched Findings") == (0, [0] * 6)
    no_errors = "[Clinically Significant Errors]:\nNo errors, though (a) False report of a finding: 2.\n"
    assert green_llm.parse_error_counts(no_errors, "Clinically Significant Errors") == (0, [0] * 6)  # "No": 0


def test_masked_mean_by_hand():
    W = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    x = np.array([0.25, 0.5, np.nan])
    # slice 1: one value; slice 2: 0.5 and a NaN -> 0.5; slice 3: nothing -> the empty value
    np.testing.assert_array_equal(scores.masked_mean(W, x, empty=-1.0), [0.25, 0.5, -1.0])
    np.testing.assert_array_equal(scores.masked_mean(W, np.array([1.0, np.inf, 2.0])), [1.0, np.inf, np.nan])


def _root(tmp_path, split, name, answer):
    folder = tmp_path / split / "Xray" / "ds"
    folder.mkdir(parents=True)
    rec = {"ImageName": "a.png", "Question": "Q?", "Answer": answer, "TaskType": "Classification",
           "Modality": "X-ray", "Split": "val"}
    (folder / name).write_text(json.dumps([rec]))


def test_hidden_and_testing_files_without_ground_truth_are_warned_about(tmp_path, caplog):
    _root(tmp_path, "validation-hidden", "ds_questions_val_withGT.json", "A")
    _root(tmp_path, "testing", "ds_questions_test.json", "B")
    _root(tmp_path, "validation-public", "ds_questions_val.json", "C")
    with caplog.at_level(logging.WARNING):
        samples, _ = records.load_ground_truth(tmp_path, ("validation-hidden", "testing", "validation-public"))
    assert sorted(s.split for s in samples) == ["testing", "validation-hidden", "validation-public"]
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [f"{tmp_path / 'testing' / 'Xray' / 'ds' / 'ds_questions_test.json'} has no _withGT file "
                      "next to it: its empty answers cannot be scored"]


def test_a_split_without_answers_is_refused_with_what_to_do(tmp_path):
    from mevlip.flare import FlareDataError

    _root(tmp_path, "testing", "ds_questions_test.json", "")
    with pytest.raises(FlareDataError, match=r"--splits testing: no ground truth: every answer is empty \(e\.g\. "
                                             r".*ds_questions_test\.json\); put the _withGT files next to the "
                                             r"question files or leave the split out$"):
        records.load_ground_truth(tmp_path, ("testing",))


def test_provenance_outside_a_repository_and_the_files_written(tmp_path):
    meta = report.provenance(tmp_path)
    assert meta["git_hash"] is None and meta["versions"]["python"]
    assert all(v is None or isinstance(v, str) and v for v in meta["versions"].values())


def test_micro_prf_by_hand():
    from mevlip.metrics.matching import prf

    assert prf(1, 0, 0) == (1.0, 1.0, 1.0) and prf(0, 0, 0) == (0.0, 0.0, 0.0)
    assert prf(1, 1, 3) == pytest.approx((0.5, 0.25, 1 / 3))


def test_provenance_reads_the_commit_of_the_repository(tmp_path):
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    meta = report.provenance(tmp_path)
    assert meta["git_hash"] == head.strip() and set(meta) == {"versions", "git_hash", "created"}


def test_strict_class_words_are_compared_case_folded_and_reported_so():
    from mevlip.metrics.profiles import score_strict

    out = score_strict("classification", "Luminal  B", "luminal b")
    assert (out["parsed"], out["target"], out["correct"]) == ("luminal b", "luminal b", True)
    assert score_strict("classification", "b", "B")["parsed"] == "B"  # a letter: upper case


def test_strict_multilabel_precision_and_recall_by_hand():
    from mevlip.metrics.profiles import score_strict

    # predicted {Caries, Cyst, Nodule}, reference {Caries}: precision 1/3, recall 1, F1 2(1/3)(1)/(4/3) = 0.5
    out = score_strict("multi_label_classification", "Caries; Cyst; Nodule", "Caries")
    assert (out["precision"], out["recall"], out["f1"]) == pytest.approx((1 / 3, 1.0, 0.5))


def test_json_and_markdown_spell_infinities_and_intervals():
    assert report.jsonable([math.inf, -math.inf, math.nan, 0.5]) == ["Infinity", "-Infinity", None, 0.5]
    assert report._ci([0.25, 0.75]) == "[0.2500, 0.7500]" and report._ci(None) == "–"
    assert report._ci([1.0, math.inf]) == "[1.0000, inf]"


def test_precision_without_predictions_is_zero():
    p, r, f = scores._prf(np.array([[0.0, 0.0, 2.0], [1.0, 1.0, 0.0]]))  # rows: [tp, fp, fn]
    np.testing.assert_array_equal(p, [0.0, 0.5])  # no box predicted: 0 (Q25), not 1
    np.testing.assert_array_equal(r, [0.0, 1.0])


def test_balanced_accuracy_counts_only_the_classes_a_resample_draws():
    gt, correct, scored = np.array([0, 0, 1]), np.array([True, True, False]), np.ones(3, bool)
    # row 1 draws only class 0 (both right): 1.0; row 2 draws all: (1 + 0) / 2
    out = scores.balanced_accuracy(np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]), gt, correct, scored)
    np.testing.assert_array_equal(out, [1.0, 0.5])
    # no reference class at all: one NaN per row of W (not per sample)
    none = scores.balanced_accuracy(scores.point_weights(3), gt, correct, np.zeros(3, bool))
    assert none.shape == (1,) and np.isnan(none).all()


def test_aggregate_keys_of_detection_and_instance_detection_and_an_empty_slice():
    det = scores.build_columns("detection", [{"scored": True, "tp": 1, "fp": 1, "fn": 0}])
    assert set(scores.aggregate("detection", det, scores.point_weights(1), primary_only=True)) == {"f1"}
    assert set(scores.aggregate("detection", det, scores.point_weights(1))) == {"f1", "precision", "recall"}
    thresholds = len(scores.INSTANCE_THRESHOLDS)
    inst = scores.build_columns("instance_detection", [{"scored": True, "counts": [[1, 0, 1]] * thresholds}])
    out = scores.aggregate("instance_detection", inst, scores.point_weights(1))
    # tp 1, fp 0, fn 1 at every threshold: precision 1, recall 1/2
    assert (out["precision"][0], out["recall"][0]) == (1.0, 0.5)
    empty = scores.aggregate("counting", scores.build_columns("counting", []), scores.point_weights(0))
    assert set(empty) == {"mae", "rmse"} and all(v.shape == (1,) and np.isnan(v[0]) for v in empty.values())


def test_organisers_bleu_of_an_empty_prediction_is_zero_without_warnings():
    from mevlip.metrics.text_metrics import flare25_bleu_from_stats

    # one pair, no n-gram matched, prediction length 0, reference length 5: brevity 1 - 5/0 must stay silent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert flare25_bleu_from_stats(np.array([1.0, 0, 0, 0, 0, 0, 5])) == 0.0
        assert flare25_bleu_from_stats(np.zeros(7)) == 0.0  # no pair at all


def test_ngrams_of_a_sentence_exactly_n_long():
    from collections import Counter

    from mevlip.metrics.text_metrics import _ngrams

    assert _ngrams(["a", "b"], 2) == Counter({("a", "b"): 1})  # one bigram, not none
    assert _ngrams(["a"], 2) == Counter()
    assert _ngrams(["a", "b", "a", "b"], 2) == Counter({("a", "b"): 2, ("b", "a"): 1})


def test_provenance_names_the_commit_of_the_folder(tmp_path):
    import subprocess

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert report.provenance(tmp_path)["git_hash"] == head  # a str of 40 hex digits, not bytes
    assert report.provenance(tmp_path / "nowhere")["git_hash"] is None
