"""Load InternVL3-hf (or the stand-in) with its LoRA adapters, and generate answers in batches.

The base loads natively in transformers (no ``trust_remote_code``), in 4-bit nf4 on CUDA as the paper (and with
the same ``BitsAndBytesConfig`` LLaMA-Factory trained the QLoRA adapters under: the preset's double quantisation,
compute and storage dtype = the training dtype), or in float32 on CPU. Inputs are built by :mod:`mevlip.prompts`
under a preset (:mod:`mevlip.presets`), so they are the token ids and pixels LLaMA-Factory trained on
(``docs/prompt_parity.md``), or, under ``original``, what the original inference.py fed the model.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from mevlip.inference.inputs import build_batch
from mevlip.presets import DEFAULT_PRESET, Preset, get_preset

logger = logging.getLogger(__name__)


@dataclass
class VLMConfig:
    """How to load and prompt the model.

    Attributes:
        base_model: hub id or local folder of the base InternVL3-hf model (or the stand-in).
        adapters_dir: folder holding one LoRA adapter per sub-folder (``general``, ``classification``, ...); None
            answers with the base model alone.
        device: ``cuda:0``, ``cpu``, ...
        quantization: ``4bit`` (nf4, as QLoRA training), ``none``, or ``auto`` (4bit on CUDA, none on CPU).
        preset: ``paper``, ``ours`` or ``original`` (:mod:`mevlip.presets`): prompt, images, tiles, double
            quantisation.
        system: override the preset's system prompt (must equal the recipes' ``default_system``).
        crop_to_patches: override the preset's tiling (the recipes' ``crop_to_patches``).
        image_max_pixels / image_min_pixels: the recipes' values (LLaMA-Factory's defaults).
    """

    base_model: str
    adapters_dir: str | None = None
    device: str = "cpu"
    quantization: str = "auto"
    preset: str = DEFAULT_PRESET
    system: str | None = None
    crop_to_patches: bool | None = None
    image_max_pixels: int = 768 * 768
    image_min_pixels: int = 32 * 32

    def resolved(self) -> Preset:
        """The preset with this config's overrides applied."""
        from dataclasses import replace

        preset = get_preset(self.preset)
        changes = {}
        if self.system is not None:
            changes["system"] = self.system
        if self.crop_to_patches is not None:
            changes["crop_to_patches"] = self.crop_to_patches
        return replace(preset, **changes) if changes else preset


class VLM:
    """An InternVL model with named LoRA adapters, answering batches of (question, images) greedily."""

    def __init__(self, config: VLMConfig):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.config = config
        self.preset = config.resolved()
        device = torch.device(config.device)
        quant = config.quantization
        if quant == "auto":
            quant = "4bit" if device.type == "cuda" else "none"
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        kwargs: dict = {"dtype": dtype}
        if quant == "4bit":
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=self.preset.double_quantization,
                bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_storage=dtype)
            kwargs["device_map"] = {"": device}
        elif quant != "none":
            raise ValueError(f"quantization must be auto, 4bit or none, got {quant!r}")
        self.quantization = quant
        self.processor = AutoProcessor.from_pretrained(config.base_model)
        self.processor.tokenizer.padding_side = "left"  # generation appends on the right
        model = AutoModelForImageTextToText.from_pretrained(config.base_model, **kwargs)
        if quant == "none":
            model = model.to(device)
        elif device.type == "cpu":
            _train_numerics_on_cpu(model)
        self.adapters = self._load_adapters(model, config.adapters_dir)
        self.model = self.peft_model if self.adapters else model
        self.model.eval()
        #: the language model's context in tokens: a longer prompt would exhaust memory, not give an answer
        self.context = getattr(model.config.get_text_config(), "max_position_embeddings", None)
        self.device = device
        self.active: str | None = None

    def _load_adapters(self, model, adapters_dir: str | None) -> list[str]:
        """Load every adapter :func:`mevlip.inference.layout.find_adapters` finds (our layout or the release's)."""
        from mevlip.inference.layout import find_adapters

        self.peft_model = None
        self.adapter_folders: dict[str, Path] = {}
        if not adapters_dir:
            return []
        folders = find_adapters(adapters_dir).folders
        from peft import PeftModel

        for name, folder in folders.items():
            if self.peft_model is None:
                self.peft_model = PeftModel.from_pretrained(model, str(folder), adapter_name=name)
            else:
                self.peft_model.load_adapter(str(folder), adapter_name=name)
        self.adapter_folders = dict(folders)
        logger.info("loaded adapters: %s", ", ".join(f"{n} ({f})" for n, f in folders.items()))
        return list(folders)

    def use(self, adapter: str | None) -> None:
        """Make ``adapter`` active (``None``: the base model, adapters disabled)."""
        if adapter == self.active:
            return
        if adapter is not None:
            if adapter not in self.adapters:
                raise KeyError(f"adapter {adapter!r} is not loaded (loaded: {', '.join(self.adapters) or 'none'})")
            self.peft_model.set_adapter(adapter)
        self.active = adapter

    def build_inputs(self, items: list[tuple[str, list[str]]]):
        """Processor inputs for a batch of ``(question, image paths)``, left-padded, as the preset trained.

        The caller passes the images the preset feeds (``first``: one); each is one tile unless the preset tiles.
        """
        return build_batch(self.processor, [q for q, _ in items], [paths for _, paths in items], self.preset,
                           self.config.image_max_pixels, self.config.image_min_pixels)

    @torch.inference_mode()
    def generate(self, items: list[tuple[str, list[str]]], max_new_tokens: int = 512) -> list[str]:
        """Greedy answers (special tokens removed) for a batch of ``(question, image paths)``.

        Raises:
            ValueError: a prompt (question and image tokens) plus ``max_new_tokens`` is longer than the model's
                context; checked before the model runs, so one huge question fails alone (inference retries a
                failed batch one record at a time) instead of exhausting memory.
        """
        inputs = self.build_inputs(items)
        length = int(inputs["input_ids"].shape[1])
        if self.context and length + max_new_tokens > self.context:
            raise ValueError(f"the prompt is {length:,} tokens (question and image tokens) + {max_new_tokens} new, "
                             f"over the model's context of {self.context:,} tokens; not answered")
        inputs = inputs.to(self.device)
        if "pixel_values" in inputs and self.device.type == "cuda":
            inputs["pixel_values"] = inputs["pixel_values"].to(torch.bfloat16)
        ctx = self.peft_model.disable_adapter() if (self.adapters and self.active is None) else contextlib.nullcontext()
        with ctx:
            out = self.model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens,
                                      pad_token_id=self.processor.tokenizer.pad_token_id)
        new = out[:, inputs["input_ids"].shape[1]:]
        return self.processor.batch_decode(new, skip_special_tokens=True)



def _train_numerics_on_cpu(model) -> int:
    """Make 4-bit layers on CPU compute as in QLoRA training (dequantise, then matmul).

    In eval mode bitsandbytes repacks 4-bit weights for its AVX512-BF16 CPU kernel, whose numerics differ from the
    dequantise-then-matmul path that training used (and that needs 64-wide blocks); turning it off makes inference see
    exactly the base weights the adapters were trained against. Returns how many layers were changed.
    """
    import bitsandbytes as bnb

    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
    return len(layers)
