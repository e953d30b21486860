"""QLoRA through ``llamafactory-cli train`` on the stand-in, via ``train_adapters.py``; the adapters load with peft.

One real run trains the ``general`` adapter for 2 steps on a handful of mini-FLARE rows with the committed
stand-in recipe (4-bit nf4 bitsandbytes, LoRA r8 on every LM linear layer). Step 1 is the warm-up step (learning
rate 0), so 2 steps are the fewest that change the adapter. The loop over all eight adapters (order, layout,
skipping, failures, the exact command) runs against stand-in commands, which cost no LLaMA-Factory start-up.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest_standin import extracted_copy, records_by_task, sharegpt_row, standin_dir, write_dataset
from scripts import load_script

from mevlip.training.adapters import LOG_NAME, PROVENANCE_NAME, AdapterTrainingError, find_recipes, train_adapters
from mevlip.training.recipes import STANDIN_ADAPTER_DEPARTURES

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "llama_factory_internvl" / "examples" / "standin"
TRAINED = ("general",)
LM_LINEARS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def _script():
    return load_script("llama_factory_internvl/scripts/train_adapters.py")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, mini_flare_tiny):
    return standin_dir(tmp_path_factory, mini_flare_tiny)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory, mini_flare_tiny):
    by_task = records_by_task(extracted_copy(tmp_path_factory, mini_flare_tiny))
    rows = {task: [sharegpt_row(r, d) for r, d in items[:2]] for task, items in by_task.items()}
    return write_dataset(tmp_path_factory.mktemp("sharegpt"), rows)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, model_dir, dataset_dir):
    """Run the CLI for real: the general adapter, 2 steps; returns the adapters folder."""
    adapters = tmp_path_factory.mktemp("adapters")
    code = _script().main(["--recipe_dir", str(RECIPES), "--adapters_dir", str(adapters), "--model", str(model_dir),
                           "--dataset_dir", str(dataset_dir), "--max_steps", "2", "--only", ",".join(TRAINED)])
    logs = {a: (adapters / a / LOG_NAME).read_text()[-3000:] for a in TRAINED if (adapters / a / LOG_NAME).is_file()}
    assert code == 0, f"train_adapters.py failed: {logs}"
    return adapters


def test_adapters_are_laid_out_for_inference(trained):
    assert sorted(p.name for p in trained.iterdir() if not p.name.startswith(".")) == sorted(TRAINED)  # .<name>.lock
    for adapter in TRAINED:
        folder = trained / adapter
        for name in ("adapter_config.json", "adapter_model.safetensors", LOG_NAME, PROVENANCE_NAME):
            assert (folder / name).is_file(), f"{adapter}/{name} missing"
        # plot_loss is on and train_adapters logs every step of a 2-step run, so LLaMA-Factory drew the curve.
        assert (folder / "training_loss.png").stat().st_size > 1000
        provenance = json.loads((folder / PROVENANCE_NAME).read_text())
        assert provenance["status"] == "trained" and provenance["overrides"]["max_steps"] == 2
        assert provenance["recipe"] == str(find_recipes(RECIPES)[adapter])
        state = json.loads((folder / "trainer_state.json").read_text())
        assert state["global_step"] == 2 and [h["loss"] for h in state["log_history"] if "loss" in h]


def test_first_logged_example_renders_no_system_turn(trained, dataset_dir):
    """Like the authors' log, LLaMA-Factory's first rendered example starts with the user turn, and the
    question follows the image after one space (their log: ``</img> What findings can you see ...``)."""
    log = (trained / "general" / LOG_NAME).read_text()
    assert "\ninputs:\n" in log, "LLaMA-Factory printed no training example"
    example = log.split("\ninputs:\n", 1)[1].split("\nlabel_ids:", 1)[0]
    assert example.startswith("<|im_start|>user\n<img><IMG_CONTEXT>")
    assert "<|im_start|>system" not in example
    first = json.loads((dataset_dir / "internvl.json").read_text())[0]  # LF's first example is the first row
    question = first["conversations"][0]["value"].removeprefix("<image> ")
    assert f"</img> {question}<|im_end|>\n<|im_start|>assistant\n" in example


def test_adapter_config_is_the_papers_lora(trained, model_dir):
    config = json.loads((trained / "general" / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16 and config["peft_type"] == "LORA"
    targets = config["target_modules"]
    assert {t.rsplit(".", 1)[-1] for t in targets} == LM_LINEARS
    assert all(t.startswith("model.language_model.layers.") for t in targets), "vision tower must stay frozen"
    assert len(targets) == 7 * json.loads((model_dir / "config.json").read_text())["text_config"]["num_hidden_layers"]


def test_adapter_loads_on_4bit_base_and_changes_logits(trained, model_dir, dataset_dir):
    """Inference path: the 4-bit base (as LLaMA-Factory quantised it for training) + PeftModel."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor, BitsAndBytesConfig

    from mevlip.inference.inputs import build_inputs

    # as the paper recipe quantised it for training: nf4, no double quantisation
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=False,
                               bnb_4bit_compute_dtype=torch.float32)
    base = AutoModelForImageTextToText.from_pretrained(model_dir, quantization_config=quant).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    row = json.loads((dataset_dir / "flare_counting.json").read_text())[0]
    question = row["question"]
    inputs = build_inputs(processor, question, row["images"])
    with torch.no_grad():
        base_logits = base(**inputs).logits
    model = PeftModel.from_pretrained(base, trained / "general", adapter_name="general")
    lora_b = [p for n, p in model.named_parameters() if "lora_B.general" in n]
    assert lora_b and any(p.abs().max() > 0 for p in lora_b), "LoRA B is still zero: the adapter did not train"
    with torch.no_grad():
        general_logits = model(**inputs).logits
        with model.disable_adapter():
            disabled_logits = model(**inputs).logits
    assert not torch.allclose(general_logits, base_logits, atol=1e-5)
    assert torch.allclose(disabled_logits, base_logits, atol=1e-6)


#: Stands in for llamafactory-cli: writes adapter files where ``output_dir=`` says (and the order to a file);
#: the weights are finite unless the environment asks for a diverged run.
FAKE_LF = """
import os, sys, pathlib
import numpy as np
from safetensors.numpy import save_file
args = dict(a.split("=", 1) for a in sys.argv[3:])
out = pathlib.Path(args["output_dir"])
(out / "adapter_config.json").write_text("{}")
lora_b = np.full((2, 2), np.nan if os.environ.get("FAKE_DIVERGE") == out.name else 0.5, np.float32)
save_file({"lora_A.weight": np.ones((2, 2), np.float32), "lora_B.weight": lora_b},
          str(out / "adapter_model.safetensors"))
with open(out.parent / "order.txt", "a") as fh:
    fh.write(out.name + " " + pathlib.Path(sys.argv[2]).name + "\\n")
"""


def test_all_eight_adapters_in_order_where_inference_expects_them(tmp_path, model_dir):
    from mevlip.tasks import GENERAL_ADAPTER, TASK_NAMES
    from mevlip.training.recipes import ADAPTERS, adapter_filename

    runs = train_adapters(RECIPES, tmp_path, model=model_dir, cli=[sys.executable, "-c", FAKE_LF])
    assert [r.adapter for r in runs] == [GENERAL_ADAPTER, *TASK_NAMES] == list(ADAPTERS)
    assert all(r.status == "trained" and r.plot is None for r in runs)
    order = (tmp_path / "order.txt").read_text().splitlines()
    assert order == [f"{a} {adapter_filename(a)}" for a in ADAPTERS]
    for adapter in ADAPTERS:
        assert (tmp_path / adapter / "adapter_model.safetensors").is_file()
        assert json.loads((tmp_path / adapter / PROVENANCE_NAME).read_text())["adapter"] == adapter


def test_trained_adapters_are_skipped(trained, model_dir):
    # A CLI that would fail proves no subprocess runs for adapters already trained.
    failing = [sys.executable, "-c", "import sys; sys.exit(7)"]
    runs = train_adapters(RECIPES, trained, model=model_dir, only=list(TRAINED), cli=failing)
    assert [(r.adapter, r.status) for r in runs] == [(a, "skipped") for a in TRAINED]
    with pytest.raises(AdapterTrainingError, match="adapter general: .* exited with 7"):
        train_adapters(RECIPES, trained, model=model_dir, only=["general"], overwrite=True, cli=failing)


def test_failure_names_the_adapter_and_shows_the_log(tmp_path, model_dir):
    noisy = [sys.executable, "-c", "import sys; print('something broke in LLaMA-Factory'); sys.exit(3)"]
    with pytest.raises(AdapterTrainingError, match="adapter counting") as err:
        train_adapters(RECIPES, tmp_path, model=model_dir, only=["regression", "counting"], cli=noisy)
    assert "something broke in LLaMA-Factory" in str(err.value)
    assert not (tmp_path / "regression").exists(), "adapters train in the canonical order: counting first"
    silent = [sys.executable, "-c", "pass"]
    with pytest.raises(AdapterTrainingError, match="adapter counting: training finished but .* lacks"):
        train_adapters(RECIPES, tmp_path / "empty", model=model_dir, only=["counting"], cli=silent)


def test_command_line_overrides_reach_llamafactory(tmp_path, model_dir):
    """The exact command: recipe, then key=value overrides (LLaMA-Factory merges them over the YAML)."""
    echo = [sys.executable, "-c", "import sys, json; print(json.dumps(sys.argv[1:]))"]
    with pytest.raises(AdapterTrainingError):  # echo writes no adapter
        train_adapters(RECIPES, tmp_path, model=model_dir, dataset_dir=tmp_path, max_steps=3, only=["regression"],
                       extra={"deepspeed": "examples/deepspeed/ds_z2_config.json"}, cli=echo)
    log = (tmp_path / "regression" / LOG_NAME).read_text()
    argv = json.loads(log.splitlines()[1])
    assert argv[:2] == ["train", str(RECIPES / "internvl_lora_sft_bnb_regression.yaml")]
    assert argv[2:] == [f"output_dir={tmp_path / 'regression'}", f"model_name_or_path={model_dir}",
                        f"dataset_dir={tmp_path}", "max_steps=3", "logging_steps=1",
                        "deepspeed=examples/deepspeed/ds_z2_config.json"]
    with pytest.raises(ValueError, match="unknown adapter"):
        train_adapters(RECIPES, tmp_path, only=["segmentation"], cli=echo)
    assert "learning_rate" not in STANDIN_ADAPTER_DEPARTURES  # the stand-in's adapters train at the paper's 2e-4


def test_gpu_check_dry_run(tmp_path):
    """benchmarks/gpu_check_internvl3_8b.py on CPU: shrunken widths, real 448 px geometry, 4-bit + LoRA, one step."""
    module = load_script("benchmarks/gpu_check_internvl3_8b.py")
    out = tmp_path / "report.json"
    assert module.main(["--dry_run", "--steps", "1", "--accum", "1", "--gen_batch", "1", "--max_new_tokens", "2",
                        "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["dry_run"] is True and report["model"]["image_tokens_per_tile"] == 256
    # 2 vision layers x (q, k, v, projection, fc1, fc2) + projector (2) + 2 LM layers x 7 linears; lm_head stays.
    assert report["model"]["linear_4bit"] == 2 * 6 + 2 + 2 * 7
    assert report["model"]["lora_parameters"] > 0
    assert len(report["training"]["losses"]) == 1 and 0 < report["training"]["losses"][0] < 20
    assert report["inference_before_training"]["new_tokens"] == report["inference_after_training"]["new_tokens"] == 2
    assert report["inference_before_training"]["prompt_tokens"] > 256


def _script_command(adapters: Path, model_dir: Path, dataset_dir: Path, *more: str) -> list[str]:
    return [sys.executable, str(REPO / "llama_factory_internvl" / "scripts" / "train_adapters.py"),
            "--recipe_dir", str(RECIPES), "--adapters_dir", str(adapters), "--model", str(model_dir),
            "--dataset_dir", str(dataset_dir), "--only", "general", *more]


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_last_checkpoint_and_shows_progress(tmp_path, model_dir, dataset_dir):
    """Kill train_adapters.py (and LLaMA-Factory under it) once a checkpoint is saved, rerun the same command: it
    continues from the newest checkpoint, runs only the remaining steps, and both runs print LLaMA-Factory's own
    progress bar and loss lines on the console."""
    import os
    import signal
    import subprocess
    import time

    from mevlip.training.adapters import last_checkpoint

    steps = 6
    adapters = tmp_path / "adapters"
    command = _script_command(adapters, model_dir, dataset_dir, "--max_steps", str(steps), "--save_steps", "1")
    first_out = tmp_path / "first.txt"
    with open(first_out, "wb") as out:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while last_checkpoint(adapters / "general") is None:
            assert proc.poll() is None, f"training ended before a checkpoint: {first_out.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = int(last_checkpoint(adapters / "general").name.split("-")[1])
    assert killed_at < steps and not (adapters / "general" / "adapter_model.safetensors").exists(), "not mid-run"
    first = first_out.read_bytes().decode(errors="replace")  # bytes: keep tqdm's carriage returns
    assert f"\r  0%|          | 0/{steps} [" in first, "no live progress bar on the console"

    resumed = subprocess.run(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    console = resumed.stdout.decode(errors="replace")
    assert resumed.returncode == 0, console[-3000:]
    assert f"(resumed from checkpoint-{killed_at})" in console
    provenance = json.loads((adapters / "general" / PROVENANCE_NAME).read_text())
    assert provenance["resumed_from"] == str(adapters / "general" / f"checkpoint-{killed_at}")
    start = killed_at
    # LLaMA-Factory's own output, live: its progress bar and one loss line per remaining step (logging_steps=1)
    assert "\r" in console and f"/{steps} [" in console
    losses = [line for line in console.splitlines() if "'loss': " in line]
    assert len(losses) == steps - start, (start, losses)
    state = json.loads((adapters / "general" / "trainer_state.json").read_text())
    assert state["global_step"] == steps
    assert [h["step"] for h in state["log_history"] if "loss" in h] == list(range(1, steps + 1))
    log = (adapters / "general" / LOG_NAME).read_bytes().decode(errors="replace")
    runs = [part for part in log.split("$ ") if part.strip()]
    assert len(runs) == 2 and "resume_from_checkpoint=" in runs[1].splitlines()[0], "the log keeps both runs"


def test_report_to_save_steps_and_resume_reach_llamafactory(tmp_path, model_dir, monkeypatch):
    import mevlip.training.adapters as train

    echo = [sys.executable, "-c", "import sys, json; print(json.dumps(sys.argv[1:]))"]

    def argv(folder: Path) -> list[str]:
        return json.loads((folder / "regression" / LOG_NAME).read_text().splitlines()[-1])

    with pytest.raises(AdapterTrainingError):  # echo writes no adapter
        train_adapters(RECIPES, tmp_path, model=model_dir, only=["regression"], report_to="none", save_steps=5,
                       cli=echo)
    assert argv(tmp_path)[-3:] == ["report_to=none", "save_strategy=steps", "save_steps=5"]
    # a complete checkpoint-7 and an interrupted checkpoint-9 (no trainer_state.json): resume from 7
    for step, state in ((3, "{}"), (7, "{}"), (9, None)):
        (tmp_path / "regression" / f"checkpoint-{step}").mkdir()
        if state is not None:
            (tmp_path / "regression" / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    with pytest.raises(AdapterTrainingError):
        train_adapters(RECIPES, tmp_path, model=model_dir, only=["regression"], cli=echo)
    assert argv(tmp_path)[-1] == f"resume_from_checkpoint={tmp_path / 'regression' / 'checkpoint-7'}"
    with pytest.raises(AdapterTrainingError):  # afresh: no resume, the old checkpoints are gone
        train_adapters(RECIPES, tmp_path, model=model_dir, only=["regression"], resume=False, cli=echo)
    assert not any(a.startswith("resume_from_checkpoint=") for a in argv(tmp_path))
    assert not list((tmp_path / "regression").glob("checkpoint-*"))
    # a reporter whose package is missing is refused before anything runs, naming what to install
    monkeypatch.setattr(train.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"report_to tensorboard needs the tensorboard package.*\.\[tensorboard\]"):
        train_adapters(RECIPES, tmp_path / "tb", model=model_dir, only=["regression"], report_to="tensorboard",
                       cli=echo)
    assert not (tmp_path / "tb").exists()
    with pytest.raises(ValueError, match="not one of none, tensorboard, wandb"):
        train_adapters(RECIPES, tmp_path, model=model_dir, report_to="mlflow", cli=echo)


def test_output_streams_to_the_console_as_it_comes(tmp_path, model_dir, capfd):
    """A progress bar without newlines reaches the console and the log before the process ends."""
    fake = ("import sys, time, pathlib\n"
            "for i in range(3):\n"
            "    sys.stderr.write(f'\\r{i + 1}/3 [bar]'); sys.stderr.flush(); time.sleep(0.2)\n"
            "log = pathlib.Path(sys.argv[3].split('=', 1)[1]) / 'mevlip_train.log'\n"
            "print('\\nlog while running:', '2/3 [bar]' in log.read_text())\n"
            "sys.exit(5)\n")
    with pytest.raises(AdapterTrainingError) as err:
        train_adapters(RECIPES, tmp_path, model=model_dir, only=["counting"], cli=[sys.executable, "-c", fake])
    console = capfd.readouterr().out
    assert "\r1/3 [bar]\r2/3 [bar]\r3/3 [bar]" in console and "log while running: True" in console
    assert "3/3 [bar]" in str(err.value) and "1/3 [bar]" not in str(err.value), "the tail shows the last redraw"
    with pytest.raises(AdapterTrainingError):
        train_adapters(RECIPES, tmp_path / "q", model=model_dir, only=["counting"], echo=False,
                       cli=[sys.executable, "-c", fake])
    assert "[bar]" not in capfd.readouterr().out
    assert "\r3/3 [bar]" in (tmp_path / "q" / "counting" / LOG_NAME).read_bytes().decode()


def test_a_diverged_adapter_is_never_kept_as_trained(tmp_path, model_dir, monkeypatch):
    from mevlip.training.adapters import is_trained

    monkeypatch.setenv("FAKE_DIVERGE", "counting")  # the fake trainer writes NaN weights for this adapter
    with pytest.raises(AdapterTrainingError, match=r"adapter counting: its weights are not finite \(lora_B.weight\): "
                                                   r"the training diverged"):
        train_adapters(RECIPES, tmp_path, model=model_dir, only=["general", "counting"],
                       cli=[sys.executable, "-c", FAKE_LF])
    assert is_trained(tmp_path / "general") and not is_trained(tmp_path / "counting")
    assert (tmp_path / "counting" / "adapter_model.nonfinite.safetensors").is_file()  # kept aside, for a look
