"""Answer parsing cases the mutation run (``make mutation``, docs/mutation.md) showed untested.

Every expected value is worked out by hand from the documented format (``docs/flare_format.md`` 3.2-3.3, the
docstrings) or, for :func:`original_parse_answer`, from the original ``inference.py``'s behaviour as its docstring
quotes it line by line.
"""

import pytest

from mevlip.answers import (
    COMMA_LABELS,
    canonicalize,
    join_labels,
    parse_answer,
    parse_boxes,
    parse_choice,
    parse_instances,
    parse_number,
    split_labels,
    strip_chat,
)
from mevlip.answers import original_parse_answer as original
from mevlip.tasks import normalize_task_type


@pytest.mark.parametrize("raw,clean", [
    ("Normal.<|im_end|>", "Normal."),
    ("Normal.<|endoftext|>", "Normal."),
    ("assistant: B", "B"),
    ("assistant:B", "B"),
    # the last assistant turn is the answer (rsplit, once)
    ("user\nQ?\nassistant\nfirst try\nassistant\nsecond try", "second try"),
])
def test_strip_chat_residue(raw, clean):
    assert strip_chat(raw) == clean


def test_class_words_longest_match_first_whatever_the_case():
    # sorted by length, not alphabetically: "Luminal B" (9) before "luminal" (7), although "l" sorts after "L"
    assert parse_choice("luminal b tumour", ["luminal", "Luminal B"]) == "Luminal B"
    assert parse_choice("LUMINAL A", ["luminal", "Luminal B"]) == "luminal"


@pytest.mark.parametrize("text,word", [("Luminal b.", "Luminal b"), ("Type X.", "Type X"), (".Benign.", ".Benign")])
def test_class_word_without_options_loses_its_final_dots_only(text, word):
    assert parse_choice(text) == word


def test_label_lists_as_python_lists_quotes_and_brackets():
    assert split_labels(["Pneumonia", "Nodule"]) == ["Pneumonia", "Nodule"]  # a list value is read as JSON
    assert split_labels("[Xanthoma; Nodule]") == ["Xanthoma", "Nodule"]
    assert split_labels("'Xanthoma'; \"Type X.\"") == ["Xanthoma", "Type X"]
    assert split_labels("'Pneumonia', \"Nodule.\"") == ["Pneumonia", "Nodule"]


def test_comma_label_is_matched_in_any_case_and_written_as_the_dataset_does():
    label = COMMA_LABELS[0]
    assert split_labels(label.lower() + "; Caries") == [label, "Caries"]


def test_join_labels_default_separator_is_periapicals():
    assert join_labels(["Caries", "Impacted tooth"]) == "Caries; Impacted tooth"


def test_numbers_reaching_the_limit_are_unparsable():
    assert parse_number("999999999") == 999999999.0
    assert parse_number("1000000000") is None and parse_number(-1e9) is None
    assert parse_boxes([[999999999, 0, 1, 1]]) == [[999999999, 0, 1, 1]]
    assert parse_boxes([[1e9, 0, 1, 1]]) is None


def test_python_literals_and_trailing_punctuation():
    assert parse_instances("{'1': [[1, 2, 3, 4]]}") == {"1": [[1, 2, 3, 4]]}  # not JSON: ast.literal_eval reads it
    assert parse_instances('{"1": [[1, 2, 3, 4]]}.') == {"1": [[1, 2, 3, 4]]}  # the span ends at the last "}"
    assert parse_boxes("[].") == []  # explicit empty list, then a full stop
    # the span runs from the first "{" to the last "}": a nested object does not cut it
    assert parse_instances('{"1": [[1, 2, 3, 4]], "meta": {"n": 1}}') == {"1": [[1, 2, 3, 4]]}
    assert parse_instances('{"1": "[1, 2, 3, 4]"}') == {}  # a string is not a box list


def test_non_text_answers():
    assert parse_answer("report_generation", 3.5) == "3.5"
    assert parse_answer("classification", "malignant tumour", ["Benign", "Malignant"]) == "Malignant"


def test_canonicalize_passes_options_and_separator_and_rounds_regression():
    assert canonicalize("classification", "malignant", options=["Benign", "Malignant"]) == "Malignant"
    assert canonicalize("multi_label_classification", "Effusion,Nodule", label_sep=", ") == "Effusion, Nodule"
    assert canonicalize("regression", "ABR 20.37 %") == "20.4"  # one decimal, as the dataset writes "20.0"


# ----------------------------------------------------------------------------------------------- the original's
@pytest.mark.parametrize("output,task_type,answer", [
    # the marker: keep what follows its last occurrence ("3" in the question is not the count)
    ("Count 3 kinds. Please provide a clear and concise answer. 42", "Cell Counting", "42"),
    ("Q? Please provide a clear and concise answer. about 42 cells", "Report_Generation", "about 42 cells"),
    ("A. Please provide a clear and concise answer. B. Please provide a clear and concise answer. C", None, "C"),
    # a newline: only the FIRST line is dropped
    ("line1\nline2\nline3", None, "line2\nline3"),
    ("Reasoning\nThe answer is\nB", "Classification", "B"),  # classification: the last line
    ("", "classification", ""),
    ("boxes:\n[[1, 2,\n3, 4]]", "detection", "[[1, 2, 3, 4]]"),  # the span may cross lines
    ("Count\nThere are 12 cells", "Cell Counting", "12"),
    ("x\nABR 20.5%", "Regression", "20.5"),
    ("x\nno number", "counting", "0"),
])
def test_original_parser_as_documented(output, task_type, answer):
    assert original(output, task_type) == answer


@pytest.mark.parametrize("spelling,name", [("  Multi-label   Classification ", "multi_label_classification"),
                                           ("Report\tGeneration", "report_generation"),
                                           ("INSTANCE__DETECTION", "instance_detection")])
def test_task_type_spellings_ignore_case_separators_and_runs_of_space(spelling, name):
    assert normalize_task_type(spelling) == name


def test_task_type_errors_name_the_spelling_and_the_known_names():
    known = "classification, multi_label_classification, detection, instance_detection, counting, regression, " \
            "report_generation"
    with pytest.raises(ValueError) as err:
        normalize_task_type("Segmentation")
    assert str(err.value) == f"unknown TaskType 'Segmentation'; known task types: {known}"
    for bad in ("", "  ", None, 3):
        with pytest.raises(ValueError) as err:
            normalize_task_type(bad)
        assert str(err.value) == f"TaskType must be a non-empty string, got {bad!r}"
