"""The LLaMA-Factory training recipes, generated from one base dict so that the eight adapters stay in sync.

``python -m mevlip.training.recipes`` (re)writes every YAML under the checkout's ``llama_factory_internvl/examples/``
(wherever it is run from; ``--output_dir`` names another folder) and ``examples/deepspeed/ds_z2_config.json``;
``tests/test_recipes.py`` checks that the committed files equal what this module produces and that LLaMA-Factory
parses each one. Paths inside the recipes are relative to
``llama_factory_internvl/``, the folder the README runs ``llamafactory-cli`` from (as LLaMA-Factory's own
examples are relative to its repository root).

Recipe sets (``<set>_ours/`` is the same set under the opt-in ``ours`` preset, :mod:`mevlip.presets`):

- ``train_qlora/``: InternVL3-8B-hf QLoRA. ``internvl_lora_sft_bnb.yaml`` is the authors' general-adapter recipe
  value for value (original repository, ``llama_factory_internvl/examples/train_qlora/internvl_lora_sft_bnb.yaml``;
  the two keys we cannot keep are in :data:`PAPER_RECIPE_DEPARTURES`). The authors published no recipe for the
  seven task adapters: ``internvl_lora_sft_bnb_<task>.yaml`` are OURS, the general recipe's settings on the task's
  subset ``flare_<task>``, and say so in their header.
- ``multi_gpu/``: the general adapter under DeepSpeed ZeRO-2 (``FORCE_TORCHRUN=1``).
- ``standin/``: CPU recipes for the tiny stand-in: a full fine-tune that gives the random stand-in some
  knowledge (``pretrain_full.yaml``), then the QLoRA adapter recipes above on top, one file per adapter.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from pathlib import Path

from mevlip.cli import UserError, add_common_args, add_option, make_parser, run_cli, setup_logging
from mevlip.presets import DEFAULT_PRESET, GENERAL_DATASET, TRAINING_PRESETS, training_preset
from mevlip.tasks import GENERAL_ADAPTER, TASK_NAMES, get_task

logger = logging.getLogger(__name__)

PAPER_MODEL = "OpenGVLab/InternVL3-8B-hf"
#: Where the stand-in lives relative to ``llama_factory_internvl/`` (written by make_standin_model.py and by
#: ``standin/pretrain_full.yaml``).
STANDIN_BASE = "saves/standin/base"
STANDIN_PRETRAINED = "saves/standin/pretrained"
#: Every adapter, in the order train_adapters trains them.
ADAPTERS: tuple[str, ...] = (GENERAL_ADAPTER, *TASK_NAMES)
ADAPTER_STEM = "internvl_lora_sft_bnb"

#: The authors' general-adapter recipe, value for value (original repository,
#: ``llama_factory_internvl/examples/train_qlora/internvl_lora_sft_bnb.yaml``; its run:
#: ``llama/internvl/output.122183_4294967294.txt``), except :data:`PAPER_RECIPE_DEPARTURES`. InternVL3-8B-hf, QLoRA
#: (bnb 4-bit nf4, no double quantisation), LoRA rank 8 on every linear layer of the language model, 3 epochs,
#: batch 2 x 4, lr 2e-4 linear with 3 % warm-up, bf16, cutoff 2048. ``None`` values are left out of the YAML.
PAPER_QLORA: dict[str, dict] = {
    "model": {
        "model_name_or_path": PAPER_MODEL,
        "quantization_bit": 4,
        "quantization_method": "bnb",
        "double_quantization": False,
    },
    "method": {
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_rank": 8,
        # LLaMA-Factory's "all" = every Linear outside lm_head, the projector and (frozen by default,
        # freeze_vision_tower: true) the vision tower: q,k,v,o,gate,up,down_proj of the language model (the log:
        # "Found linear modules: v_proj,k_proj,o_proj,up_proj,q_proj,down_proj,gate_proj").
        "lora_target": "all",
    },
    "dataset": {
        "dataset": GENERAL_DATASET,
        "template": "intern_vl",
        # Their vendored LLaMA-Factory's intern_vl template had default_system="" (the log's rendered example
        # starts with <|im_start|>user); stock 0.9.5's has a long Chinese prompt, so "" is set explicitly.
        "default_system": "",
        "cutoff_len": 2048,
        "overwrite_cache": True,
        "preprocessing_num_workers": 16,
        "dataloader_num_workers": 4,
    },
    "output": {
        "output_dir": "saves/internvl/lora/sft",
        "logging_steps": 10,
        "save_steps": 500,
        "plot_loss": True,
        "overwrite_output_dir": True,
        "save_only_model": False,
        "report_to": "none",
    },
    "train": {
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 4,
        "learning_rate": 2.0e-4,
        "num_train_epochs": 3.0,
        "lr_scheduler_type": "linear",
        "warmup_ratio": 0.03,
        "bf16": True,
        "ddp_timeout": 180000000,
    },
}

#: The authors' recipe keys we do not keep, and why (docs/fidelity.md).
PAPER_RECIPE_DEPARTURES: dict[str, str] = {
    "trust_remote_code": "true in theirs; left out (false): InternVL3-8B-hf is native in transformers, and this "
                         "project never runs code from a model folder",
    "report_to": "wandb in theirs; none here (no network at run time). Pass report_to=wandb on the command line to "
                 "log as they did",
}

#: CPU settings shared by every stand-in recipe. Gradient checkpointing saves no memory worth having on a model of
#: a few hundred thousand parameters and costs ~30 % of a CPU step (measured: 20 steps in 40 s vs 56 s).
_CPU = {"bf16": False, "fp16": False, "preprocessing_num_workers": None, "dataloader_num_workers": 0,
        "disable_gradient_checkpointing": True}

#: How the stand-in's pre-training samples its rows: each task's dataset entry is drawn with this probability
#: (LLaMA-Factory ``mix_strategy: interleave_over``: rows drawn with replacement until every task's rows were all
#: seen). Why not plain concatenation: LLaMA-Factory averages the loss over answer tokens, and in mini-FLARE's
#: training split counting and regression answers (2-4 tokens) are 1 % and 2 % of all answer tokens while
#: chromosome JSON is 51 %, so a concatenated pre-training never learns to read a count or a bar. Measured on
#: ``small``, scored on the validation split without adapters (constant baseline: counting MAE 86.3, regression MAE
#: 9.0): concatenation, instance detection left out, 64-wide stand-in, thinner cells and bar: 97.4, 11.0; a mix like
#: this one, 64 wide: 85.6, 5.5, instance JSON 0 % parsable; this mix, 128 wide (the stand-in's default): 75.6, 5.4,
#: 100 % parsable.
STANDIN_PRETRAIN_MIX: dict[str, float] = {
    "classification": 0.40,
    "multi_label_classification": 0.10,
    "detection": 0.12,
    "instance_detection": 0.06,
    "counting": 0.12,
    "regression": 0.10,
    "report_generation": 0.10,
}

#: Full fine-tune of the random stand-in (vision tower and projector unfrozen): in CPU runs LoRA alone barely moved a
#: random stand-in (loss stayed about 5.4) while this learns (lr 1e-3 to 3e-3, batch 16).
STANDIN_PRETRAIN: dict[str, dict] = {
    "model": {"model_name_or_path": STANDIN_BASE},
    "method": {
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "full",
        "freeze_vision_tower": False,
        "freeze_multi_modal_projector": False,
    },
    "dataset": {
        "dataset": ",".join(get_task(t).dataset_entry for t in STANDIN_PRETRAIN_MIX),
        "dataset_dir": "data",
        "template": "intern_vl",
        "default_system": "",
        "cutoff_len": 2048,
        "overwrite_cache": True,
        "mix_strategy": "interleave_over",
        "interleave_probs": ",".join(f"{p:g}" for p in STANDIN_PRETRAIN_MIX.values()),
    },
    "output": {
        "output_dir": STANDIN_PRETRAINED,
        "overwrite_output_dir": True,  # no checkpoints to resume (save_strategy "no"): a rerun starts afresh
        "logging_steps": 10,
        "save_strategy": "no",
        "plot_loss": True,
        "report_to": "none",
    },
    "train": {
        "per_device_train_batch_size": 16,
        "gradient_accumulation_steps": 1,
        "learning_rate": 3.0e-3,
        "num_train_epochs": 4.0,  # of the interleaved set: ~5,100 rows (set by classification's 2,037 at 0.4)
        "lr_scheduler_type": "linear",
        "warmup_ratio": 0.03,
        "seed": 0,
    },
}

#: Departures of the stand-in adapter recipe from the paper's, each named (everything else is the paper's).
STANDIN_ADAPTER_DEPARTURES: dict[str, str] = {
    "model_name_or_path": "the fully fine-tuned stand-in instead of InternVL3-8B-hf",
    "per_device_train_batch_size": "8 x gradient_accumulation_steps 1 instead of 2 x 4: the same batch of 8, "
                                   "2.8x faster per sample on CPU (measured)",
    "gradient_accumulation_steps": "1 (see per_device_train_batch_size)",
    "bf16": "false (CPU); likewise fp16 false, fewer data workers, no gradient checkpointing (faster on CPU)",
    "save_steps": "no intermediate checkpoints (save_strategy: no) to keep CPU runs small",
}


#: The section a key goes to when a recipe adds it (keys already present stay where they are).
_SECTION_OF = {"save_strategy": "output", "preprocessing_num_workers": "dataset", "dataloader_num_workers": "dataset",
               "disable_gradient_checkpointing": "method"}


def _merge(base: dict[str, dict], **changes) -> dict[str, dict]:
    """A copy of ``base`` with ``changes`` applied to the section holding each key (``None`` removes a key)."""
    recipe = copy.deepcopy(base)
    for key, value in changes.items():
        section = next((s for s in recipe.values() if key in s), recipe[_SECTION_OF.get(key, "train")])
        section[key] = value
    return recipe


def with_preset(recipe: dict[str, dict], preset: str = DEFAULT_PRESET) -> dict[str, dict]:
    """A recipe under a training preset: ``paper`` as is; ``ours`` with its system prompt and double quantisation."""
    spec = training_preset(preset)
    changes = {"default_system": spec.system}
    if "quantization_bit" in recipe["model"]:
        changes["double_quantization"] = spec.double_quantization
    return _merge(recipe, **changes)


def paper_recipe(adapter: str = GENERAL_ADAPTER, preset: str = DEFAULT_PRESET) -> dict[str, dict]:
    """The QLoRA recipe of one adapter: the authors' for ``general``; for a task, ours (their settings on
    ``flare_<task>``)."""
    output_dir = PAPER_QLORA["output"]["output_dir"] if adapter == GENERAL_ADAPTER else f"saves/internvl/{adapter}"
    return with_preset(_merge(PAPER_QLORA, dataset=dataset_entry(adapter), output_dir=output_dir), preset)


def multi_gpu_recipe(preset: str = DEFAULT_PRESET) -> dict[str, dict]:
    """The general adapter under DeepSpeed ZeRO-2; launch with ``FORCE_TORCHRUN=1``."""
    recipe = paper_recipe(GENERAL_ADAPTER, preset)
    recipe["train"]["deepspeed"] = "examples/deepspeed/ds_z2_config.json"
    return recipe


def standin_pretrain_recipe(preset: str = DEFAULT_PRESET) -> dict[str, dict]:
    """Full fine-tune of the random stand-in on CPU."""
    return with_preset(_merge(STANDIN_PRETRAIN, **_CPU), preset)


def standin_adapter_recipe(adapter: str = GENERAL_ADAPTER, preset: str = DEFAULT_PRESET) -> dict[str, dict]:
    """The QLoRA adapter recipe on the fully fine-tuned stand-in, on CPU (departures named above)."""
    return _merge(paper_recipe(adapter, preset), model_name_or_path=STANDIN_PRETRAINED, per_device_train_batch_size=8,
                  gradient_accumulation_steps=1, output_dir=f"saves/standin/adapters/{adapter}", save_steps=None,
                  save_strategy="no", **_CPU)


def recipe_dir_name(kind: str, preset: str = DEFAULT_PRESET) -> str:
    """The folder of a recipe set under ``examples/``: ``train_qlora``, ``standin``, ``multi_gpu``, or
    ``<kind>_ours`` under the ``ours`` preset."""
    training_preset(preset)
    return kind if preset == DEFAULT_PRESET else f"{kind}_{preset}"


def dataset_entry(adapter: str) -> str:
    """The ``dataset_info.json`` entry an adapter trains on (``internvl`` for the general one, as the authors')."""
    return GENERAL_DATASET if adapter == GENERAL_ADAPTER else get_task(adapter).dataset_entry


def adapter_for_dataset(dataset: str) -> str:
    """Inverse of :func:`dataset_entry` (``flare_all``, the same rows as ``internvl``, also means general)."""
    if dataset == "flare_all":
        return GENERAL_ADAPTER
    for adapter in ADAPTERS:
        if dataset_entry(adapter) == dataset:
            return adapter
    raise ValueError(f"dataset {dataset!r} is no adapter's entry; expected one of "
                     f"{', '.join(dataset_entry(a) for a in ADAPTERS)}")


def adapter_filename(adapter: str) -> str:
    """``internvl_lora_sft_bnb.yaml`` for the general adapter, ``internvl_lora_sft_bnb_<task>.yaml`` for a task."""
    return f"{ADAPTER_STEM}.yaml" if adapter == GENERAL_ADAPTER else f"{ADAPTER_STEM}_{adapter}.yaml"


def flatten(recipe: dict[str, dict]) -> dict:
    """The recipe as LLaMA-Factory reads it: one flat mapping, ``None`` values dropped."""
    return {k: v for section in recipe.values() for k, v in section.items() if v is not None}


def to_yaml(recipe: dict[str, dict], header: str = "") -> str:
    """Render a recipe in LLaMA-Factory's example style (``### section`` comments, one key per line)."""
    import yaml

    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()] if header else []
    for name, section in recipe.items():
        items = {k: v for k, v in section.items() if v is not None}
        if not items:
            continue
        if lines:
            lines.append("")
        lines.append(f"### {name}")
        for key, value in items.items():
            if isinstance(value, float) and 0 < abs(value) < 1e-2:  # 2.0e-4 as LLaMA-Factory writes it, not 0.0002
                mantissa, exponent = f"{value:e}".split("e")
                lines.append(f"{key}: {float(mantissa)}e{int(exponent)}")
                continue
            lines.append(yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True, width=10_000).rstrip())
    return "\n".join(lines) + "\n"


def ds_z2_config() -> dict:
    """DeepSpeed ZeRO-2 config, as LLaMA-Factory's ``examples/deepspeed/ds_z2_config.json``."""
    return {
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "zero_allow_untested_optimizer": True,
        "fp16": {"enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16,
                 "hysteresis": 2, "min_loss_scale": 1},
        "bf16": {"enabled": "auto"},
        "zero_optimization": {"stage": 2, "allgather_partitions": True, "allgather_bucket_size": 500_000_000,
                              "overlap_comm": False, "reduce_scatter": True, "reduce_bucket_size": 500_000_000,
                              "contiguous_gradients": True, "round_robin_gradients": True},
        "comms_config": {"verbose": False},
        "monitor_config": {"enabled": True, "tag": "DeepSpeedMonitor", "csv_monitor": {"enabled": False}},
    }


_GENERATED = "Generated by `python -m mevlip.training.recipes`; edit mevlip/training/recipes.py, not this file."
_RUN = "Run from llama_factory_internvl/:"


def _preset_line(preset: str) -> str:
    spec = training_preset(preset)
    return (f"Preset {preset}: {spec.summary}.\n"
            f"Train it on data prepared with: python scripts/data_preparation.py --preset {preset}")


def render_all() -> dict[str, str]:
    """Every generated file under ``examples/``: relative path -> text."""
    files: dict[str, str] = {}
    paper_departures = "\n".join(f"  {k}: {v}" for k, v in PAPER_RECIPE_DEPARTURES.items())
    standin_departures = "\n".join(f"  {k}: {v}" for k, v in STANDIN_ADAPTER_DEPARTURES.items())
    for preset in TRAINING_PRESETS:
        qlora, standin, multi = (recipe_dir_name(k, preset) for k in ("train_qlora", "standin", "multi_gpu"))
        for adapter in ADAPTERS:
            if adapter == GENERAL_ADAPTER and preset == DEFAULT_PRESET:
                origin = ("The authors' general-adapter recipe, value for value (original repository:\n"
                          "llama_factory_internvl/examples/train_qlora/internvl_lora_sft_bnb.yaml), except:\n"
                          f"{paper_departures}")
            elif adapter == GENERAL_ADAPTER:
                origin = ("The authors' general-adapter recipe under OUR opt-in preset (system prompt, double\n"
                          "quantisation; docs/fidelity.md), except:\n" f"{paper_departures}")
            else:
                origin = (f"OUR recipe for the {adapter} adapter: the authors published none for task adapters;\n"
                          "this is their general recipe's settings on the task's subset.")
            files[f"{qlora}/{adapter_filename(adapter)}"] = to_yaml(paper_recipe(adapter, preset), header=(
                f"{origin}\n{_preset_line(preset)}\n"
                f"{_RUN} llamafactory-cli train examples/{qlora}/{adapter_filename(adapter)}\n"
                "LLaMA-Factory defaults in effect: lora_alpha 16 (2 x rank), lora_dropout 0, quantization_type nf4,\n"
                "freeze_vision_tower true, freeze_multi_modal_projector true, image_max_pixels 768*768,\n"
                "crop_to_patches false (one tile per image), dataset_dir data.\n"
                f"{_GENERATED}"))
        files[f"{multi}/{ADAPTER_STEM}_ds_z2.yaml"] = to_yaml(multi_gpu_recipe(preset), header=(
            "The general adapter on several GPUs with DeepSpeed ZeRO-2 (effective batch = 2 x 4 x GPUs; the authors\n"
            "trained on one GPU).\n"
            f"{_preset_line(preset)}\n"
            f"{_RUN} FORCE_TORCHRUN=1 llamafactory-cli train examples/{multi}/{ADAPTER_STEM}_ds_z2.yaml\n"
            "Needs `pip install deepspeed`.\n"
            f"{_GENERATED}"))
        files[f"{standin}/pretrain_full.yaml"] = to_yaml(standin_pretrain_recipe(preset), header=(
            "CPU: full fine-tune of the random stand-in (vision tower and projector unfrozen) before its adapters.\n"
            "Tasks are mixed by interleave_probs (mevlip.training.recipes.STANDIN_PRETRAIN_MIX says why), "
            "not concatenated.\n"
            f"{_preset_line(preset)}\n"
            f"{_RUN} llamafactory-cli train examples/{standin}/pretrain_full.yaml\n"
            f"{_GENERATED}"))
        for adapter in ADAPTERS:
            whose = "the authors' general recipe" if adapter == GENERAL_ADAPTER else "OUR task recipe"
            files[f"{standin}/{adapter_filename(adapter)}"] = to_yaml(standin_adapter_recipe(adapter, preset), header=(
                f"CPU: {whose} (examples/{qlora}/{adapter_filename(adapter)}) on the fully fine-tuned stand-in,\n"
                f"{adapter} adapter. Departures from that recipe:\n{standin_departures}\n"
                f"{_preset_line(preset)}\n"
                f"{_RUN} python scripts/train_adapters.py --recipe_dir examples/{standin} \\\n"
                "  --adapters_dir saves/standin/adapters\n"
                f"{_GENERATED}"))
    files["deepspeed/ds_z2_config.json"] = json.dumps(ds_z2_config(), indent=2) + "\n"
    return files


def write_all(examples_dir: str | Path) -> list[Path]:
    """Write :func:`render_all` under ``examples_dir``; returns the paths written."""
    examples_dir = Path(examples_dir)
    written = []
    for rel, text in render_all().items():
        path = examples_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = make_parser("Write the LLaMA-Factory recipes under examples/.", prog="python -m mevlip.training.recipes")
    add_option(parser, "--output_dir", aliases=("--out",), default=None,
               help="the examples folder (default: llama_factory_internvl/examples of the checkout this package "
                    "runs from, wherever the command is run)")
    add_common_args(parser)
    return parser


def checkout_examples_dir() -> Path | None:
    """``llama_factory_internvl/examples`` of the repository this module lies in, or ``None`` when installed
    outside a checkout (then the folder must be named)."""
    folder = Path(__file__).resolve().parents[2] / "llama_factory_internvl" / "examples"
    return folder if folder.is_dir() else None


def main(argv: list[str] | None = None) -> int:
    """CLI: regenerate the recipes."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    out = args.output_dir or checkout_examples_dir()
    if out is None:
        raise UserError("no repository checkout around this package: name the examples folder with --output_dir")
    for path in write_all(out):
        logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    run_cli(main, prog="python -m mevlip.training.recipes")
