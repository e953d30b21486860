"""Canonical answer parsing and writing, shared by inference and evaluation."""

import json

import pytest

from mevlip.answers import (
    canonicalize,
    format_boxes,
    format_instances,
    parse_answer,
    parse_boxes,
    parse_choice,
    parse_instances,
    parse_number,
    split_labels,
    strip_chat,
)


@pytest.mark.parametrize("text,letter", [("B", "B"), ("b", "B"), ("B. Benign", "B"), ("(c)", "C"), ("Answer: D", "D"),
                                         ("The answer is E.", "E"), ("A: Normal", "A"), ("K", "K"), (" T ", "T")])
def test_option_letters(text, letter):
    assert parse_choice(text) == letter


def test_class_words():
    assert parse_choice("Luminal b") == "Luminal b"  # CMMD class words survive without options
    assert parse_choice("malignant tumour", ["Benign", "Malignant"]) == "Malignant"
    assert parse_choice("Apple", ["Benign", "Malignant"]) is None
    assert parse_choice("") is None and parse_choice(None) is None


def test_labels_keep_the_comma_label_whole():
    comma = "Endodontic Treatment, Restorative Treatment, and Complications"
    assert split_labels(f"Dental Caries; {comma}") == ["Dental Caries", comma]
    assert split_labels(comma) == [comma]  # no ';': still one label, not three
    assert split_labels("Pneumonia, Nodule, Pneumonia") == ["Pneumonia", "Nodule"]
    assert split_labels("  ") is None


def test_boxes():
    assert parse_boxes("[[1, 2, 3, 4], [5, 6, 7, 8]]") == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert parse_boxes("[1, 2, 3, 4]") == [[1, 2, 3, 4]]
    assert parse_boxes("The box is [10, 20, 30.6, 40] and [1,1,2,2]") == [[10, 20, 31, 40], [1, 1, 2, 2]]
    assert parse_boxes("[]") == []
    assert parse_boxes("no box") is None and parse_boxes("[[1, 2, 3]]") is None
    assert parse_boxes("[[1e300, 2, 3, 4]]") is None  # absurd coordinates are not boxes
    assert format_boxes([[1.2, 2, 3, 4]]) == "[[1, 2, 3, 4]]"


def test_instances():
    text = '{"1": [[1, 2, 3, 4], [5, 6, 7, 8]], "X": [9, 9, 12, 12]}'
    assert parse_instances(text) == {"1": [[1, 2, 3, 4], [5, 6, 7, 8]], "X": [[9, 9, 12, 12]]}
    assert parse_instances("chromosomes: " + text + " done")["X"] == [[9, 9, 12, 12]]
    assert parse_instances("[1, 2, 3, 4]") is None and parse_instances('{"1": "x"}') == {}
    assert json.loads(format_instances({"Y": [[1, 2, 3, 4]]})) == {"Y": [[1, 2, 3, 4]]}


def test_numbers():
    assert parse_number("20.0") == 20.0 and parse_number(42) == 42.0 and parse_number("about 35 cells") == 35.0
    assert parse_number("1,234 cells") == 1234.0 and parse_number("3, 4") == 3.0
    assert parse_number("1e250") is None and parse_number("nan") is None and parse_number(True) is None
    assert parse_number("none") is None


def test_canonicalize_by_task():
    assert canonicalize("Counting", "There are 42 cells.") == "42"
    assert canonicalize("regression", "ABR is 20%") == "20.0"
    assert canonicalize("detection", "[[1, 2, 3, 4]]<|im_end|>") == "[[1, 2, 3, 4]]"
    assert canonicalize("Classification", "assistant\nB. Benign") == "B"
    assert canonicalize("multi-label classification", "Dental Caries;Pulp Diseases") == "Dental Caries; Pulp Diseases"
    report = "The heart is normal.\nNo effusion."
    assert canonicalize("Report_Generation", report) == report
    assert canonicalize("counting", "I cannot tell") == ""
    assert strip_chat("assistant\nfirst line\nsecond") == "first line\nsecond"  # the first line is kept
    assert parse_answer("instance_detection", {"1": [[1, 2, 3, 4]]}) == {"1": [[1, 2, 3, 4]]}
