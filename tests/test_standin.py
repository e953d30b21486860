"""The InternVL3 stand-in: deterministic, the real architecture and tokens, reloads with Auto classes, generates."""

from __future__ import annotations

import json

import pytest
from conftest_standin import extracted_copy, records_by_task, standin_dir
from scripts import load_script

from mevlip.training.standin import INTERNVL3_8B_HF_CONFIG, INTERNVL_SPECIAL_TOKENS, StandinSpec


def _script():
    return load_script("llama_factory_internvl/scripts/make_standin_model.py")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, mini_flare_tiny):
    return standin_dir(tmp_path_factory, mini_flare_tiny)


def test_same_seed_same_files_other_seed_other_weights(mini_flare_tiny, tmp_path):
    from mevlip.training.standin import build_standin

    first = tmp_path / "first"
    assert _script().main(["--out", str(first), "--data", str(mini_flare_tiny), "--seed", "0"]) == 0
    again = build_standin(tmp_path / "again", data=mini_flare_tiny, seed=0)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    assert {"model.safetensors", "tokenizer.json", "config.json", "processor_config.json", "README.md"} <= set(names)
    for name in names:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    other = build_standin(tmp_path / "seed1", data=mini_flare_tiny, seed=1)
    assert (other / "model.safetensors").read_bytes() != (first / "model.safetensors").read_bytes()


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict) and key.endswith("config"):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def test_config_mirrors_internvl3_8b_except_size(model_dir):
    from transformers import AutoConfig, InternVLConfig

    real = {k: v for k, v in INTERNVL3_8B_HF_CONFIG.items() if k not in ("architectures", "model_type", "torch_dtype")}
    real = _flat(InternVLConfig(**real).to_dict())
    ours = _flat(AutoConfig.from_pretrained(model_dir).to_dict())
    differ = {k for k in real.keys() | ours.keys() if real.get(k) != ours.get(k)}
    size = {f"vision_config.{k}" for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                           "intermediate_size", "image_size", "initializer_range")}
    size |= {f"text_config.{k}" for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                          "num_key_value_heads", "intermediate_size", "max_window_layers",
                                          "layer_types", "vocab_size", "bos_token_id", "eos_token_id")}
    size |= {"image_seq_length", "image_token_id", "dtype", "transformers_version", "_name_or_path"}
    assert ours["architectures"] == INTERNVL3_8B_HF_CONFIG["architectures"]
    differ.discard("architectures")  # written by save_pretrained, absent from a config built in memory
    assert differ <= size, f"stand-in config departs from InternVL3-8B-hf beyond size: {sorted(differ - size)}"
    assert ours["text_config.model_type"] == "qwen2" and ours["vision_config.model_type"] == "internvl_vision"
    assert ours["downsample_ratio"] == 0.5 and ours["tie_word_embeddings"] is False


def test_tokens_processor_and_image_geometry(model_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    tokenizer = processor.tokenizer
    config = json.loads((model_dir / "config.json").read_text())
    ids = tokenizer.convert_tokens_to_ids(list(INTERNVL_SPECIAL_TOKENS))
    assert ids == list(range(ids[0], ids[0] + len(ids))), "special tokens must follow the BPE ids in real order"
    assert ids[-1] == len(tokenizer) - 1 == config["text_config"]["vocab_size"] - 1
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    assert processor.image_token == "<IMG_CONTEXT>" and config["image_token_id"] == processor.image_token_id
    assert (processor.start_image_token, processor.end_image_token) == ("<img>", "</img>")
    # Special tokens are atomic; text round-trips through the byte-level BPE.
    text = "<|im_start|>user\n<img><IMG_CONTEXT></img>\nCount 12 cells: [[1, 2, 30, 41]] — é<|im_end|>\n"
    encoded = tokenizer(text)["input_ids"]
    assert tokenizer.decode(encoded) == text
    assert encoded.count(processor.image_token_id) == 1
    spec = StandinSpec()
    assert processor.image_seq_length == config["image_seq_length"] == spec.image_seq_length == 4
    assert processor.image_processor.size == {"height": 56, "width": 56}
    assert processor.image_processor.crop_to_patches is False
    assert json.loads((model_dir / "generation_config.json").read_text())["eos_token_id"] == tokenizer.eos_token_id
    assert "not a medical model" in (model_dir / "README.md").read_text().lower()


def test_reloads_with_auto_classes_and_generates(model_dir, tmp_path_factory, mini_flare_tiny):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, InternVLForConditionalGeneration

    from mevlip.flare import resolve_images
    from mevlip.inference.inputs import build_batch

    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    assert isinstance(model, InternVLForConditionalGeneration)
    n_params = sum(p.numel() for p in model.parameters())
    assert 300_000 < n_params < 3_000_000  # ~1M: tiny, yet wide enough to learn the JSON formats (README)
    by_task = records_by_task(extracted_copy(tmp_path_factory, mini_flare_tiny))
    chosen = [by_task["counting"][0], by_task["classification"][0], by_task["report_generation"][0]]
    inputs = build_batch(processor, [r["Question"] for r, _ in chosen], [resolve_images(d, r) for r, d in chosen])
    assert inputs["pixel_values"].shape[1:] == (3, 56, 56)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    new = out[:, inputs["input_ids"].shape[1]:]
    assert new.shape[0] == 3 and 1 <= new.shape[1] <= 6
    assert int(new.max()) < len(processor.tokenizer)
    # Greedy decoding is reproducible.
    with torch.no_grad():
        again = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert torch.equal(out, again)
