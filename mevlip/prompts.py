"""The one prompt renderer: what data preparation writes for LLaMA-Factory and what inference feeds the model.

Training rows are ShareGPT turns whose user value is :func:`render_user` of the question under a preset
(:mod:`mevlip.presets`). Under ``paper`` (the default) LLaMA-Factory's ``intern_vl`` template, with
``default_system: ""`` in the recipe, turns a row into::

    <|im_start|>user\\n<img>...</img> {question}<|im_end|>\\n<|im_start|>assistant\\n

(``ours`` puts a newline after the image and a system block first). Inference builds the same string with
:func:`build_inference_prompt` and loads pixels with :func:`load_image` (a copy of LLaMA-Factory's pre-resize), one
tile per image unless ``crop_to_patches``; see ``docs/prompt_parity.md``. The parity test checks the token ids and
pixels against LLaMA-Factory itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from mevlip.presets import DEFAULT_PRESET, Preset, get_preset

#: LLaMA-Factory's image placeholder in ShareGPT rows.
LF_IMAGE_TOKEN = "<image>"
#: LLaMA-Factory's defaults for ``image_max_pixels`` / ``image_min_pixels``.
IMAGE_MAX_PIXELS = 768 * 768
IMAGE_MIN_PIXELS = 32 * 32
MULTI_IMAGE_MODES = ("keep", "first", "explode")


def render_user(question: str, n_images: int, preset: str | Preset = DEFAULT_PRESET) -> str:
    """The user turn of a training row: one ``<image>`` per image, in order, the preset's separator, the question.

    ``paper``: ``"<image> " + question`` (the authors' converter); ``ours``: ``"<image>\\n" + question``. The
    question is kept byte for byte (no stripping), so the key ``ImageName||Question`` still matches.
    """
    if n_images < 1:
        raise ValueError(f"a FLARE question has at least one image, got {n_images}")
    separator = (get_preset(preset) if isinstance(preset, str) else preset).separator
    return LF_IMAGE_TOKEN * n_images + separator + question


def select_images(names: Sequence[str], mode: str = "keep") -> list[list[str]]:
    """How a multi-image record becomes model inputs.

    Args:
        names: the record's images, in order.
        mode: ``keep`` (one input with every image), ``first`` (the first image only) or ``explode`` (one
            input per image, as the authors' own converter did).

    Returns:
        One list of image names per model input.
    """
    if mode == "keep":
        return [list(names)]
    if mode == "first":
        return [[names[0]]]
    if mode == "explode":
        return [[n] for n in names]
    raise ValueError(f"multi_image must be one of {', '.join(MULTI_IMAGE_MODES)}, got {mode!r}")


def build_inference_prompt(user_value: str, image_token: str, system: str | None = "",
                           empty_system_block: bool = False) -> str:
    """The full prompt text that LLaMA-Factory's ``intern_vl`` template renders for a training row.

    Args:
        user_value: the row's user value (:func:`render_user`), with ``<image>`` placeholders.
        image_token: the processor's placeholder (``processor.image_token``, ``<IMG_CONTEXT>`` for InternVL); the
            processor expands each into ``<img>`` + context tokens + ``</img>`` as LLaMA-Factory does.
        system: the recipe's ``default_system``; ``""`` or ``None`` renders no system block.
        empty_system_block: render ``<|im_start|>system\\n<|im_end|>\\n`` even for an empty system (what the
            original inference.py wrote; LLaMA-Factory never does).
    """
    content = user_value.replace(LF_IMAGE_TOKEN, image_token)
    head = f"<|im_start|>system\n{system or ''}<|im_end|>\n" if (system or empty_system_block) else ""
    return f"{head}<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"


def preset_prompt(question: str, n_images: int, image_token: str, preset: str | Preset = DEFAULT_PRESET) -> str:
    """The inference prompt of one question under a preset (what that preset's training rendered)."""
    preset = get_preset(preset) if isinstance(preset, str) else preset
    return build_inference_prompt(render_user(question, n_images, preset), image_token, preset.system,
                                  preset.empty_system_block)


def load_image(path: str | os.PathLike, max_pixels: int = IMAGE_MAX_PIXELS, min_pixels: int = IMAGE_MIN_PIXELS,
               lf_resize: bool = True):
    """Open an image exactly as LLaMA-Factory's ``MMPluginMixin._preprocess_image`` does before the processor.

    Images over ``max_pixels`` are shrunk and images under ``min_pixels`` enlarged by sqrt of the ratio, with
    ``int()`` truncation and PIL's default filter; then converted to RGB. ``lf_resize=False`` only converts to RGB
    (what the original inference.py did: ``Image.open(path).convert("RGB")``).
    """
    from PIL import Image

    image = Image.open(path)
    if not lf_resize:
        return image.convert("RGB")
    if image.width * image.height > max_pixels:
        factor = math.sqrt(max_pixels / (image.width * image.height))
        image = image.resize((int(image.width * factor), int(image.height * factor)))
    if image.width * image.height < min_pixels:
        factor = math.sqrt(min_pixels / (image.width * image.height))
        image = image.resize((int(image.width * factor), int(image.height * factor)))
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


def processor_kwargs(crop_to_patches: bool | None = False) -> dict:
    """Tiling arguments to pass on EVERY processor call (its call defaults tile; LLaMA-Factory's do not).

    ``None`` passes nothing: the processor's own call defaults (what the original inference.py got).
    """
    if crop_to_patches is None:
        return {}
    if crop_to_patches:
        return {"crop_to_patches": True, "max_patches": 12, "min_patches": 1}
    return {"crop_to_patches": False}
