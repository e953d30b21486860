"""Model inputs for inference that equal, id for id and pixel for pixel, what LLaMA-Factory trained on.

``tests/test_parity.py`` proves it against LLaMA-Factory's own pipeline for every task type, single- and
multi-image, with the stand-in and the recipes' ``default_system`` (rules in ``shared/prompt_parity.md``):

- the text is :func:`mevlip.prompts.build_inference_prompt` of the training row's user value
  (:func:`mevlip.prompts.render_user`), with the processor's ``<IMG_CONTEXT>`` where the row had ``<image>``;
- images are opened with :func:`mevlip.prompts.load_image` (LLaMA-Factory's pre-resize, with the recipe's
  ``image_max_pixels`` / ``image_min_pixels``);
- the tiling arguments are always passed (:func:`mevlip.prompts.processor_kwargs`), because the processor's call
  defaults tile while LLaMA-Factory's do not.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from mevlip.prompts import (
    DEFAULT_SYSTEM,
    IMAGE_MAX_PIXELS,
    IMAGE_MIN_PIXELS,
    build_inference_prompt,
    load_image,
    processor_kwargs,
    render_user,
)


def build_prompt(processor, question: str, n_images: int, system: str | None = DEFAULT_SYSTEM) -> str:
    """The prompt text for one question: exactly what the ``intern_vl`` template rendered for its training row."""
    return build_inference_prompt(render_user(question, n_images), processor.image_token, system)


def build_inputs(processor, question: str, image_paths: Sequence[str | os.PathLike],
                 system: str | None = DEFAULT_SYSTEM, crop_to_patches: bool = False,
                 max_pixels: int = IMAGE_MAX_PIXELS, min_pixels: int = IMAGE_MIN_PIXELS):
    """``input_ids``, ``attention_mask`` and ``pixel_values`` (batch of 1) for one question and its images.

    Args:
        processor: ``AutoProcessor.from_pretrained(model_dir)`` (default backend, as LLaMA-Factory loads it).
        question: the FLARE question, byte for byte.
        image_paths: the record's images in order (all of them: a multi-image record is one input).
        system: the recipe's ``default_system``; ``None``/``""`` renders no system block.
        crop_to_patches: the recipe's ``crop_to_patches`` (the recipes leave it off: one tile per image).
        max_pixels, min_pixels: the recipe's ``image_max_pixels`` / ``image_min_pixels``.
    """
    return build_batch(processor, [question], [image_paths], system, crop_to_patches, max_pixels, min_pixels)


def build_batch(processor, questions: Sequence[str], image_paths: Sequence[Sequence[str | os.PathLike]],
                system: str | None = DEFAULT_SYSTEM, crop_to_patches: bool = False,
                max_pixels: int = IMAGE_MAX_PIXELS, min_pixels: int = IMAGE_MIN_PIXELS):
    """A left-padded batch for ``generate``; each row's unpadded ids equal :func:`build_inputs` of that row.

    ``pixel_values`` holds every tile of every image, row by row and image by image, as the model expects.
    """
    if len(questions) != len(image_paths):
        raise ValueError(f"{len(questions)} questions but {len(image_paths)} image lists")
    texts, images = [], []
    for question, paths in zip(questions, image_paths, strict=True):
        if not paths:
            raise ValueError(f"question {question[:60]!r} has no image")
        texts.append(build_prompt(processor, question, len(paths), system))
        images.extend(load_image(p, max_pixels, min_pixels) for p in paths)
    return processor(images=images, text=texts, return_tensors="pt", padding=True, padding_side="left",
                     **processor_kwargs(crop_to_patches))
