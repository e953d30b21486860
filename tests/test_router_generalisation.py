"""What makes the router generalise to wordings it never saw: label descriptions, lists without letters,
option-content swapping, sentence dropout, answer formats crossed between the two classification tasks, and the
leave-one-dataset-out fold rule.

Fast, CPU, offline: the parsing and augmentation tests run on hand-written questions; the router tests train a
few steps on the tiny mini-FLARE. The measured leave-one-dataset-out figures are in task_classifier/README.md.
"""

from __future__ import annotations

import json
import random
import re
import shutil

import pytest
import torch
from scripts import load_script

from mevlip.question_options import join_plain_list, split_options, split_plain_list
from mevlip.router import Router, RouterError, save_router
from mevlip.router.augment import (
    MULTI,
    MULTI_CUES,
    MULTI_TAILS,
    NUMBER_TAILS,
    SINGLE,
    AnswerFormats,
    Augmenter,
    answer_formats,
    augment_question,
    context_pool,
    cross_format,
    drop_sentence,
    number_tail,
    option_pool,
    quantity_question,
    swap_context,
)
from mevlip.router.data import build_router_sets, collect_dataset_questions, lodo_folds
from mevlip.router.labels import DESCRIPTIONS, label_texts
from mevlip.router.train import RouterTrainConfig, departures, question_stem, train_router
from mevlip.synth.catalog import DATASETS
from mevlip.tasks import TASK_NAMES

PERIAPICAL = ("Which of the following conditions affect tooth 46? Select all that apply: Dental Caries; Pulp Diseases; "
              "Periodontal Diseases; Endodontic Treatment, Restorative Treatment, and Complications.")
CHEST = ("List the diseases visible in this chest radiograph. Candidates: Pleural Effusion, Pneumonia, Cardiomegaly, "
         "Nodule, and Fibrosis. Answer Normal if there is none.")


# ----------------------------------------------------------------------------------------------- label texts
def test_every_task_has_a_description_that_names_no_dataset_or_class(mini_flare_tiny):
    assert set(DESCRIPTIONS) == set(TASK_NAMES)
    assert label_texts(list(TASK_NAMES), "names") == list(TASK_NAMES)
    texts = label_texts(list(TASK_NAMES), "descriptions")
    assert len(set(texts)) == len(TASK_NAMES)
    for task, text in zip(TASK_NAMES, texts, strict=True):
        assert text.startswith(task.replace("_", " ").replace("multi label", "multi-label") + ": "), text
    words = " ".join(texts).lower()
    # generic: no dataset name, and no class name that a mini-FLARE question offers (short ones such as "No" aside)
    for name in (d.name.lower() for d in DATASETS):
        assert not re.search(rf"\b{re.escape(name)}\b", words), name
    classes = option_pool([r["text"] for r in collect_dataset_questions(mini_flare_tiny)])
    assert len(classes) > 40
    for label in (c.lower() for c in classes if len(c) > 3):
        assert not re.search(rf"\b{re.escape(label)}\b", words), label
    with pytest.raises(ValueError, match="--label_prompts must be one of"):
        label_texts(["classification"], "both")
    with pytest.raises(ValueError, match=r"no label description for \['vqa'\]"):
        label_texts(["classification", "vqa"], "descriptions")
    with pytest.raises(ValueError, match="--label_prompts"):
        RouterTrainConfig(label_prompts="long")
    assert any(d.startswith("label_prompts: descriptions") for d in departures(RouterTrainConfig()))
    assert not any(d.startswith("label_prompts") for d in departures(RouterTrainConfig(label_prompts="names")))


@pytest.fixture(scope="module")
def described_router(mini_flare_tiny, tmp_path_factory):
    """A bi-encoder router after 3 steps with label descriptions and description rows; returns (dir, model)."""
    train, _ = build_router_sets(mini_flare_tiny)
    cfg = RouterTrainConfig(max_steps=3, epochs=0, batch_size=4, trainable_layers=1, freeze_label_encoder=True)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, tok, label_tok, _ = train_router(cfg, train, list(TASK_NAMES), progress=False)
    finally:
        torch.set_num_threads(before)
    return save_router(model, tok, label_tok, tmp_path_factory.mktemp("described") / "router", list(TASK_NAMES))


def test_a_router_is_scored_with_the_label_texts_it_was_trained_on(described_router, tmp_path):
    texts = [DESCRIPTIONS[x] for x in TASK_NAMES]
    assert json.loads((described_router / "router_config.json").read_text())["label_texts"] == texts
    assert json.loads((described_router / "config.json").read_text())["router_label_texts"] == texts
    router = Router.from_pretrained(described_router)
    assert router.labels == list(TASK_NAMES) and router.label_texts == texts
    questions = ["How many cells are there?", CHEST]
    names = Router(router.model, router.tokenizer, router.label_tokenizer, router.labels, router.adapters,
                   label_texts=list(TASK_NAMES))
    assert not torch.equal(router.scores(questions), names.scores(questions))  # the texts are what is scored
    # router_config.json saying otherwise than the model is an error naming both files
    moved = tmp_path / "router"
    shutil.copytree(described_router, moved)
    cfg = json.loads((moved / "router_config.json").read_text())
    (moved / "router_config.json").write_text(json.dumps({**cfg, "label_texts": list(TASK_NAMES)}))
    with pytest.raises(RouterError, match=r"router_config\.json: label_texts differ .*config\.json router_label_texts"):
        Router.from_pretrained(moved)
    (moved / "router_config.json").write_text(json.dumps({**cfg, "label_texts": texts[:3]}))
    with pytest.raises(RouterError, match=r"router_config\.json: 'label_texts' must list one non-empty text per"):
        Router.from_pretrained(moved)
    # a router_config.json without label_texts (older folders) is scored with the model's own record
    (moved / "router_config.json").write_text(json.dumps({k: v for k, v in cfg.items() if k != "label_texts"}))
    assert Router.from_pretrained(moved).label_texts == texts


# ----------------------------------------------------------------------------------------------- lists without letters
@pytest.mark.parametrize(("text", "head", "items", "sep", "tail"), [
    (PERIAPICAL, "Which of the following conditions affect tooth 46? Select all that apply: ",
     ["Dental Caries", "Pulp Diseases", "Periodontal Diseases",
      "Endodontic Treatment, Restorative Treatment, and Complications"], "; ", "."),
    (CHEST, "List the diseases visible in this chest radiograph. Candidates: ",
     ["Pleural Effusion", "Pneumonia", "Cardiomegaly", "Nodule", "Fibrosis"], ", ",
     ". Answer Normal if there is none."),
    ("List the findings for tooth 14 (choose from Caries; Pulp Diseases; Periodontitis); use '; ' between labels.",
     "List the findings for tooth 14 (choose from ", ["Caries", "Pulp Diseases", "Periodontitis"], "; ",
     "); use '; ' between labels."),
    ("Identify all conditions from: a; b; c\nMultiple answers are allowed.", "Identify all conditions from: ",
     ["a", "b", "c"], "; ", "\nMultiple answers are allowed."),
])
def test_lists_without_letters_are_found(text, head, items, sep, tail):
    assert split_options(text) is None
    assert split_plain_list(text) == (head, items, sep, tail)
    assert join_plain_list(head, items, sep, tail) == text.replace(", and Fibrosis", ", Fibrosis")


@pytest.mark.parametrize("text", [
    "How many cells are in this image?",
    "Which grade is it? A: Mild, B: Moderate, C: Severe",  # lettered: split_options' business
    'Please detect the chromosomes and output {"chromosome": [[x_min, y_min, x_max, y_max], ...]}.',
    "Describe the heart: size, shape.",  # two items
    "Where is the lesion? Give each bounding box in [x_min, y_min, x_max, y_max] format.",
])
def test_text_without_a_plain_list_is_left_alone(text):
    assert split_plain_list(text) is None


def test_option_pool_collects_lettered_and_plain_labels_once():
    texts = ["Which grade? A: Mild, B: Severe", "Grade it. A. Severe B. Normal", PERIAPICAL, "How many cells?",
             "Identify and localize all chromosomes (1-22, X, Y)."]  # 3 items: no label list
    assert option_pool(texts) == ["Mild", "Severe", "Normal", "Dental Caries", "Pulp Diseases", "Periodontal Diseases",
                                  "Endodontic Treatment, Restorative Treatment, and Complications"]


def test_augmentation_rewrites_plain_lists_and_swaps_option_contents_from_the_pool():
    rng = random.Random(0)
    pool = ["Pleural Effusion", "Nodule", "Melanoma", "Glaucoma", "Blast", "Mass", "Benign"]
    text = "Which of the following conditions affect tooth 46? Select all that apply: Caries; Pulpitis; Cysts; Wear."
    originals = split_plain_list(text)[1]
    seps, swapped, kept = set(), 0, 0
    for _ in range(300):
        out = augment_question(text, rng, pool=pool, swap=0.5)
        assert re.search(r"which of the following conditions affect tooth 46\? select all that apply: ", out, re.I), out
        head, items, sep, tail = split_plain_list(out, 2) or split_plain_list(out.replace(" / ", "; "), 2)
        seps.add(sep if " / " not in out else " / ")
        lowered = {x.lower() for x in items}
        if lowered <= {x.lower() for x in pool}:
            swapped += 1
        else:
            assert sorted(lowered) == sorted(x.lower() for x in originals), out  # same labels, any order
            kept += 1
    assert seps == {", ", "; ", " / "} and swapped > 100 and kept > 100
    # lettered options take pool labels too; the question before the options never changes
    lettered = "Which cell type is shown? A. Blast B. Myelocyte C. Lymphocyte Answer with the option letter."
    outs = [augment_question(lettered, rng, pool=pool, swap=0.5) for _ in range(200)]
    assert all(o.lower().removeprefix("question: ").startswith("which cell type is shown") for o in outs)
    assert any("glaucoma" in o.lower() for o in outs) and any("myelocyte" in o.lower() for o in outs)
    assert {augment_question(lettered, rng, pool=None, swap=1.0).lower().count("glaucoma") for _ in range(50)} == {0}


# ----------------------------------------------------------------------------------------------- fold rule
def test_only_tasks_of_a_single_dataset_hold_out_template_families_instead(mini_flare_tiny):
    """Leave a dataset out; for a task that one dataset alone has, leave out template families instead."""
    rows = collect_dataset_questions(mini_flare_tiny)
    owners: dict[str, set[str]] = {}
    for r in rows:
        owners.setdefault(r["task"], set()).add(r["dataset"])
    single = {task for task, names in owners.items() if len(names) == 1}
    assert single == {"counting", "instance_detection", "report_generation"}  # regression: iugc and boneresorption
    for fold in lodo_folds(rows, question_stem, seed=0):
        own = {r["task"] for r in rows if r["dataset"] == fold.dataset}
        assert set(fold.families) == own & single, fold.dataset
        for task, held in fold.families.items():
            stems = {question_stem(r["text"]) for r in rows if r["dataset"] == fold.dataset and r["task"] == task}
            assert 1 <= len(held) < len(stems)  # at least one family out, at least one still learnt
            assert {question_stem(r["text"]) for r in fold.test if r["true_labels"][0] == task} == set(held)


# ----------------------------------------------------------------------------------------------- answer formats
SINGLE_Q = "Which grade is it? A. Mild B. Severe"
MULTI_Q = ("Which pathologies are present on tooth 46? Select all that apply: Caries; Pulpitis; Cysts; Wear. "
           "Multiple answers are allowed.")
ONE_SENTENCE = "Identify all conditions affecting tooth 13 from: Caries; Pulpitis; Cysts; Wear."


def test_sentences_are_dropped_whole_and_option_letters_are_no_sentence_end():
    rng = random.Random(0)
    outs = {drop_sentence(SINGLE_Q, rng) for _ in range(40)}
    assert outs == {"Which grade is it?", "A. Mild B. Severe"}
    assert {drop_sentence(MULTI_Q, rng) for _ in range(60)} == {
        "Select all that apply: Caries; Pulpitis; Cysts; Wear. Multiple answers are allowed.",
        "Which pathologies are present on tooth 46? Multiple answers are allowed.",
        "Which pathologies are present on tooth 46? Select all that apply: Caries; Pulpitis; Cysts; Wear."}
    assert drop_sentence("How many cells are in this image?", rng) == "How many cells are in this image?"
    assert drop_sentence("Grade it. A. Mild B. Severe", rng) in ("Grade it.", "A. Mild B. Severe")


def test_answer_formats_take_the_two_classification_tasks_apart():
    texts = [SINGLE_Q, "Question: Which grade is it? A. Mild B. Severe", MULTI_Q, ONE_SENTENCE, "How many cells?"]
    tasks = [SINGLE, SINGLE, MULTI, MULTI, "counting"]
    formats = answer_formats(texts, tasks)
    assert formats == AnswerFormats(single=[("Which grade is it?", ["Mild", "Severe"])],
                                    multi_questions=["Which pathologies are present on tooth 46?"],
                                    multi_cues=["Select all that apply:"],
                                    multi_tails=[". Multiple answers are allowed."])


def test_cross_format_writes_each_question_in_the_other_tasks_answer_format():
    formats = answer_formats([SINGLE_Q, MULTI_Q], [SINGLE, MULTI])
    pool = ["Nodule", "Melanoma", "Glaucoma", "Blast"]
    cues = "|".join(re.escape(c) for c in ("Select all that apply:", *MULTI_CUES))
    tails = "|".join(re.escape(t) for t in (". Multiple answers are allowed.", *MULTI_TAILS, "."))
    rng = random.Random(0)
    multis, lettered, plain = set(), 0, 0
    for _ in range(60):
        multi = cross_format(MULTI, formats, rng, pool)
        match = re.fullmatch(rf"Which grade is it\? ({cues}) (Mild|Severe)(; |, )(Mild|Severe)({tails})", multi)
        assert match, multi
        multis.add(match.group(1))
        single = cross_format(SINGLE, formats, rng, pool)
        parts = split_options(single)
        if parts is not None:  # lettered options
            lettered += 1
            assert parts[0] == "Which pathologies are present on tooth 46?" and set(parts[1]) <= set(pool)
        else:  # class words: "...: x, y or z?", "... (x or y)", "..., x or y?", "... x or y."
            plain += 1
            assert single.startswith("Which pathologies are present on tooth 46") and " or " in single, single
    # the project's own cues are used beside the training set's; both option forms occur
    assert "Select all that apply:" in multis and len(multis) >= 4 and lettered > 20 and plain > 5
    assert cross_format("counting", formats, rng, pool) is None
    assert cross_format(MULTI, AnswerFormats(), rng, pool) is None
    assert cross_format(SINGLE, formats, rng, None) is None


def test_a_report_question_asked_with_options_is_a_single_choice():
    report = "Is there any pleural abnormality?"
    formats = answer_formats([SINGLE_Q, report], [SINGLE, "report_generation"])
    assert formats.open_questions == [report] and formats.multi_questions == []
    rng = random.Random(1)
    outs = [cross_format(SINGLE, formats, rng, ["Mass", "Cyst", "Both"]) for _ in range(20)]
    assert all(o.startswith("Is there any pleural abnormality") for o in outs)
    assert all(split_options(o) is not None or " or " in o for o in outs)


def test_numeric_questions_share_their_number_instructions():
    rng = random.Random(0)
    counted = "What is the total cell count in this image? Answer with a number."
    outs = {number_tail(counted, rng) for _ in range(200)}
    # the instruction is dropped or swapped for any of the shared ones, never doubled
    assert outs == {"What is the total cell count in this image?"} | {
        f"What is the total cell count in this image? {t}" for t in NUMBER_TAILS}
    assert number_tail("Measure it; answer with a number.", random.Random(3)) in {
        "Measure it", *(f"Measure it. {t}" for t in NUMBER_TAILS)}
    # an instruction inside a sentence is no tail: kept, one may be added
    inner = "Estimate and answer with a number the angle"
    assert all(number_tail(inner, rng).startswith(inner) for _ in range(20))
    # the Augmenter gives every counting and regression question this treatment (here with almost no other
    # re-writing), no other task's, and none with --augment 0
    aug = Augmenter([counted], ["counting"], share=1e-9, swap=0.0)
    angle = "Estimate the angle in degrees."
    assert {aug(angle, "regression", rng) for _ in range(200)} == {angle} | {f"{angle} {t}" for t in NUMBER_TAILS}
    assert aug("Is it benign? Answer with a number.", SINGLE, rng) == "Is it benign? Answer with a number."
    off = Augmenter([counted], ["counting"], share=0.0, swap=0.0)
    assert off(counted, "counting", rng) == counted


def test_augmenter_crosses_formats_only_for_the_two_classification_tasks():
    texts, tasks = [SINGLE_Q, MULTI_Q, "How many cells?"], [SINGLE, MULTI, "counting"]
    rng = random.Random(0)
    always = Augmenter(texts, tasks, share=0.0, swap=0.0, cross=1.0)
    for _ in range(10):
        assert always(SINGLE_Q, SINGLE, rng).startswith("Which pathologies are present on tooth 46")
        assert always(MULTI_Q, MULTI, rng).startswith("Which grade is it? ")
    assert always("How many cells?", "counting", rng) == "How many cells?"
    never = Augmenter(texts, tasks, share=0.0, swap=0.0, cross=0.0)
    assert never.pool is None and never(MULTI_Q, MULTI, rng) == MULTI_Q


def test_the_image_a_question_names_is_swapped_for_another():
    texts = ["What finding is visible in this endoscopy frame? A. Polyp B. Ulcer", "Count the cells in this image.",
             "Which of the following is shown on these skin images?", "Which of the following is correct?"]
    contexts = context_pool(texts)
    assert contexts == ["this endoscopy frame", "this image", "these skin images"]  # "the following" is no image
    rng = random.Random(0)
    outs = {swap_context("What is the angle of progression (AoP) in this image?", contexts, rng) for _ in range(40)}
    assert outs == {f"What is the angle of progression (AoP) in {c}?" for c in contexts}
    assert swap_context("Estimate the angle in degrees.", contexts, rng) == "Estimate the angle in degrees."
    assert swap_context("How many cells in this image?", [], rng) == "How many cells in this image?"


def test_regression_questions_are_also_asked_as_generic_measurements():
    rng = random.Random(0)
    contexts = ["this tooth", "these skin images"]
    asked = [quantity_question(rng, contexts) for _ in range(300)]
    # every one names a quantity and one of the images, and ends as a question or an instruction
    pattern = re.compile(r"^(What is|Estimate|Measure|How large is|Give|Predict) the (\w+)( value)? (of|in) "
                         r"(this tooth|these skin images)( in \w+| as a percentage)?[?.]$")
    matches = [pattern.match(q) for q in asked]
    assert all(matches), [q for q, m in zip(asked, matches, strict=True) if not m][:3]
    quantities = {m.group(2) for m in matches}
    assert "percentage" in quantities and "angle" in quantities and len(quantities) >= 12
    assert {m.group(5) for m in matches} == set(contexts)
    assert quantity_question(random.Random(1), []).count("this image") == 1  # no image named in training
    # the Augmenter replaces about --quantity_questions of the regression questions, and only those
    texts = ["Estimate the angle of progression in this frame.", "Is the lesion benign in this frame? A. Yes B. No"]
    aug = Augmenter(texts, ["regression", SINGLE], share=0.0, swap=0.0, quantity=0.3)
    assert aug.contexts == ["this frame"]
    outs = [aug(texts[0], "regression", rng) for _ in range(1000)]
    replaced = [o for o in outs if o != texts[0]]
    assert 240 < len(replaced) < 360 and all(o.endswith(("this frame?", "this frame.")) or " this frame " in o
                                             for o in replaced)
    assert {aug(texts[1], SINGLE, rng) for _ in range(50)} == {texts[1]}
    counted = "How many cells in this frame?"
    assert {aug(counted, "counting", rng) for _ in range(50)} == {counted}
    off = Augmenter(texts, ["regression", SINGLE], share=0.0, swap=0.0, quantity=0.0)
    assert off.contexts == [] and off(texts[0], "regression", rng) == texts[0]


def test_the_paper_preset_scores_the_task_names_and_the_embedded_one_descriptions():
    script = load_script("task_classifier/train_task_classifier.py")
    parser = script.build_parser()
    paper, _ = script.make_config(parser.parse_args(["--preset", "paper"]))
    embedded, _ = script.make_config(parser.parse_args(["--preset", "embedded"]))
    assert (paper.label_prompts, embedded.label_prompts) == ("names", "descriptions")
    assert not any(d.startswith("label_prompts") for d in departures(paper))
    chosen, _ = script.make_config(parser.parse_args(["--preset", "paper", "--label_prompts", "descriptions"]))
    assert chosen.label_prompts == "descriptions"
    help_text = parser.format_help()
    assert re.search(r"default: descriptions \(embedded\s+preset\), names \(paper\s+preset\)", help_text), help_text
