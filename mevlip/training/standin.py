"""A tiny, randomly initialised model of the InternVL3-8B-hf architecture, built offline for smoke tests and the demo.

It is NOT a medical model and knows nothing until trained: it exists so that every stage (LLaMA-Factory QLoRA
training, adapter loading, batched generation, the prompt-parity test) runs on a CPU in seconds with the exact
classes, special tokens, chat template and image pipeline of the real ``OpenGVLab/InternVL3-8B-hf``.

What it keeps from the real model (:data:`INTERNVL3_8B_HF_CONFIG`, a mirror of its ``config.json``): the
InternVL vision tower (layer norm, layer scale, absolute position embeddings, q/k/v with bias), the
pixel-shuffle projector (``downsample_ratio`` 0.5, GELU), a Qwen2 language model (GQA, RoPE theta 1e6, RMSNorm,
untied ``lm_head``), the InternVL special tokens in the real order, the chat template, eos ``<|im_end|>`` and pad
``<|endoftext|>``. What it shrinks: width, depth, image size (56 px tiles -> ``image_seq_length`` 4 instead of
448 px -> 256) and the vocabulary (a byte-level BPE trained on mini-FLARE texts with Qwen2's pre-tokenizer).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mevlip.presets import OURS_SYSTEM

logger = logging.getLogger(__name__)

#: A mirror of the ``OpenGVLab/InternVL3-8B-hf`` config (InternViT-300M-448px-V2.5 + Qwen2.5-7B); the file itself
#: could not be read here. Sources: the vision part and the top level are InternVL's own HF converter
#: (``internvl_custom2hf.py``: ``vit_300m_config``, image_seq_length 256, gelu projector, feature layer -1); the
#: language part is Qwen2.5-7B's shape (3584 x 28 layers, 28 heads / 4 KV heads, 18944, RoPE theta 1e6, RMSNorm
#: 1e-6, untied lm_head) with InternVL3's vocabulary of 151,674 (image token 151667). Unverified and irrelevant to
#: memory and speed: ``max_window_layers`` and the dynamic RoPE scaling (x2, inactive below 32,768 positions).
#: ``tie_word_embeddings`` is written at both levels because transformers 5 defaults the top-level one to True.
#: The stand-in and ``benchmarks/gpu_check_internvl3_8b.py`` both start here.
INTERNVL3_8B_HF_CONFIG: dict = {
    "architectures": ["InternVLForConditionalGeneration"],
    "model_type": "internvl",
    "downsample_ratio": 0.5,
    "image_seq_length": 256,
    "image_token_id": 151667,
    "projector_hidden_act": "gelu",
    "vision_feature_layer": -1,
    "vision_feature_select_strategy": "default",
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "vision_config": {
        "model_type": "internvl_vision",
        "attention_bias": True,
        "attention_dropout": 0.0,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "hidden_size": 1024,
        "image_size": [448, 448],
        "initializer_range": 1e-10,
        "intermediate_size": 4096,
        "layer_norm_eps": 1e-06,
        "layer_scale_init_value": 0.1,
        "norm_type": "layer_norm",
        "num_attention_heads": 16,
        "num_channels": 3,
        "num_hidden_layers": 24,
        "patch_size": [14, 14],
        "projection_dropout": 0.0,
        "use_absolute_position_embeddings": True,
        "use_mask_token": False,
        "use_mean_pooling": True,
        "use_qk_norm": False,
    },
    "text_config": {
        "model_type": "qwen2",
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "hidden_act": "silu",
        "hidden_size": 3584,
        "initializer_range": 0.02,
        "intermediate_size": 18944,
        "max_position_embeddings": 32768,
        "max_window_layers": 70,
        "num_attention_heads": 28,
        "num_hidden_layers": 28,
        "num_key_value_heads": 4,
        "rms_norm_eps": 1e-06,
        "rope_scaling": {"factor": 2.0, "rope_type": "dynamic"},
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 151674,
    },
}

#: Special tokens of the InternVL3 (Qwen2.5) tokenizer in id order (151643 ... 151673), then ``<video>``, which
#: the -hf conversion adds. The stand-in appends them after its BPE vocabulary in the same order.
INTERNVL_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<img>", "</img>", "<IMG_CONTEXT>", "<quad>",
    "</quad>", "<ref>", "</ref>", "<box>", "</box>", "<video>",
)
#: Named tokens ``InternVLProcessor`` reads off the tokenizer.
INTERNVL_NAMED_TOKENS: dict[str, str] = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}
#: The InternVL3-hf chat template (string content, or typed parts where an image renders ``<IMG_CONTEXT>\n``).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "{{ '<IMG_CONTEXT>\\n' }}{% elif content['type'] == 'video' %}{{ '<video>\\n' }}{% elif content['type'] == "
    "'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}{{'<|im_end|>\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\\n' }}{% endif %}"
)
#: InternVL normalises with the ImageNet statistics (not GotOcr2's CLIP defaults).
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
#: Qwen2's pre-tokenizer split (transformers ``tokenization_qwen2.PRETOKENIZE_REGEX``).
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
STANDIN_README = """# InternVL3 stand-in (NOT a medical model)

This folder is a tiny, randomly initialised model with the architecture of `OpenGVLab/InternVL3-8B-hf`
(InternVL vision tower, pixel-shuffle projector, Qwen2 language model), built offline by
`llama_factory_internvl/scripts/make_standin_model.py` (seed {seed}, {n_params:,} parameters, {image_size} px tiles,
{image_seq_length} image tokens per tile, vocabulary of {vocab} tokens trained on mini-FLARE texts).

It is a stand-in for smoke tests and the demo only. It has never seen a medical image, its answers mean nothing
until it is trained on (synthetic) data, and no result obtained with it says anything about medical performance.
The paper's model is InternVL3-8B-hf with QLoRA adapters; use that for real work.
"""


@dataclass(frozen=True)
class StandinSpec:
    """Sizes of the stand-in; everything else comes from :data:`INTERNVL3_8B_HF_CONFIG`.

    Attributes:
        image_size: tile side in pixels (a multiple of ``patch_size`` 14 whose patch grid halves evenly).
        vocab_size: target size of the BPE vocabulary before the special tokens are appended.
        text_hidden, text_layers, text_heads, text_kv_heads, text_intermediate: the Qwen2 language model.
        vision_hidden, vision_layers, vision_heads, vision_intermediate: the InternVL vision tower.

    Every linear layer's input width is a multiple of 64, bitsandbytes' 4-bit block size: its CPU inference
    path (``Linear4bit`` in eval mode on AVX512-BF16 CPUs) repacks weights per 64-wide block and fails on a
    32-wide layer, which a 4-bit (QLoRA) stand-in would otherwise hit at inference.
    """

    image_size: int = 56
    vocab_size: int = 1024
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 256
    vision_hidden: int = 128
    vision_layers: int = 2
    vision_heads: int = 4
    vision_intermediate: int = 256

    @property
    def image_seq_length(self) -> int:
        """Image tokens per tile: (image_size / patch_size)^2 * downsample_ratio^2."""
        patch = INTERNVL3_8B_HF_CONFIG["vision_config"]["patch_size"][0]
        ratio = INTERNVL3_8B_HF_CONFIG["downsample_ratio"]
        if self.image_size % patch or (self.image_size // patch) % round(1 / ratio):
            raise ValueError(f"image_size {self.image_size} must be a multiple of {patch * round(1 / ratio)}")
        return int((self.image_size // patch) ** 2 * ratio**2)


# ----------------------------------------------------------------------------------------------- tokenizer
def corpus_texts(data_root: str | os.PathLike) -> list[str]:
    """Every question and answer of a FLARE-format root, plus the system prompt, in a stable order."""
    from mevlip.flare import discover, iter_records

    texts = [OURS_SYSTEM]  # the opt-in preset's system prompt tokenizes compactly too
    for _, _, record in iter_records(discover(data_root, gt="prefer")):
        texts.append(record["Question"])
        if str(record["Answer"]).strip():
            texts.append(str(record["Answer"]))
    if len(texts) == 1:
        raise ValueError(f"no FLARE question files found under {data_root}")
    return texts


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024):
    """A byte-level BPE with Qwen2's pre-tokenizer and the InternVL special tokens, as a ``Qwen2Tokenizer``.

    The BPE ids come first; the special tokens follow in :data:`INTERNVL_SPECIAL_TOKENS` order (as in the real
    vocabulary, where they start at 151643). No bos; eos ``<|im_end|>``; pad ``<|endoftext|>``.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    bpe.train_from_iterator(list(texts), trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    vocab = dict(sorted(state["vocab"].items(), key=lambda kv: kv[1]))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    # The specials go after the BPE ids, in the real order; Qwen2Tokenizer would otherwise append eos/pad first.
    base = len(vocab)
    added = {tok: base + i for i, tok in enumerate(INTERNVL_SPECIAL_TOKENS)}
    tokenizer = Qwen2Tokenizer(vocab={**vocab, **added}, merges=merges, unk_token=None, bos_token=None,
                               eos_token="<|im_end|>", pad_token="<|endoftext|>",
                               extra_special_tokens=dict(INTERNVL_NAMED_TOKENS))
    tokenizer.add_tokens(list(INTERNVL_SPECIAL_TOKENS), special_tokens=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = INTERNVL3_8B_HF_CONFIG["text_config"]["max_position_embeddings"]
    for tok, idx in added.items():
        if tokenizer.convert_tokens_to_ids(tok) != idx:
            raise RuntimeError(f"special token {tok} got id {tokenizer.convert_tokens_to_ids(tok)}, expected {idx}")
    return tokenizer


# ----------------------------------------------------------------------------------------------- processor, model
def build_processor(tokenizer, image_size: int, image_seq_length: int):
    """``InternVLProcessor`` with the real preprocessing (GotOcr2, bicubic, ImageNet statistics, no tiling by
    config, up to 12 tiles when asked) at ``image_size`` px tiles."""
    from transformers import GotOcr2ImageProcessor, InternVLProcessor, InternVLVideoProcessor

    size = {"height": image_size, "width": image_size}
    common = dict(size=size, image_mean=list(IMAGE_MEAN), image_std=list(IMAGE_STD), do_resize=True,
                  do_rescale=True, do_normalize=True, do_convert_rgb=True)
    image_processor = GotOcr2ImageProcessor(crop_to_patches=False, min_patches=1, max_patches=12, **common)
    video_processor = InternVLVideoProcessor(**common)
    return InternVLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                             image_seq_length=image_seq_length, chat_template=CHAT_TEMPLATE)


def standin_config(tokenizer, spec: StandinSpec = StandinSpec()):
    """The real config with the stand-in's width, depth, image size and vocabulary (and the matching token ids)."""
    from transformers import InternVLConfig

    cfg = copy.deepcopy(INTERNVL3_8B_HF_CONFIG)
    cfg["vision_config"].update(
        hidden_size=spec.vision_hidden, num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads,
        intermediate_size=spec.vision_intermediate, image_size=[spec.image_size] * 2,
        # The real 1e-10 (weights come from a checkpoint) would leave a random stand-in's tower nearly constant.
        initializer_range=0.02,
    )
    cfg["text_config"].update(
        hidden_size=spec.text_hidden, num_hidden_layers=spec.text_layers, num_attention_heads=spec.text_heads,
        num_key_value_heads=spec.text_kv_heads, intermediate_size=spec.text_intermediate,
        max_window_layers=spec.text_layers, vocab_size=len(tokenizer),
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"), eos_token_id=tokenizer.eos_token_id,
    )
    cfg.update(image_seq_length=spec.image_seq_length, image_token_id=tokenizer.context_image_token_id)
    cfg.pop("architectures")
    cfg.pop("model_type")
    cfg.pop("torch_dtype")
    return InternVLConfig(**cfg)


def build_standin(out: str | os.PathLike, data: str | os.PathLike | None = None, seed: int = 0,
                  spec: StandinSpec = StandinSpec()) -> Path:
    """Build and save the stand-in (model, tokenizer, processor, chat template, generation config, README).

    Args:
        out: the folder to write (created; existing files of the same names are overwritten).
        data: a FLARE-format root whose questions and answers train the tokenizer; default: a tiny mini-FLARE
            generated with ``seed`` in a temporary folder.
        seed: seeds the mini-FLARE texts and the weights. Same seed, data and spec -> byte-identical files.
        spec: the sizes.

    Returns:
        ``out`` as a Path.
    """
    import torch
    from transformers import GenerationConfig, InternVLForConditionalGeneration

    out = Path(out)
    if data is None:
        from mevlip.synth import generate

        with tempfile.TemporaryDirectory(prefix="mini_flare_") as tmp:
            generate(tmp, scale="tiny", seed=seed)
            texts = corpus_texts(tmp)
    else:
        texts = corpus_texts(data)
    # The chat roles appear in every prompt; give the BPE a chance to keep them whole.
    texts += ["system\nuser\nassistant\n"] * 2
    tokenizer = train_tokenizer(texts, spec.vocab_size)
    processor = build_processor(tokenizer, spec.image_size, spec.image_seq_length)
    config = standin_config(tokenizer, spec)

    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    (out / "README.md").write_text(STANDIN_README.format(
        seed=seed, n_params=n_params, image_size=spec.image_size, image_seq_length=spec.image_seq_length,
        vocab=len(tokenizer)), encoding="utf-8")
    logger.info("stand-in saved to %s: %d parameters, vocabulary %d, %d px tiles, %d image tokens per tile",
                out, n_params, len(tokenizer), spec.image_size, spec.image_seq_length)
    return out
