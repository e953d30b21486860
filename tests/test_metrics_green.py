"""Report scores: the organisers' rule-based composite and the real GREEN judge protocol.

The rule score is pinned on pairs worked out by hand from FLARE25-QWen2.5VL ``utils/metrics.py``. The GREEN judge
is tested in two halves: its parser on canned judge outputs, and its generation plumbing with a tiny random
Llama built here from a config (nothing is downloaded).
"""

import os

import pytest
from conftest_metrics import tiny_judge_dir  # noqa: F401  (fixture)

from mevlip.metrics.green_llm import (
    CATEGORIES,
    GreenJudge,
    clean_response,
    compute_green,
    make_prompt,
    parse_error_counts,
)
from mevlip.metrics.green_rule import COMPONENTS, compare_sizes, green_rule, green_rule_components

os.environ.setdefault("HF_HUB_OFFLINE", "1")


# ----------------------------------------------------------------------------------------------- rule score
def test_rule_identical_report_with_an_entity_scores_one():
    assert green_rule("No pleural effusion.", "No pleural effusion.") == pytest.approx(1.0)


def test_rule_negation_and_severity_mismatch_by_hand():
    # ref: effusion negated, severity 2; pred: not negated, "large" -> 2 * 0.8 = 1.6.
    # entity 0.3*(1 - 0.4/4) + 0.2 + 0.1 = 0.57; location 1; negation 0.4 (uncertainties equal); temporal 1;
    # measurement 1; significance 1 (same term "effusion"); structure: no sections, length 34/20 < 2 -> 1.
    parts = dict(zip(("overall", *COMPONENTS), green_rule_components("There is a large pleural effusion.",
                                                                    "No pleural effusion."), strict=True))
    assert parts["entity_matching"] == pytest.approx(0.57)
    assert parts["negation_handling"] == pytest.approx(0.4)
    assert parts["overall"] == pytest.approx(0.3 * 0.57 + 0.2 + 0.15 * 0.4 + 0.1 + 0.1 + 0.1 + 0.05)


def test_rule_entity_free_reference_caps_identical_text_at_0_9():
    # no entity in the reference: significance is 0 by Q25's definition, everything else 1
    text = "Degenerative changes of the spine."
    assert green_rule(text, text) == pytest.approx(0.9)
    # ...and an empty prediction still gets 0.885 (length score 0 -> structure 0.7)
    assert green_rule("", text) == pytest.approx(0.3 + 0.2 + 0.15 + 0.1 + 0.1 + 0.05 * 0.7)


def test_rule_missing_entity_and_sizes():
    ref = "A 2.0 cm nodule in the right upper lobe."
    assert green_rule("A 2.1 cm nodule in the right upper lobe.", ref) == pytest.approx(1.0)  # sizes within 10%
    parts = dict(zip(("overall", *COMPONENTS), green_rule_components("A 3 cm nodule in the right upper lobe.", ref),
                     strict=True))
    assert parts["measurement_accuracy"] == pytest.approx(0.5)  # |2-3|/3 = 0.33 -> 0.5
    parts = dict(zip(("overall", *COMPONENTS), green_rule_components("The lungs are clear.", ref), strict=True))
    assert parts["entity_matching"] == 0.0 and parts["clinical_significance"] == 0.0


def _parts(generated: str, reference: str) -> dict[str, float]:
    return dict(zip(("overall", *COMPONENTS), green_rule_components(generated, reference), strict=True))


# Each expected value below is worked out by hand from docs/flare_format.md 4.A (the organisers' GREENScorer), not
# computed with green_rule; every component and constant is pinned by at least one case.
def test_rule_temporal_component_by_hand():
    # ref temporal {new}, pred {unchanged}: shared 0/1; both have temporal terms and entities -> association 0.8
    assert _parts("Unchanged left effusion.", "New left effusion.")["temporal_accuracy"] == pytest.approx(
        0.5 * 0 + 0.5 * 0.8)
    # pred has no temporal term (and no entity) -> association 0.5
    assert _parts("Stable.", "New left effusion.")["temporal_accuracy"] == pytest.approx(0.5 * 0 + 0.5 * 0.5)
    # the reference has none, the prediction has one -> 0.5; neither has one -> 1
    assert _parts("Stable left effusion.", "Left effusion.")["temporal_accuracy"] == pytest.approx(0.5)
    assert _parts("Left effusion.", "Left effusion.")["temporal_accuracy"] == pytest.approx(1.0)
    # the one shared temporal type counts in full: 0.5 * 1/1 + 0.5 * 0.8
    assert _parts("New effusion.", "New left effusion.")["temporal_accuracy"] == pytest.approx(0.9)


def test_rule_location_component_is_a_jaccard_overlap():
    # ref {left, lung}, pred {left, upper}: |{left}| / |{left, lung, upper}| = 1/3 (recall would give 1/2)
    parts = _parts("Opacity in the left upper zone.", "Opacity in the left lung.")
    assert parts["location_accuracy"] == pytest.approx(1 / 3)
    # a superset prediction is penalised too: {left} vs {left, upper}: 1/2 (recall would give 1)
    assert _parts("Left upper effusion.", "Left effusion.")["location_accuracy"] == pytest.approx(0.5)
    # no location in the reference: 1 only when the prediction has none either
    assert _parts("Effusion.", "Effusion.")["location_accuracy"] == 1.0
    assert _parts("Left effusion.", "Effusion.")["location_accuracy"] == 0.0


def test_rule_uncertainty_and_the_overall_weights_by_hand():
    # ref: "possible" (confidence 0.3) -> uncertainty 0.7, pneumonia base severity 3; pred: uncertainty 0, severity 3
    # entity: 0.4 (negation) + 0.3 * 1 (severity) + 0.2 * (1 - 0.7) + 0.1 (no sizes) = 0.86
    # negation: 0.6 + 0.4 * max(0, 1 - 2 * 0.7) = 0.6; structure: 0.7 + 0.3 * len("Pneumonia.") / len(ref) = 10/19
    parts = _parts("Pneumonia.", "Possible pneumonia.")
    assert parts["entity_matching"] == pytest.approx(0.86)
    assert parts["negation_handling"] == pytest.approx(0.6)
    assert parts["structure_completeness"] == pytest.approx(0.7 + 0.3 * 10 / 19)
    assert parts["overall"] == pytest.approx(0.30 * 0.86 + 0.20 * 1 + 0.15 * 0.6 + 0.10 * 1 + 0.10 * 1 + 0.10 * 1
                                             + 0.05 * (0.7 + 0.3 * 10 / 19))


def test_rule_missing_entity_weights_and_severity_weighted_significance():
    # ref: pneumothorax (severity 4, weight 1.0) and effusion (severity 2, weight 0.8); pred: pneumothorax only
    # entity: (1.0 * 1.0 + 0.8 * 0) / (1.0 + 0.8); significance: 1.0 * (1 + 4/4) / (1.0 * 2 + 0.8 * (1 + 2/4))
    parts = _parts("Pneumothorax.", "Pneumothorax. Effusion.")
    assert parts["entity_matching"] == pytest.approx(1.0 / 1.8)
    assert parts["clinical_significance"] == pytest.approx(2.0 / 3.2)
    assert parts["negation_handling"] == pytest.approx(1.0)


def test_rule_every_term_is_a_mention_and_significance_needs_the_same_term():
    # "pulmonary edema" is two edema mentions ("edema", "pulmonary edema"); the prediction's "edema" captures one
    # of the two equal weights; "pulmonary" is a lung location the prediction lacks: Jaccard 0/1
    parts = _parts("Edema.", "Pulmonary edema.")
    assert parts["clinical_significance"] == pytest.approx(0.5)
    assert parts["location_accuracy"] == 0.0
    assert parts["entity_matching"] == pytest.approx(1.0)


def test_rule_structure_sections_and_length():
    # ref sections {findings, impression}, pred has findings only: 0.7 * 1/2 + 0.3 * 22/42 (length ratio < 1)
    parts = _parts("Findings: no effusion.", "Findings: no effusion. Impression: normal.")
    assert parts["structure_completeness"] == pytest.approx(0.7 * 0.5 + 0.3 * 22 / 42)
    # length ratio >= 2: max(0, 2 - r); r = 40 / 10 -> 0
    assert _parts("Effusion. " * 4, "Effusion.!")["structure_completeness"] == pytest.approx(0.7)
    # r = 15 / 10 = 1.5 < 2 -> min(1, r) = 1
    assert _parts("Effusion. Left.", "Effusion.!")["structure_completeness"] == pytest.approx(1.0)


@pytest.mark.parametrize("a,b,score", [
    ("2.0 cm", "2.1 cm", 1.0),   # 0.1 / 2.1 = 0.048 < 0.1
    ("2 cm", "2.4 cm", 0.8),     # 0.4 / 2.4 = 0.167 < 0.2
    ("2 cm", "3 cm", 0.5),       # 1 / 3 = 0.333 < 0.5
    ("1 cm", "3 cm", 0.2),       # 2 / 3 = 0.667
    ("9 mm", "10 mm", 0.8),      # 1 / 10 = 0.1 exactly: the "< 0.1" band is strict
    ("0 mm", "0 mm", 1.0),       # both zero
    ("cm", "3 cm", 0.0),         # no number on one side
])
def test_size_comparison_thresholds(a, b, score):
    assert compare_sizes(a, b) == score


# ----------------------------------------------------------------------------------------------- GREEN parser
_FULL = """[Explanation]:
The candidate misses the effusion.

[Clinically Significant Errors]:
(a) False report of a finding in the candidate: 0.
(b) Missing a finding present in the reference: 1. Small left pleural effusion
(c) Misidentification of a finding's anatomic location/position: 0.
(d) Misassessment of the severity of a finding: 0.
(e) Mentioning a comparison that isn't in the reference: 0.
(f) Omitting a comparison detailing a change from a prior study: 0.

[Clinically Insignificant Errors]:
(a) False report of a finding in the candidate: 4. a; b; c; d

[Matched Findings]:
2. Heart size is normal; Lungs are clear"""


def test_green_parser_on_canned_responses():
    assert parse_error_counts(_FULL, CATEGORIES[0]) == (1, [0, 1, 0, 0, 0, 0])
    assert parse_error_counts(_FULL, CATEGORIES[1])[0] == 4
    assert parse_error_counts(_FULL, CATEGORIES[2])[0] == 2
    assert compute_green(_FULL) == pytest.approx(2 / 3)  # insignificant errors do not count
    no_sig = "[Clinically Significant Errors]:\nNo clinically significant errors.\n\n[Matched Findings]:\n3. a; b; c"
    assert compute_green(no_sig) == 1.0
    numbered = ("[Clinically Significant Errors]:\n(1) False report: 1.\n(4) Severity: 1.\n\n"
                "[Matched Findings]:\n1. heart")
    assert compute_green(numbered) == pytest.approx(1 / 3)
    assert compute_green("[Matched Findings]:\nNo matched findings.") == 0.0
    assert compute_green("the judge rambled") == 0.0  # nothing parsable: matched 0 -> 0
    with pytest.raises(ValueError):
        parse_error_counts(_FULL, "Other")


def test_clean_response():
    assert clean_response("prompt <|assistant|>[Explanation]:\nok</s>") == "\nok"
    assert clean_response("<|user|>\nhi<|assistant|>\n[Matched Findings]:\n1. x<unk>") == "\n[Matched Findings]:\n1. x"


def test_prompt_is_verbatim():
    # the original f-string of green_score/utils.py make_prompt, on one line
    original = "Objective: Evaluate the accuracy of a candidate radiology report in comparison to a reference radiology report composed by expert radiologists.\n\n    Process Overview: You will be presented with:\n\n    1. The criteria for making a judgment.\n    2. The reference radiology report.\n    3. The candidate radiology report.\n    4. The desired format for your assessment.\n\n    1. Criteria for Judgment:\n\n    For each candidate report, determine:\n\n    The count of clinically significant errors.\n    The count of clinically insignificant errors.\n\n    Errors can fall into one of these categories:\n\n    a) False report of a finding in the candidate.\n    b) Missing a finding present in the reference.\n    c) Misidentification of a finding's anatomic location/position.\n    d) Misassessment of the severity of a finding.\n    e) Mentioning a comparison that isn't in the reference.\n    f) Omitting a comparison detailing a change from a prior study.\n    Note: Concentrate on the clinical findings rather than the report's writing style. Evaluate only the findings that appear in both reports.\n\n    2. Reference Report:\n    REF\n\n    3. Candidate Report:\n    HYP\n\n    4. Reporting Your Assessment:\n\n    Follow this specific format for your output, even if no errors are found:\n    ```\n    [Explanation]:\n    <Explanation>\n\n    [Clinically Significant Errors]:\n    (a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n    ....\n    (f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n\n    [Clinically Insignificant Errors]:\n    (a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n    ....\n    (f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n\n    [Matched Findings]:\n    <The number of matched findings>. <Finding 1>; <Finding 2>; ...; <Finding n>\n    ```\n"  # noqa: E501
    assert make_prompt("REF", "HYP") == original


# ----------------------------------------------------------------------------------------------- GREEN plumbing
def test_green_judge_plumbing_with_tiny_model(tiny_judge_dir):  # noqa: F811
    judge = GreenJudge(tiny_judge_dir, device="cpu", batch_size=2, max_length=4096, max_new_tokens=4)
    calls = []
    generate = judge._generate
    judge._generate = lambda prompts: calls.append(len(prompts)) or generate(prompts)
    refs = ["No pleural effusion.", "The heart is normal.", "No pleural effusion."]
    hyps = ["No effusion.", "Heart normal.", "No effusion."]
    responses = judge.responses(refs, hyps)
    assert len(responses) == 3 and all(isinstance(r, str) for r in responses)
    assert responses[0] == responses[2]  # identical pairs are judged once
    assert calls == [2]
    scores = judge.score(refs, hyps)
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
