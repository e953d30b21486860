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
from mevlip.metrics.green_rule import COMPONENTS, green_rule, green_rule_components

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
