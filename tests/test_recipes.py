"""The committed LLaMA-Factory recipes: generated from one base, the authors' values, parsed by LLaMA-Factory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mevlip.presets import OURS_SYSTEM
from mevlip.tasks import GENERAL_ADAPTER, TASK_NAMES
from mevlip.training.adapters import find_recipes
from mevlip.training.recipes import (
    ADAPTERS,
    PAPER_RECIPE_DEPARTURES,
    STANDIN_ADAPTER_DEPARTURES,
    STANDIN_PRETRAIN_MIX,
    adapter_filename,
    dataset_entry,
    flatten,
    multi_gpu_recipe,
    paper_recipe,
    render_all,
    standin_adapter_recipe,
    to_yaml,
)

LF_ROOT = Path(__file__).resolve().parents[1] / "llama_factory_internvl"
EXAMPLES = LF_ROOT / "examples"


def _load(rel: str) -> dict:
    return yaml.safe_load((EXAMPLES / rel).read_text(encoding="utf-8"))


def test_committed_files_equal_the_generator():
    generated = render_all()
    committed = {p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*") if p.is_file()}
    rerun = "run python -m mevlip.training.recipes"
    assert committed == set(generated), f"examples/ differs from mevlip.training.recipes; {rerun}"
    for rel, text in generated.items():
        assert (EXAMPLES / rel).read_text(encoding="utf-8") == text, f"{rel} is stale; {rerun}"


def test_yaml_round_trips_to_the_recipe():
    for adapter in ADAPTERS:
        assert _load(f"train_qlora/{adapter_filename(adapter)}") == flatten(paper_recipe(adapter))
        assert _load(f"standin/{adapter_filename(adapter)}") == flatten(standin_adapter_recipe(adapter))
    # Small floats keep LLaMA-Factory's spelling and still load as floats.
    assert "learning_rate: 2.0e-4\n" in to_yaml(paper_recipe())
    assert isinstance(_load("train_qlora/internvl_lora_sft_bnb.yaml")["learning_rate"], float)


#: The authors' recipe, copied byte for byte from the original repository (BioMedIA-MBZUAI/FLARE2025-Task5-2D-biomedia,
#: llama_factory_internvl/examples/train_qlora/internvl_lora_sft_bnb.yaml): the expected values below do not come
#: from mevlip.training.recipes.
AUTHORS_YAML = """\
# File: examples/train_qlora/internvl_lora_sft_bnb.yaml

model_name_or_path: OpenGVLab/InternVL3-8B-hf
quantization_bit: 4
quantization_method: bnb
double_quantization: false
trust_remote_code: true


### method
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all

### dataset
dataset: internvl
template: intern_vl
cutoff_len: 2048
overwrite_cache: true
preprocessing_num_workers: 16
dataloader_num_workers: 4


### output
output_dir: saves/internvl/lora/sft
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: wandb  # choices: [none, wandb, tensorboard, swanlab, mlflow]

### train
per_device_train_batch_size: 2
gradient_accumulation_steps: 4
learning_rate: 2.0e-4
num_train_epochs: 3.0
lr_scheduler_type: linear
warmup_ratio: 0.03
bf16: true
ddp_timeout: 180000000"""


def test_general_adapter_is_the_authors_recipe_value_for_value():
    theirs = yaml.safe_load(AUTHORS_YAML)
    ours = _load("train_qlora/internvl_lora_sft_bnb.yaml")
    # default_system "" is how stock LLaMA-Factory 0.9.5 renders what their vendored template did (no system turn)
    assert ours.pop("default_system") == ""
    assert ours.pop("report_to") == "none" and theirs.pop("report_to") == "wandb"
    assert "trust_remote_code" not in ours and theirs.pop("trust_remote_code") is True
    assert ours == theirs
    assert set(PAPER_RECIPE_DEPARTURES) == {"trust_remote_code", "report_to"}
    assert ours["double_quantization"] is False and ours["dataset"] == "internvl"


def test_task_recipes_say_they_are_ours():
    for task in TASK_NAMES:
        header = (EXAMPLES / f"train_qlora/{adapter_filename(task)}").read_text(encoding="utf-8")
        assert header.startswith(f"# OUR recipe for the {task} adapter: the authors published none")
    general = (EXAMPLES / "train_qlora/internvl_lora_sft_bnb.yaml").read_text(encoding="utf-8")
    assert general.startswith("# The authors' general-adapter recipe, value for value")


def test_ours_preset_changes_only_system_and_double_quantization():
    for folder in ("train_qlora", "standin"):
        for adapter in ADAPTERS:
            name = adapter_filename(adapter)
            paper, ours = _load(f"{folder}/{name}"), _load(f"{folder}_ours/{name}")
            changed = {k for k in paper.keys() | ours.keys() if paper.get(k) != ours.get(k)}
            assert changed == {"default_system", "double_quantization"}, (folder, adapter, changed)
            assert paper["default_system"] == "" and ours["default_system"] == OURS_SYSTEM
            assert paper["double_quantization"] is False and ours["double_quantization"] is True
    assert _load("standin_ours/pretrain_full.yaml")["default_system"] == OURS_SYSTEM
    assert _load("standin/pretrain_full.yaml")["default_system"] == ""


@pytest.mark.parametrize("folder", ["train_qlora", "standin"])
def test_task_adapters_differ_from_general_only_in_data_and_output(folder):
    general = _load(f"{folder}/{adapter_filename(GENERAL_ADAPTER)}")
    for task in TASK_NAMES:
        recipe = _load(f"{folder}/{adapter_filename(task)}")
        assert recipe["dataset"] == f"flare_{task}"
        assert recipe["output_dir"].endswith(f"/{task}")
        assert general["dataset"] == "internvl"
        assert {k: v for k, v in recipe.items() if k not in ("dataset", "output_dir")} == {
            k: v for k, v in general.items() if k not in ("dataset", "output_dir")}


def test_standin_adapters_depart_from_the_paper_only_where_documented():
    paper, standin = _load("train_qlora/internvl_lora_sft_bnb.yaml"), _load("standin/internvl_lora_sft_bnb.yaml")
    changed = {k for k in paper.keys() | standin.keys() if paper.get(k) != standin.get(k)}
    # CPU-only keys and the output folder follow from running on a CPU; the rest must be named departures.
    cpu_only = {"fp16", "preprocessing_num_workers", "dataloader_num_workers", "save_strategy", "output_dir",
                "disable_gradient_checkpointing"}
    assert standin["default_system"] == "" and standin["double_quantization"] is False
    assert changed - cpu_only == set(STANDIN_ADAPTER_DEPARTURES)
    for key in ("quantization_bit", "quantization_method", "double_quantization", "finetuning_type", "lora_rank",
                "lora_target", "num_train_epochs",
                "lr_scheduler_type", "warmup_ratio", "cutoff_len", "default_system", "template"):
        assert standin[key] == paper[key], key
    assert standin["bf16"] is False and standin["fp16"] is False and standin["report_to"] == "none"
    assert (standin["per_device_train_batch_size"] * standin["gradient_accumulation_steps"]
            == paper["per_device_train_batch_size"] * paper["gradient_accumulation_steps"])  # same batch of 8
    header = (EXAMPLES / "standin/internvl_lora_sft_bnb.yaml").read_text(encoding="utf-8")
    for key in STANDIN_ADAPTER_DEPARTURES:
        assert f"#   {key}:" in header


def test_standin_pretrain_is_a_full_unfrozen_fine_tune_on_cpu():
    recipe = _load("standin/pretrain_full.yaml")
    assert recipe["finetuning_type"] == "full"
    assert recipe["freeze_vision_tower"] is False and recipe["freeze_multi_modal_projector"] is False
    assert 1e-3 <= recipe["learning_rate"] <= 3e-3
    assert recipe["bf16"] is False and recipe["fp16"] is False and recipe["report_to"] == "none"
    assert recipe["output_dir"] == _load("standin/internvl_lora_sft_bnb.yaml")["model_name_or_path"]
    # every task, mixed by probability (token-averaged loss would otherwise ignore 2-token counting answers)
    assert recipe["dataset"].split(",") == [dataset_entry(t) for t in TASK_NAMES]
    assert recipe["mix_strategy"] == "interleave_over"
    probs = [float(p) for p in str(recipe["interleave_probs"]).split(",")]
    assert probs == [STANDIN_PRETRAIN_MIX[t] for t in TASK_NAMES] and abs(sum(probs) - 1) < 1e-9


def test_every_recipe_folder_maps_all_eight_adapters():
    for folder in ("train_qlora", "standin", "train_qlora_ours", "standin_ours"):
        recipes = find_recipes(EXAMPLES / folder)
        assert list(sorted(recipes)) == sorted(ADAPTERS)
        for adapter, path in recipes.items():
            assert path.name == adapter_filename(adapter)
            assert yaml.safe_load(path.read_text())["dataset"] == dataset_entry(adapter)


def test_multi_gpu_variant_is_the_general_recipe_plus_deepspeed():
    recipe = _load("multi_gpu/internvl_lora_sft_bnb_ds_z2.yaml")
    assert recipe == flatten(multi_gpu_recipe())
    deepspeed = recipe.pop("deepspeed")
    assert recipe == _load("train_qlora/internvl_lora_sft_bnb.yaml")
    config = json.loads((LF_ROOT / deepspeed).read_text(encoding="utf-8"))  # relative to llama_factory_internvl/
    assert config["zero_optimization"]["stage"] == 2
    assert config["train_micro_batch_size_per_gpu"] == "auto" and config["bf16"]["enabled"] == "auto"
    header = (EXAMPLES / "multi_gpu/internvl_lora_sft_bnb_ds_z2.yaml").read_text(encoding="utf-8")
    assert "FORCE_TORCHRUN=1 llamafactory-cli train examples/multi_gpu/internvl_lora_sft_bnb_ds_z2.yaml" in header


# ----------------------------------------------------------------------------------------------- LLaMA-Factory
def _parse(recipe: dict, tmp_path: Path, **overrides):
    from llamafactory.hparams import get_train_args

    return get_train_args({**recipe, "output_dir": str(tmp_path / "out"), **overrides})


@pytest.mark.parametrize("rel", sorted(r for r in render_all() if r.endswith(".yaml") and "multi_gpu" not in r))
def test_llamafactory_parses_recipe(rel, tmp_path):
    recipe = _load(rel)
    # The paper's bf16 needs a GPU or use_cpu; use_cpu keeps bf16 on, so every other value is still checked.
    model_args, data_args, training_args, finetuning_args, _ = _parse(
        recipe, tmp_path, **({"use_cpu": True} if recipe.get("bf16") else {}))
    assert data_args.template == "intern_vl"
    assert data_args.default_system == (OURS_SYSTEM if "_ours/" in rel else "")
    assert data_args.cutoff_len == 2048 and data_args.dataset == recipe["dataset"].split(",")
    assert training_args.bf16 is recipe.get("bf16", False)
    assert training_args.learning_rate == recipe["learning_rate"]
    assert model_args.crop_to_patches is False and model_args.image_max_pixels == 768 * 768
    if recipe["finetuning_type"] == "lora":
        assert model_args.quantization_bit == 4 and model_args.quantization_type == "nf4"
        assert model_args.double_quantization is ("_ours/" in rel)
        assert finetuning_args.lora_rank == 8 and finetuning_args.lora_target == ["all"]
        assert finetuning_args.freeze_vision_tower is True and finetuning_args.freeze_multi_modal_projector is True
    else:
        assert finetuning_args.finetuning_type == "full" and finetuning_args.freeze_vision_tower is False


def test_llamafactory_parses_multi_gpu_recipe(tmp_path):
    recipe = _load("multi_gpu/internvl_lora_sft_bnb_ds_z2.yaml")
    deepspeed = recipe.pop("deepspeed")
    _parse(recipe, tmp_path, use_cpu=True)
    # With DeepSpeed, LLaMA-Factory refuses a single-process launch (or deepspeed is not installed here).
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    try:
        with pytest.raises((ValueError, ImportError)) as err:
            _parse(recipe, tmp_path, use_cpu=True, deepspeed=str(LF_ROOT / deepspeed))
        message = str(err.value)
        del err  # the traceback keeps the half-built DeepSpeed config alive
    finally:
        # transformers keeps a global reference to the DeepSpeed config; a leftover one breaks later model loads.
        unset_hf_deepspeed_config()
    assert "deepspeed" in message.lower() or "FORCE_TORCHRUN" in message


def test_the_generator_writes_into_the_checkout_wherever_it_runs(tmp_path, monkeypatch):
    """Run from llama_factory_internvl/ (where the README works), it must not write a nested copy of the tree."""
    from mevlip.training import recipes

    repo = Path(recipes.__file__).resolve().parents[2]
    assert recipes.checkout_examples_dir() == repo / "llama_factory_internvl" / "examples"
    monkeypatch.chdir(repo / "llama_factory_internvl")
    written = []
    monkeypatch.setattr(recipes, "write_all", lambda folder: written.append(Path(folder)) or [])
    assert recipes.main([]) == 0
    assert written == [repo / "llama_factory_internvl" / "examples"]
    assert not (repo / "llama_factory_internvl" / "llama_factory_internvl").exists()
    assert recipes.main(["--output_dir", str(tmp_path / "ex")]) == 0 and written[-1] == tmp_path / "ex"
