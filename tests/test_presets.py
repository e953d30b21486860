"""Inference presets, pinned: the exact prompt string, image count and tile count each feeds the model, and the
exact ``Answer`` each post-processing writes.

Expected prompts are written out by hand from the sources named in ``docs/fidelity.md`` (the authors' training
log and converter for ``paper``, the original ``docker_internvl/inference.py`` for ``original``), not produced by
the renderer under test. The stand-in has 56 px tiles and 4 context tokens per tile.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from mevlip.answers import original_parse_answer
from mevlip.inference.inputs import build_inputs
from mevlip.inference.run import Item, Route, postprocess
from mevlip.presets import OURS_SYSTEM, PRESETS, get_preset

QUESTION = "Which finding is present?  A. Cyst, B. Nodule\tAnswer with the letter. "  # odd whitespace kept as is
CTX = "<IMG_CONTEXT>" * 4  # one stand-in tile


@pytest.fixture(scope="module")
def processor(standin_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(standin_dir)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A square image (one tile whatever the tiling) and a 300 x 200 one (tiled by the processor's defaults)."""
    folder = tmp_path_factory.mktemp("preset_images")
    square, wide = folder / "square.png", folder / "wide.png"
    Image.new("RGB", (56, 56), (200, 30, 30)).save(square)
    Image.new("RGBA", (300, 200), (10, 120, 200, 255)).save(wide)
    return [str(square), str(wide)]


def _text(processor, inputs) -> str:
    return processor.tokenizer.decode(inputs["input_ids"][0])


def test_paper_feeds_the_authors_training_format(processor, images):
    """No system block, ``</img>`` + ONE space + the question byte for byte; first image only, one tile."""
    fed = images[:1]  # paper: the first image of a record (inference_images == "first")
    assert get_preset("paper").inference_images == "first"
    inputs = build_inputs(processor, QUESTION, fed, "paper")
    assert _text(processor, inputs) == (
        "<|im_start|>user\n<img>" + CTX + "</img> " + QUESTION + "<|im_end|>\n<|im_start|>assistant\n")
    assert inputs["pixel_values"].shape[0] == 1
    wide = build_inputs(processor, QUESTION, images[1:], "paper")
    assert wide["pixel_values"].shape[0] == 1, "paper trained on one tile per image"


def test_ours_feeds_every_image_after_its_system_prompt(processor, images):
    assert get_preset("ours").inference_images == "keep"
    inputs = build_inputs(processor, QUESTION, images, "ours")
    assert _text(processor, inputs) == (
        f"<|im_start|>system\n{OURS_SYSTEM}<|im_end|>\n<|im_start|>user\n"
        "<img>" + CTX + "</img><img>" + CTX + "</img>\n" + QUESTION + "<|im_end|>\n<|im_start|>assistant\n")
    assert inputs["pixel_values"].shape[0] == 2  # one tile per image


def test_original_equals_the_original_processor_call(processor, images):
    """``original``: the original inference.py's own call on today's transformers (its ``<image>`` placeholder is
    today's ``<IMG_CONTEXT>``): empty system block, ``\\n`` after the image, processor call defaults (tiling), no
    pre-resize, ``convert("RGB")``."""
    import torch

    spec = get_preset("original")
    assert spec.inference_images == "first" and spec.double_quantization is True
    wide = images[1]
    prompt = ("<|im_start|>system\n<|im_end|>\n<|im_start|>user\n" + processor.image_token + "\n" + QUESTION
              + "<|im_end|>\n<|im_start|>assistant\n")  # the original's f-strings, "<image>" -> today's placeholder
    theirs = processor(text=[prompt], images=[Image.open(wide).convert("RGB")], padding=True, return_tensors="pt")
    ours = build_inputs(processor, QUESTION, [wide], "original")
    assert ours["input_ids"][0].tolist() == theirs["input_ids"][0].tolist()
    assert torch.equal(ours["pixel_values"], theirs["pixel_values"])
    tiles = ours["pixel_values"].shape[0]
    assert tiles == 7  # pinned: max_patches 12 -> a 3 x 2 grid for 300 x 200, plus the thumbnail
    assert _text(processor, ours) == ("<|im_start|>system\n<|im_end|>\n<|im_start|>user\n<img>" + CTX * tiles
                                      + "</img>\n" + QUESTION + "<|im_end|>\n<|im_start|>assistant\n")


def test_every_preset_is_pinned_here():
    assert set(PRESETS) == {"paper", "ours", "original"}


def test_vlm_takes_the_presets_quantisation_and_prompt(standin_dir, images):
    from mevlip.inference.vlm import VLM, VLMConfig

    vlm = VLM(VLMConfig(str(standin_dir), device="cpu", quantization="none", preset="paper"))
    assert vlm.preset.double_quantization is False and vlm.preset.system == ""
    text = vlm.processor.tokenizer.decode(vlm.build_inputs([(QUESTION, images[:1])])["input_ids"][0])
    assert text == "<|im_start|>user\n<img>" + CTX + "</img> " + QUESTION + "<|im_end|>\n<|im_start|>assistant\n"
    override = VLM(VLMConfig(str(standin_dir), device="cpu", quantization="none", preset="paper", system="Be brief."))
    text = override.processor.tokenizer.decode(override.build_inputs([(QUESTION, images[:1])])["input_ids"][0])
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<img>")


# ----------------------------------------------------------------------------------------------- post-processing
#: (record TaskType as written, raw model output, Answer under canonical, Answer under original), hand-worked.
CASES = [
    ("Classification", "B", "B", "B"),
    ("classification", "The answer is B.", "B", "The answer is B."),
    ("Multi-label Classification", "Caries; Impacted tooth", "Caries; Impacted tooth", "Caries; Impacted tooth"),
    ("detection", "[[1,2,3,4]]", "[[1, 2, 3, 4]]", "[[1, 2, 3, 4]]"),
    ("instance_detection", 'boxes\n{"1": [[1,2,3,4]]}', '{"1": [[1, 2, 3, 4]]}', '{"1": [[1, 2, 3, 4]]}'),
    ("Counting", "about 42.0 cells", "42", "42.0"),
    ("Counting", "none", "", "0"),
    ("regression", "20", "20.0", "20"),
    ("Report_Generation", "Normal heart size.\nNo effusion.", "Normal heart size.\nNo effusion.", "No effusion."),
]
WRONG_ROUTE = {"classification": "report_generation", "multi_label_classification": "classification",
               "detection": "counting", "instance_detection": "detection", "counting": "regression",
               "regression": "counting", "report_generation": "multi_label_classification"}


@pytest.mark.parametrize("task_type,raw,canonical,original", CASES)
@pytest.mark.parametrize("routed_right", [True, False])
def test_answer_follows_the_records_task_type_whatever_the_route(task_type, raw, canonical, original, routed_right):
    from mevlip.tasks import normalize_task_type

    task = normalize_task_type(task_type)
    item = Item(0, "f.json", 0, "k", question="q", images=["x.png"], task=task, task_type=task_type)
    route = Route(task if routed_right else WRONG_ROUTE[task], 0.9, "general")
    assert postprocess(item, route, raw, "canonical") == (task, canonical)
    assert postprocess(item, route, raw, "original") == (task, original)


def test_a_record_without_task_type_is_parsed_as_routed():
    item = Item(0, "f.json", 0, "k", question="q", images=["x.png"])
    assert postprocess(item, Route("counting", 0.9, "counting"), "17 cells", "canonical") == ("counting", "17")
    assert postprocess(item, Route("counting", 0.9, "counting"), "17 cells", "original") == ("counting", "17")


def test_original_parser_keys_on_the_raw_spelling():
    """The original lower-cases TaskType and compares it as written: ``multi_label_classification`` (underscores)
    falls to its default branch and is returned whole, while ``Multi-label Classification`` is split on ``;``."""
    raw = "A ;B"
    assert original_parse_answer(raw, "Multi-label Classification") == "A; B"
    assert original_parse_answer(raw, "multi_label_classification") == "A ;B"
    assert original_parse_answer("Please provide a clear and concise answer. 7", "Counting") == "7"
    assert original_parse_answer('x [1, {"a": 2}] y', "detection") == '[1, {"a": 2}]'
    assert original_parse_answer("[1, 2", "detection") == "[1, 2"
    assert json.loads(original_parse_answer("[[1, 2, 3, 4]]", "Detection")) == [[1, 2, 3, 4]]
