"""Prompt cases the mutation run (``make mutation``, docs/mutation.md) showed untested.

Image pre-processing is checked against LLaMA-Factory's own ``_preprocess_image`` (the InternVL plugin inherits it);
prompt strings against the ``intern_vl`` template's layout written out by hand (``docs/prompt_parity.md``).
"""

import pytest
from llamafactory.data.mm_plugin import MMPluginMixin
from PIL import Image

from mevlip.prompts import (
    build_inference_prompt,
    load_image,
    preset_prompt,
    processor_kwargs,
    render_user,
    select_images,
)


@pytest.mark.parametrize("size,mode", [((1000, 700), "RGB"), ((769, 768), "L"), ((20, 30), "RGBA"), ((32, 32), "P"),
                                       ((31, 33), "RGB"), ((768, 768), "RGB"), ((5000, 3), "RGB")])
def test_load_image_equals_llamafactory(tmp_path, size, mode):
    path = tmp_path / "x.png"
    Image.new(mode, size).save(path)
    ours = load_image(path)
    theirs = MMPluginMixin._preprocess_image(None, Image.open(path), image_max_pixels=768 * 768,
                                             image_min_pixels=32 * 32)
    assert (ours.size, ours.mode) == (theirs.size, theirs.mode)
    small = load_image(path, max_pixels=100 * 100, min_pixels=50 * 50)
    assert small.size == MMPluginMixin._preprocess_image(None, Image.open(path), image_max_pixels=100 * 100,
                                                         image_min_pixels=50 * 50).size


def test_load_image_sizes_by_hand(tmp_path):
    Image.new("L", (1536, 768)).save(tmp_path / "big.png")  # 2x the pixel budget: each side / sqrt(2), truncated
    assert load_image(tmp_path / "big.png").size == (1086, 543)
    Image.new("RGBA", (16, 16)).save(tmp_path / "tiny.png")  # a quarter of the minimum: each side x 2
    assert load_image(tmp_path / "tiny.png").size == (32, 32) and load_image(tmp_path / "tiny.png").mode == "RGB"
    kept = load_image(tmp_path / "big.png", lf_resize=False)  # the original: only converted
    assert kept.size == (1536, 768) and kept.mode == "RGB"


def test_processor_kwargs():
    assert processor_kwargs() == {"crop_to_patches": False}
    assert processor_kwargs(True) == {"crop_to_patches": True, "max_patches": 12, "min_patches": 1}
    assert processor_kwargs(None) == {}


def test_prompt_strings_by_hand():
    assert build_inference_prompt("<image> Q?", "<IMG_CONTEXT>") == \
        "<|im_start|>user\n<IMG_CONTEXT> Q?<|im_end|>\n<|im_start|>assistant\n"
    assert build_inference_prompt("<image><image>\nQ?", "<I>", system="Be brief.") == \
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<I><I>\nQ?<|im_end|>\n<|im_start|>assistant\n"
    assert build_inference_prompt("Q", "<I>", system=None, empty_system_block=True) == \
        "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    assert preset_prompt("Q?", 2, "<I>") == "<|im_start|>user\n<I><I> Q?<|im_end|>\n<|im_start|>assistant\n"
    assert preset_prompt("Q?", 1, "<I>", "original") == \
        "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n<I>\nQ?<|im_end|>\n<|im_start|>assistant\n"


def test_user_turn_and_image_selection():
    assert render_user("  Two  spaces\n", 2) == "<image><image>   Two  spaces\n"  # kept byte for byte
    with pytest.raises(ValueError, match="at least one image, got 0"):
        render_user("Q", 0)
    assert select_images(["a", "b"]) == [["a", "b"]]
    assert select_images(["a", "b"], "first") == [["a"]]
    assert select_images(["a", "b"], "explode") == [["a"], ["b"]]
    with pytest.raises(ValueError, match="multi_image must be one of keep, first, explode, got 'all'"):
        select_images(["a"], "all")
