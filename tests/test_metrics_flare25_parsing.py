"""The organisers' (FLARE25-QWen2.5VL) answer extraction, pinned on hand-worked cases including its quirks."""

import math

import pytest

from mevlip.metrics import flare25_parsing as q25


@pytest.mark.parametrize("text,cleaned", [
    ("B", "B"),
    ("system\nYou are...user\nQ?assistant\nB. Benign", "B. Benign"),  # after the last "assistant\n"
    ("Assistant: C", "C"),  # "assistant:" found case-insensitively
    ("The Answer: D", "D"),
    ("answer: D", "answer: D"),  # "Answer:" is case-sensitive
    ("  E  ", "  E  "),  # nothing stripped when no marker applies
])
def test_clean_output(text, cleaned):
    assert q25.clean_output(text) == cleaned


@pytest.mark.parametrize("output,label", [
    ("B", "B"), ("b", "B"), ("(c)", "C"), ("The answer is A.", "A"), ("Answer: D) Polyp", "D"),
    ("F", "F"),  # beyond E: no regex match, the last (only) word is kept
    ("F. Eosinophil", "eosinophil"),  # beyond E with text: the last word wins
    ("T", "T"),  # endo's label bug survives untouched
    ("Luminal b", "B"),  # CMMD: the final lone letter is taken for an option
    ("Luminal a", "A"),
    ("Triple negative", "negative"),  # no letter match: last word
    ("Her2-enriched", "her2-enriched"),
    ("Malignant.", "malignant"),
    ("I think it is A large mass", "A"),  # an article read as option A
    ("", ""),
])
def test_classification_extraction(output, label):
    assert q25.normalize_label(q25.parse_classification(output)) == label


def test_normalize_label():
    assert q25.normalize_label("  Luminal   B ") == "luminal b"
    assert q25.normalize_label("e") == "E"
    assert q25.normalize_label("7") == "7"  # one character but not a letter: lower-cased text
    assert q25.normalize_label(None) == ""


def test_multilabel_parser_is_case_sensitive_and_splits_the_comma_label():
    comma = "Endodontic Treatment, Restorative Treatment, and Complications"
    assert q25.parse_multilabel(comma) == ["Endodontic Treatment", "Restorative Treatment", "and Complications"]
    assert q25.parse_multilabel(f"Dental Caries; {comma}") == ["Dental Caries", comma]
    assert q25.parse_multilabel("Pneumonia, nodule.") == ["Pneumonia", "nodule"]
    assert q25.parse_multilabel("['Pneumonia', 'Nodule']") == ["Pneumonia", "Nodule"]  # bracket branch
    assert q25.parse_multilabel("Normal") == ["Normal"]
    assert q25.parse_multilabel("") == [""]  # the F1 then sees an empty set
    assert q25.label_set(q25.parse_multilabel("")) == set()
    assert q25.label_set(["a", "a ", ""]) == {"a"}


@pytest.mark.parametrize("text,boxes", [
    ("[[10, 20, 30, 40]]", [[10, 20, 30, 40]]),
    ("[[10, 20, 30, 40], [50, 60, 70, 80]]", [[10, 20, 30, 40], [50, 60, 70, 80]]),  # falls to the 4-int pattern
    ('{"a": [[1, 2, 3, 4], [5, 6, 7]], "b": [[9, 9, 19, 19]]}', [[1, 2, 3, 4], [9, 9, 19, 19]]),
    ("box at 1, 2, 3, 4", [[1, 2, 3, 4]]),
    ("[-5, 10, 20, 30]", [[5, 10, 20, 30]]),  # no sign in the regex: -5 reads as 5
    ("[10.5, 20, 30, 40]", [[5, 20, 30, 40]]),  # decimals are not understood either
    ("[[10, 20, 30", []),  # broken JSON, not four numbers
    ("no box", []),
    ('{"a": [["x", 1, 2, 3]]}', []),  # int("x") raises: Q25 returns []
])
def test_detection_parser(text, boxes):
    assert q25.parse_boxes(text) == boxes


def test_instance_parser():
    assert q25.parse_instances('{"1": [[1, 2, 3, 4], [5, 6, 7, 8]], "X": [1, 2, 3, 4]}') == {
        "1": [[1, 2, 3, 4], [5, 6, 7, 8]], "X": [[1, 2, 3, 4]]}
    assert q25.parse_instances('Answer: {"2": [[1.9, 2, 3, 4]]}') == {"2": [[1, 2, 3, 4]]}  # int() truncates
    assert q25.parse_instances('Here: {"1": [[1, 2, 3, 4]]}') == {}  # must start with "{"
    assert q25.parse_instances('{"1": [[1, 2, 3, 4]]') == {}
    assert q25.parse_instances('{"1": [[1, [2], 3, 4]]}') == {}  # int() of a list: {}
    assert q25.parse_instances('{"1": [NaN, 1, 2, 3]}') == {}  # int(nan) raises: {}
    assert q25.parse_instances('{"1": "abc", "2": []}') == {}


@pytest.mark.parametrize("text,count", [
    ("42", 42), ("3", 3), ("There are 45 cells visible.", 45), ("The total is 37, from step 2.", 37),
    ("I see 12 cells and 300 cells", 300),  # max of standalone numbers > 10
    ("3 and 5", None),  # two small numbers are dropped, then int(float(text)) fails
    ("To accurately count the cells, 55", None),  # hedging phrase
    ("1e250", 250),  # "1" is dropped as a small number next to "250"
    ("12.0", 12), ("", None), ("lots", None),
    # the "> 10" boundary: 10 is dropped beside another number, 11 is kept, a lone 10 is kept
    ("10 and 5", None), ("11 and 5", 11), ("10", 10), ("5 and 10 and 4", None),
])
def test_count_parser(text, count):
    assert q25.parse_count(text) == count


def test_count_parser_never_raises_on_overflow():
    assert q25.parse_count("inf") is None  # int(float("inf")) raises OverflowError in Q25; dropped here


@pytest.mark.parametrize("text,value", [
    ("23.5", 23.5), ("The ABR is 12 and 23.5%", 23.5), ("-3.2", -3.2), ("1e250", 1.0), ("abc", None), ("", None),
])
def test_regression_parser(text, value):
    assert q25.parse_regression(text) == value


def test_regression_parser_accepts_inf_like_float():
    assert math.isinf(q25.parse_regression("inf"))
    assert q25.reference_regression("20.0") == 20.0 and q25.reference_regression("x") is None
    assert q25.reference_count("20.9") == 20 and q25.reference_count("") is None


def test_as_text():
    assert q25.as_text(None) == "" and q25.as_text(20.0) == "20.0"
    assert q25.as_text([[1, 2, 3, 4]]) == "[[1, 2, 3, 4]]"
    assert q25.as_text({"1": [1, 2, 3, 4]}) == '{"1": [1, 2, 3, 4]}'


@pytest.mark.parametrize("name,alphabet", [("percent", "0123456789.-% a"), ("box_any", "0123456789 ,[]x"),
                                           ("cells", None), ("edge_punct", " .,:'\"ab")])
def test_fast_patterns_equal_the_originals(name, alphabet):
    """Each rewritten regex returns what the organisers' original returns, on many random strings."""
    import random
    import re

    original = re.compile(q25.ORIGINAL_PATTERNS[name])
    fast = {"percent": q25._PERCENT, "box_any": q25._BOX_ANY, "cells": q25._COUNT_EXPLICIT[2],
            "edge_punct": q25._EDGE_PUNCT}[name]
    rng = random.Random(name)
    for _ in range(20000):
        if alphabet:
            text = "".join(rng.choices(alphabet, k=rng.randint(0, 18)))
        else:
            text = "".join(rng.choice(["1", "23", " ", "cell", "cells", "s", " visible", "present", "x"])
                           for _ in range(rng.randint(0, 8)))
        if name == "edge_punct":
            assert fast.sub("", text) == original.sub("", text), text
        else:
            assert fast.findall(text) == original.findall(text), text


def test_long_garbage_is_parsed_quickly():
    import time

    start = time.perf_counter()
    for text in ("9" * 20000, "9" * 20000 + "%", "1, " * 5000, "." * 20000 + "x"):
        q25.parse_regression(text), q25.parse_count(text), q25.parse_boxes(text), q25.parse_classification(text)
    assert time.perf_counter() - start < 20  # the original percent regex alone needs minutes on 20,000 digits
