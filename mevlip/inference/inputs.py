"""Model inputs for inference that equal, id for id and pixel for pixel, what LLaMA-Factory trained on.

``tests/test_parity.py`` proves it against LLaMA-Factory's own pipeline for every task type, single- and
multi-image, under each training preset with the stand-in recipes (rules in ``docs/prompt_parity.md``):

- the text is :func:`mevlip.prompts.build_inference_prompt` of the training row's user value
  (:func:`mevlip.prompts.render_user` under the preset), with the processor's ``<IMG_CONTEXT>`` where the row had
  ``<image>``, and the preset's system prompt (``paper``: none);
- images are opened with :func:`mevlip.prompts.load_image` (LLaMA-Factory's pre-resize, with the recipe's
  ``image_max_pixels`` / ``image_min_pixels``);
- the tiling arguments are always passed (:func:`mevlip.prompts.processor_kwargs`), because the processor's call
  defaults tile while LLaMA-Factory's do not.

The ``original`` preset instead reproduces what the original inference.py fed the model (empty system block,
``"<image>\\n"``, the processor's own tiling, no pre-resize). The caller chooses which images to pass: the preset's
``inference_images`` (``paper``: the first image, the only kind of row it trained on).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from mevlip.presets import DEFAULT_PRESET, Preset, get_preset
from mevlip.prompts import IMAGE_MAX_PIXELS, IMAGE_MIN_PIXELS, load_image, preset_prompt, processor_kwargs


def _preset(preset: str | Preset) -> Preset:
    return get_preset(preset) if isinstance(preset, str) else preset


def build_prompt(processor, question: str, n_images: int, preset: str | Preset = DEFAULT_PRESET) -> str:
    """The prompt text for one question: exactly what the ``intern_vl`` template rendered for its training row."""
    return preset_prompt(question, n_images, processor.image_token, _preset(preset))


def build_inputs(processor, question: str, image_paths: Sequence[str | os.PathLike],
                 preset: str | Preset = DEFAULT_PRESET, max_pixels: int = IMAGE_MAX_PIXELS,
                 min_pixels: int = IMAGE_MIN_PIXELS):
    """``input_ids``, ``attention_mask`` and ``pixel_values`` (batch of 1) for one question and its images.

    Args:
        processor: ``AutoProcessor.from_pretrained(model_dir)`` (default backend, as LLaMA-Factory loads it).
        question: the FLARE question, byte for byte.
        image_paths: the images fed to the model, in order.
        preset: a :mod:`mevlip.presets` name or :class:`~mevlip.presets.Preset` (system prompt, separator, tiling).
        max_pixels, min_pixels: the recipe's ``image_max_pixels`` / ``image_min_pixels``.
    """
    return build_batch(processor, [question], [image_paths], preset, max_pixels, min_pixels)


def build_batch(processor, questions: Sequence[str], image_paths: Sequence[Sequence[str | os.PathLike]],
                preset: str | Preset = DEFAULT_PRESET, max_pixels: int = IMAGE_MAX_PIXELS,
                min_pixels: int = IMAGE_MIN_PIXELS):
    """A left-padded batch for ``generate``; each row's unpadded ids equal :func:`build_inputs` of that row.

    ``pixel_values`` holds every tile of every image, row by row and image by image, as the model expects.
    """
    spec = _preset(preset)
    if len(questions) != len(image_paths):
        raise ValueError(f"{len(questions)} questions but {len(image_paths)} image lists")
    texts, images = [], []
    for question, paths in zip(questions, image_paths, strict=True):
        if not paths:
            raise ValueError(f"question {question[:60]!r} has no image")
        texts.append(build_prompt(processor, question, len(paths), spec))
        images.extend(load_image(p, max_pixels, min_pixels, spec.lf_resize) for p in paths)
    return processor(images=images, text=texts, return_tensors="pt", padding=True, padding_side="left",
                     **processor_kwargs(spec.crop_to_patches))
