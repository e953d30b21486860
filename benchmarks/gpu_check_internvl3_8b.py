"""GPU check: QLoRA training and batched inference of a full-size InternVL3-8B-hf (random weights, no download).

    python benchmarks/gpu_check_internvl3_8b.py [--output_file gpu_check_internvl3_8b.json]   # one CUDA GPU, ~3-5 min
    python benchmarks/gpu_check_internvl3_8b.py --dry_run                              # CPU, shrunken, ~1 min

What it does, as the paper's recipe on one GPU:

1. builds ``InternVLForConditionalGeneration`` from :data:`mevlip.training.standin.INTERNVL3_8B_HF_CONFIG` (the real
   config: InternViT-300M + Qwen2.5-7B, vocabulary 151,674) directly in bf16 on the GPU, with random weights;
2. quantises every ``nn.Linear`` except ``lm_head`` to 4-bit nf4 with double quantisation, as LLaMA-Factory's
   QLoRA (``quantization_bit: 4``, bnb) loads the model (vision tower and projector included);
3. adds peft LoRA r8 (alpha 16) on q,k,v,o,gate,up,down of the language model only (= LLaMA-Factory's
   ``lora_target: all`` with the vision tower frozen), gradient checkpointing on as in LLaMA-Factory;
4. runs a batched generation (the inference memory the paper quotes: under 9 GiB), then ``--steps`` optimiser
   steps of batch 2 x accumulation 4 at lr 2e-4 (linear, 3 % warm-up), bf16 autocast, on mini-FLARE rows at
   448 px (one tile per image = 256 image tokens), then generates again;
5. prints and writes JSON: peak GPU memory (allocated and reserved) of inference and training, steps/s, losses.

The tokenizer is the stand-in's (trained on mini-FLARE texts, every InternVL special token); its ids all lie below
the model's 151,674 rows, and ``image_token_id`` is set to its ``<IMG_CONTEXT>``. Token ids differ from the real
tokenizer's, which does not matter for memory or speed. ``--dry_run`` uses the stand-in's widths and depths but
the real 448 px geometry, on CPU in float32, so the whole path is exercised without a GPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from mevlip.cli import add_common_args, add_option, make_parser, run_cli, setup_logging

logger = logging.getLogger("gpu_check")
GIB = 1024**3
INFERENCE_TARGET_GIB = 9.0
LORA_TARGETS = r"model\.language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


def model_config(tokenizer, dry_run: bool):
    """The real InternVL3-8B-hf config (or, dry run, the stand-in's widths at 448 px) with this tokenizer's ids."""
    from transformers import InternVLConfig

    from mevlip.training.standin import INTERNVL3_8B_HF_CONFIG, StandinSpec

    cfg = copy.deepcopy(INTERNVL3_8B_HF_CONFIG)
    for key in ("architectures", "model_type", "torch_dtype"):
        cfg.pop(key)
    if dry_run:
        spec = StandinSpec()
        cfg["vision_config"].update(hidden_size=spec.vision_hidden, num_hidden_layers=spec.vision_layers,
                                    num_attention_heads=spec.vision_heads, intermediate_size=spec.vision_intermediate)
        cfg["text_config"].update(hidden_size=spec.text_hidden, num_hidden_layers=spec.text_layers,
                                  num_attention_heads=spec.text_heads, num_key_value_heads=spec.text_kv_heads,
                                  intermediate_size=spec.text_intermediate, max_window_layers=spec.text_layers,
                                  vocab_size=len(tokenizer))
    if len(tokenizer) > cfg["text_config"]["vocab_size"]:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens, model only {cfg['text_config']['vocab_size']}")
    cfg["vision_config"]["initializer_range"] = 0.02  # random weights: keep activations alive
    cfg["text_config"].update(bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
                              eos_token_id=tokenizer.eos_token_id)
    cfg["image_token_id"] = tokenizer.context_image_token_id
    return InternVLConfig(**cfg)


def quantize_4bit_(model, compute_dtype, device) -> int:
    """Replace every ``nn.Linear`` but ``lm_head`` by a bitsandbytes nf4 ``Linear4bit`` (double quantisation)."""
    import bitsandbytes as bnb
    import torch

    # Names first, modules fetched one at a time, so each bf16 weight is freed as soon as it is quantised.
    names = [n for n, m in model.named_modules() if type(m) is torch.nn.Linear and n != "lm_head"]
    for full in names:
        parent_name, _, name = full.rpartition(".")
        parent = model.get_submodule(parent_name)
        child = getattr(parent, name)
        layer = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                  compute_dtype=compute_dtype, compress_statistics=True, quant_type="nf4",
                                  quant_storage=compute_dtype, device="meta")
        layer.weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False, compress_statistics=True,
                                         quant_type="nf4", quant_storage=compute_dtype).to(device)
        if child.bias is not None:
            layer.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
        # On CPU (dry run), bitsandbytes repacks 4-bit weights for AVX512-BF16 at the first eval-mode forward
        # and keeps that layout, which its training path cannot use; inference precedes training here.
        layer.support_avx512bf16_for_cpu = False
        setattr(parent, name, layer)
        del child, layer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return len(names)


def mini_flare_rows(n: int, seed: int) -> tuple[list[dict], str]:
    """``n`` training rows (question, answer, image paths) from a tiny mini-FLARE, all task types interleaved."""
    from mevlip.flare import discover, extract_all, iter_records, resolve_images
    from mevlip.synth import generate

    root = tempfile.mkdtemp(prefix="gpu_check_mini_flare_")
    generate(root, scale="tiny", seed=seed)
    files = discover(root, splits=["training"])
    extract_all(files)
    rows = [{"question": r["Question"], "answer": str(r["Answer"]), "images": resolve_images(f.dataset_dir, r)}
            for f, _, r in iter_records(files)]
    rows = rows[::3] + rows[1::3] + rows[2::3]  # mix datasets and task types
    return (rows * math.ceil(n / len(rows)))[:n], root


def train_batch(processor, rows: list[dict], device):
    """Right-padded SFT batch: prompt as inference builds it, answer + ``<|im_end|>\\n`` as LLaMA-Factory's target."""
    import torch

    from mevlip.inference.inputs import build_inputs

    tokenizer = processor.tokenizer
    ids, labels, pixels = [], [], []
    for row in rows:
        prompt = build_inputs(processor, row["question"], row["images"])
        answer = tokenizer(row["answer"] + "<|im_end|>\n", add_special_tokens=False)["input_ids"]
        ids.append(prompt["input_ids"][0].tolist() + answer)
        labels.append([-100] * prompt["input_ids"].shape[1] + answer)
        pixels.append(prompt["pixel_values"])
    width = max(map(len, ids))
    pad = tokenizer.pad_token_id
    batch = {
        "input_ids": torch.tensor([x + [pad] * (width - len(x)) for x in ids]),
        "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids]),
        "labels": torch.tensor([x + [-100] * (width - len(x)) for x in labels]),
        "pixel_values": torch.cat(pixels),
    }
    return {k: v.to(device) for k, v in batch.items()}


class Memory:
    """Peak allocated / reserved memory of one phase (CUDA only; zeros on CPU)."""

    def __init__(self, device):
        import torch

        self.cuda = device.type == "cuda"
        self.torch = torch

    def __enter__(self):
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.start
        self.peak_allocated_gib = self.torch.cuda.max_memory_allocated() / GIB if self.cuda else 0.0
        self.peak_reserved_gib = self.torch.cuda.max_memory_reserved() / GIB if self.cuda else 0.0
        return False

    def report(self) -> dict:
        return {"seconds": round(self.seconds, 2), "peak_allocated_gib": round(self.peak_allocated_gib, 3),
                "peak_reserved_gib": round(self.peak_reserved_gib, 3)}


def generate_once(model, processor, rows, max_new_tokens, device, dtype) -> dict:
    """One batched greedy generation; its time and peak memory."""
    import torch

    from mevlip.inference.inputs import build_batch

    inputs = build_batch(processor, [r["question"] for r in rows], [r["images"] for r in rows]).to(device)
    inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    model.eval()
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    with Memory(device) as mem, torch.no_grad(), autocast:
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                             do_sample=False)
    new_tokens = (out.shape[1] - inputs["input_ids"].shape[1]) * out.shape[0]
    return {**mem.report(), "batch": len(rows), "prompt_tokens": int(inputs["attention_mask"].sum()),
            "new_tokens": int(new_tokens), "new_tokens_per_s": round(new_tokens / mem.seconds, 1)}


def run(args) -> dict:
    import bitsandbytes
    import peft
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import InternVLForConditionalGeneration, get_linear_schedule_with_warmup

    from mevlip.training.standin import build_processor, corpus_texts, train_tokenizer

    device = torch.device("cpu" if args.dry_run else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device; use --dry_run on a CPU")
    dtype = torch.float32 if args.dry_run else torch.bfloat16
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()

    rows, root = mini_flare_rows(args.steps * args.batch * args.accum + args.gen_batch, args.seed)
    tokenizer = train_tokenizer(corpus_texts(root) + ["system\nuser\nassistant\n"] * 2)
    processor = build_processor(tokenizer, image_size=448, image_seq_length=256)
    config = model_config(tokenizer, args.dry_run)

    with Memory(device) as build:
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        with torch.device(device):
            model = InternVLForConditionalGeneration(config)
        torch.set_default_dtype(default_dtype)
        n_params = sum(p.numel() for p in model.parameters())
        n_quantized = quantize_4bit_(model, dtype, device)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        model.enable_input_require_grads()
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=LORA_TARGETS,
                                                 task_type="CAUSAL_LM"))
    weights_gib = torch.cuda.memory_allocated() / GIB if device.type == "cuda" else 0.0
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("built in %.0f s: %.2f B parameters, %d linear layers in 4-bit, %d LoRA parameters, weights %.2f GiB",
                build.seconds, n_params / 1e9, n_quantized, trainable, weights_gib)

    gen_rows = rows[-args.gen_batch:]
    inference_before = generate_once(model, processor, gen_rows, args.max_new_tokens, device, dtype)
    logger.info("inference before training: %s", inference_before)

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4,
                                  fused=device.type == "cuda")
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(0.03 * args.steps), args.steps)
    losses, step_times = [], []
    with Memory(device) as training:
        for step in range(args.steps):
            start = time.perf_counter()
            total = 0.0
            for micro in range(args.accum):
                first = (step * args.accum + micro) * args.batch
                batch = train_batch(processor, rows[first:first + args.batch], device)
                batch["pixel_values"] = batch["pixel_values"].to(dtype)
                with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                    loss = model(**batch).loss / args.accum
                loss.backward()
                total += loss.item()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            step_times.append(time.perf_counter() - start)
            losses.append(round(total, 4))
            logger.info("step %d/%d loss %.4f (%.2f s)", step + 1, args.steps, total, step_times[-1])
    steady = step_times[1:] or step_times
    train_report = {**training.report(), "steps": args.steps, "micro_batch": args.batch, "accumulation": args.accum,
                    "steps_per_s": round(len(steady) / sum(steady), 4),
                    "samples_per_s": round(len(steady) * args.batch * args.accum / sum(steady), 3),
                    "first_step_s": round(step_times[0], 2), "losses": losses}
    optimizer.zero_grad(set_to_none=True)
    del optimizer
    inference_after = generate_once(model, processor, gen_rows, args.max_new_tokens, device, dtype)

    report = {
        "check": "gpu_check_internvl3_8b", "dry_run": args.dry_run,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                     "bitsandbytes": bitsandbytes.__version__, "python": platform.python_version()},
        "model": {"parameters": n_params, "linear_4bit": n_quantized, "lora_parameters": trainable,
                  "weights_gib": round(weights_gib, 3), "build_seconds": round(build.seconds, 1),
                  "image_tokens_per_tile": config.image_seq_length, "vocab_size": config.text_config.vocab_size},
        "inference_before_training": inference_before, "training": train_report,
        "inference_after_training": inference_after,
        "target": {"inference_peak_gib_below": INFERENCE_TARGET_GIB,
                   "inference_peak_allocated_gib": max(inference_before["peak_allocated_gib"],
                                                       inference_after["peak_allocated_gib"])},
        "total_seconds": round(time.perf_counter() - t0, 1),
    }
    peak = report["target"]["inference_peak_allocated_gib"]
    report["target"]["ratio_to_target"] = round(peak / INFERENCE_TARGET_GIB, 3)
    report["target"]["met"] = bool(args.dry_run or peak < INFERENCE_TARGET_GIB)
    return report


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = make_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--dry_run", action="store_true", help="shrunken model on CPU (tests the code path)")
    parser.add_argument("--steps", type=int, help="optimiser steps (default: 20; dry run 2)")
    parser.add_argument("--batch", type=int, default=2, help="micro-batch size (paper: 2)")
    parser.add_argument("--accum", type=int, help="gradient accumulation (default: 4, the paper's; dry run 2)")
    parser.add_argument("--gen_batch", type=int, help="questions per generation batch (default: 8; dry run 2)")
    parser.add_argument("--max_new_tokens", type=int,
                        help="tokens generated per question (default: 32; dry run 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs")
    add_option(parser, "--output_file", aliases=("--out",), default="gpu_check_internvl3_8b.json",
               help="JSON report path")
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns 0 when the run finished (and, on GPU, met the inference memory target)."""
    args = build_parser().parse_args(argv)
    for key, full, dry in (("steps", 20, 2), ("accum", 4, 2), ("gen_batch", 8, 2), ("max_new_tokens", 32, 4)):
        if getattr(args, key) is None:
            setattr(args, key, dry if args.dry_run else full)
    setup_logging(args.log_level)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    Path(args.output_file).write_text(text + "\n", encoding="utf-8")
    target = report["target"]
    print(f"inference peak {target['inference_peak_allocated_gib']:.2f} GiB vs target {INFERENCE_TARGET_GIB} GiB "
          f"(ratio {target['ratio_to_target']}); training peak {report['training']['peak_allocated_gib']:.2f} GiB; "
          f"{report['training']['steps_per_s']} steps/s", file=sys.stderr)
    return 0 if target["met"] else 1


if __name__ == "__main__":
    run_cli(main)
