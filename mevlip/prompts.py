"""The one prompt renderer: what data preparation writes for LLaMA-Factory and what inference feeds the model.

Training rows are ShareGPT turns whose user value is :func:`render_user` of the question; LLaMA-Factory's
``intern_vl`` template (with ``default_system`` set to :data:`DEFAULT_SYSTEM` in every recipe) turns them into::

    <|im_start|>system\\n{DEFAULT_SYSTEM}<|im_end|>\\n<|im_start|>user\\n<img>...</img>\\n{question}<|im_end|>\\n
    <|im_start|>assistant\\n

Inference builds the same string with :func:`build_inference_prompt` and loads pixels with
:func:`load_image` (a copy of LLaMA-Factory's pre-resize), one tile per image unless ``crop_to_patches``; see
``shared/prompt_parity.md``. The parity test checks the token ids and pixels against LLaMA-Factory itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

#: The system prompt of every recipe (``default_system`` in the YAMLs) and of inference.
DEFAULT_SYSTEM = (
    "You are a medical imaging assistant. Answer the question about the image(s) concisely, "
    "in exactly the format the question asks for."
)
#: LLaMA-Factory's image placeholder in ShareGPT rows.
LF_IMAGE_TOKEN = "<image>"
#: LLaMA-Factory's defaults for ``image_max_pixels`` / ``image_min_pixels``.
IMAGE_MAX_PIXELS = 768 * 768
IMAGE_MIN_PIXELS = 32 * 32
MULTI_IMAGE_MODES = ("keep", "first", "explode")


def render_user(question: str, n_images: int) -> str:
    """The user turn of a training row: one ``<image>`` per image, in order, then a newline and the question.

    The question is kept byte for byte (no stripping), so the key ``ImageName||Question`` still matches.
    """
    if n_images < 1:
        raise ValueError(f"a FLARE question has at least one image, got {n_images}")
    return LF_IMAGE_TOKEN * n_images + "\n" + question


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


def build_inference_prompt(user_value: str, image_token: str, system: str | None = DEFAULT_SYSTEM) -> str:
    """The full prompt text that LLaMA-Factory's ``intern_vl`` template renders for a training row.

    Args:
        user_value: the row's user value (:func:`render_user`), with ``<image>`` placeholders.
        image_token: the processor's placeholder (``processor.image_token``, ``<IMG_CONTEXT>`` for InternVL); the
            processor expands each into ``<img>`` + context tokens + ``</img>`` as LLaMA-Factory does.
        system: the recipe's ``default_system``; ``""`` or ``None`` renders no system block.
    """
    content = user_value.replace(LF_IMAGE_TOKEN, image_token)
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return f"{head}<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"


def load_image(path: str | os.PathLike, max_pixels: int = IMAGE_MAX_PIXELS, min_pixels: int = IMAGE_MIN_PIXELS):
    """Open an image exactly as LLaMA-Factory's ``MMPluginMixin._preprocess_image`` does before the processor.

    Images over ``max_pixels`` are shrunk and images under ``min_pixels`` enlarged by sqrt of the ratio, with
    ``int()`` truncation and PIL's default filter; then converted to RGB.
    """
    from PIL import Image

    image = Image.open(path)
    if image.width * image.height > max_pixels:
        factor = math.sqrt(max_pixels / (image.width * image.height))
        image = image.resize((int(image.width * factor), int(image.height * factor)))
    if image.width * image.height < min_pixels:
        factor = math.sqrt(min_pixels / (image.width * image.height))
        image = image.resize((int(image.width * factor), int(image.height * factor)))
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


def processor_kwargs(crop_to_patches: bool = False) -> dict:
    """Tiling arguments to pass on EVERY processor call (its call defaults tile; LLaMA-Factory's do not)."""
    if crop_to_patches:
        return {"crop_to_patches": True, "max_patches": 12, "min_patches": 1}
    return {"crop_to_patches": False}
