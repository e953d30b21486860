"""Fixtures shared by the metrics tests (imported explicitly): GT-as-predictions files and a tiny GREEN judge."""

from __future__ import annotations

import json

import pytest

from mevlip.flare import VALIDATION_SPLITS, discover, load_records


def ground_truth_records(root) -> list[dict]:
    """Every validation record with its answer (``_withGT`` files for the hidden split), in discovery order."""
    records: list[dict] = []
    for qfile in discover(root, VALIDATION_SPLITS, gt="prefer"):
        records += load_records(qfile).records
    return records


def write_predictions(path, records: list[dict]) -> str:
    """Write a predictions.json (a copy of the records) and return its path."""
    path.write_text(json.dumps(records), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def tiny_judge_dir(tmp_path_factory):
    """A tiny random Llama judge with a byte-level BPE tokenizer, saved like a hub model (safetensors)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from mevlip.metrics.green_llm import make_prompt

    path = tmp_path_factory.mktemp("tiny_green_judge")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([make_prompt("No pleural effusion.", "The heart is normal.")] * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2)
    LlamaForCausalLM(config).save_pretrained(path)
    return str(path)
