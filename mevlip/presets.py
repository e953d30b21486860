"""Named presets: what a training row and an inference prompt look like, in one place.

``paper`` (the default everywhere) is what produced the released ME-VLIP adapters, read from the original
repository (BioMedIA-MBZUAI/FLARE2025-Task5-2D-biomedia): the converter ``llama_factory_internvl/scripts/internvl.py``
(its first block wrote ``internvl_train.jsonl``: one row per image, user turn ``"<image> " + Question``, assistant
turn the ``Answer`` as given), the recipe ``examples/train_qlora/internvl_lora_sft_bnb.yaml``
(``double_quantization: false``) and the training log ``llama/internvl/output.122183_4294967294.txt`` (68,601 rows;
its rendered example starts ``<|im_start|>user``: their vendored ``intern_vl`` template had ``default_system=""``).

``ours`` is this project's opt-in variant (each departure and its reason in :data:`OURS_DEPARTURES` and
``docs/fidelity.md``): every image of a record in one row, a system prompt, canonical answers, double quantisation.

``original`` is inference only: what the original ``docker_internvl/inference.py`` fed the model (an empty system
block, ``"<image>\\n" + Question``, the processor's default tiling, the first image, plain ``convert("RGB")``, its
own answer post-processing), to reproduce the published table with the released weights. Nothing trains on it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The ``dataset_info.json`` entry of the general adapter, named as in the authors' recipe (their file was
#: ``internvl_train.jsonl``; data preparation points it at ``flare/train``, the same rows as ``flare_all``).
GENERAL_DATASET = "internvl"

#: The system prompt of the ``ours`` preset (training recipes' ``default_system`` and inference).
OURS_SYSTEM = (
    "You are a medical imaging assistant. Answer the question about the image(s) concisely, "
    "in exactly the format the question asks for."
)


@dataclass(frozen=True)
class Preset:
    """How rows are written, recipes set and prompts rendered.

    Attributes:
        name: ``paper``, ``ours`` or ``original``.
        summary: one line for ``--help`` and reports.
        separator: text between the image placeholders and the question in the user turn.
        system: the system prompt (``""``: no system block; LLaMA-Factory ``default_system: ""``).
        empty_system_block: render ``<|im_start|>system\\n<|im_end|>\\n`` although ``system`` is empty (the
            original inference.py did; LLaMA-Factory never renders an empty block).
        multi_image: training rows of a multi-image record: ``explode`` (one row per image), ``keep`` (one row,
            every image) or ``first``.
        inference_images: images fed at inference: ``first`` or ``keep``.
        answers: assistant turn: ``as_given`` (the record's ``Answer`` text untouched) or ``canonical``.
        double_quantization: bitsandbytes double quantisation of the 4-bit base (training and inference).
        crop_to_patches: ``False``: one tile per image (LLaMA-Factory's default); ``True``: LLaMA-Factory's
            ``crop_to_patches`` (up to 12 tiles + thumbnail); ``None``: the processor's own call defaults (it tiles,
            up to the image processor config's ``max_patches``), as the original inference.py called it.
        lf_resize: open images with LLaMA-Factory's pre-resize (``image_max_pixels``/``image_min_pixels``).
        postprocess: ``canonical`` (:func:`mevlip.answers.canonicalize`) or ``original`` (the original's parser).
        trainable: whether data preparation and the recipes offer it.
    """

    name: str
    summary: str
    separator: str
    system: str
    multi_image: str
    inference_images: str
    answers: str
    double_quantization: bool
    empty_system_block: bool = False
    crop_to_patches: bool | None = False
    lf_resize: bool = True
    postprocess: str = "canonical"
    trainable: bool = True


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        "paper", "the authors' training: one row per image, '<image> ' + question, no system turn, answers as given",
        separator=" ", system="", multi_image="explode", inference_images="first", answers="as_given",
        double_quantization=False),
    "ours": Preset(
        "ours", "opt-in: every image in one row, '<image>\\n' + question, a system prompt, canonical answers",
        separator="\n", system=OURS_SYSTEM, multi_image="keep", inference_images="keep", answers="canonical",
        double_quantization=True),
    "original": Preset(
        "original", "inference only: what the original inference.py fed the model (empty system block, "
        "'<image>\\n' + question, default tiling, first image, its post-processing)",
        separator="\n", system="", empty_system_block=True, multi_image="first", inference_images="first",
        answers="as_given", double_quantization=True, crop_to_patches=None, lf_resize=False, postprocess="original",
        trainable=False),
}
DEFAULT_PRESET = "paper"
TRAINING_PRESETS: tuple[str, ...] = tuple(name for name, p in PRESETS.items() if p.trainable)

#: Why ``ours`` departs from ``paper``, one entry per behaviour (also in docs/fidelity.md).
OURS_DEPARTURES: dict[str, str] = {
    "multi_image": "keep: a multi-image record (neojaundice, bcn20000, IU_XRay) is one row with all its images, as it "
                   "is one question at inference; the paper's rows pair each image alone with the record's answer",
    "separator": "'<image>\\n' + question: the InternVL3-hf chat template's own image-then-newline layout",
    "system": "a short instruction to answer in the question's format",
    "answers": "canonical: answers stripped and written in one form per task (mevlip.prepare.canonical_answer)",
    "double_quantization": "true: LLaMA-Factory 0.9.5's default, slightly less memory",
}


def get_preset(name: str) -> Preset:
    """The :class:`Preset` called ``name``.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None


def training_preset(name: str) -> Preset:
    """Like :func:`get_preset`, for data preparation and recipes (``original`` is inference only)."""
    preset = get_preset(name)
    if not preset.trainable:
        raise ValueError(f"preset {name!r} is inference only; training presets: {', '.join(TRAINING_PRESETS)}")
    return preset
