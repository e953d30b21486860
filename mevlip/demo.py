"""``make demo``: the whole ME-VLIP pipeline on the embedded default, for real, with a results report.

Every stage runs the same command a user would type (printed before it runs, logged under ``demo_output/logs/``)::

    1 mini_flare   python -m mevlip.synth                              -> demo_output/mini_flare/ (+ pretrain_flare/)
    2 prepare      llama_factory_internvl/scripts/data_preparation.py  -> demo_output/data/ (+ pretrain_data/)
    3 standin      llama_factory_internvl/scripts/make_standin_model.py -> demo_output/standin/base/
    4 pretrain     llamafactory-cli train examples/standin/pretrain_full.yaml -> demo_output/standin/pretrained/
    5 adapters     llama_factory_internvl/scripts/train_adapters.py    -> demo_output/adapters/<name>/
    6 router       task_classifier/train_task_classifier.py            -> demo_output/router/
    7 predict      docker_internvl/inference.py (+ mevlip.baselines)   -> demo_output/predictions/<mode>/
    8 evaluate     evaluation/evaluation.py                            -> demo_output/metrics/<mode>/
    9 report       demo_output/results.md (+ plots)

Training follows a preset (:mod:`mevlip.presets`): ``paper`` by default, what the authors trained (one row per image,
``"<image> " + question``, no system turn, answers as given, their recipe); ``--preset ours`` runs our opt-in variant
into the same stages (the stamps see the changed commands). ``results.md`` names the preset.

A stage is skipped when its stamp (``demo_output/.stages/<stage>.json``) records the same command and the same
contents of the recipes it reads, and is newer than the stamps of the stages it depends on; ``--fresh``
(``make demo FRESH=1``) redoes everything. The stand-in's "pre-training" is a full fine-tune on a separate synthetic
draw (another seed) of the same tasks: it stands in for InternVL3's own pre-training, which the paper starts from;
it samples the tasks by probability rather than concatenating them, since LLaMA-Factory averages the loss over
answer tokens and 2-token counts would otherwise weigh nothing (``mevlip.recipes.STANDIN_PRETRAIN_MIX``). Sized
for under 15 minutes on 2 cores (measured 12.4 min): ``small`` mini-FLARE (whose chromosome images are partial
spreads, ``mevlip.synth.catalog.WHOLE_KARYOTYPE``), the recipes' pre-training and 3 adapter epochs, a CPU-light router (``--final``, 60 steps).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mevlip.presets import DEFAULT_PRESET, TRAINING_PRESETS
from mevlip.recipes import recipe_dir_name
from mevlip.synth import is_mini_flare

logger = logging.getLogger("demo")
REPO = Path(__file__).resolve().parents[1]
#: Prediction columns of the results table: (mode, title).
MODES = (("constant", "constant baseline"), ("untrained", "untrained stand-in"), ("base", "pre-trained, no adapter"),
         ("general", "general adapter"), ("router", "ME-VLIP (with TC)"), ("record", "oracle routing"))


@dataclass
class Settings:
    """What the demo runs; ``quick`` is the CI-sized run."""

    out: Path
    scale: str = "small"
    seed: int = 0
    preset: str = DEFAULT_PRESET
    pretrain_epochs: float | None = None  # None: the recipe's (examples/standin/pretrain_full.yaml)
    adapter_epochs: float | None = None  # None: the recipes' (the paper's 3)
    max_steps: int | None = None
    router_epochs: float | None = None
    router_max_steps: int | None = 60
    max_new_tokens: int = 1024
    untrained_max_new_tokens: int = 64
    batch_size: int = 16
    bootstrap: int = 200
    extra: dict = field(default_factory=dict)


class StageFailed(RuntimeError):
    """A stage's command failed; the message names the stage and its log."""


class Pipeline:
    """Runs stages in order, skipping those whose outputs are up to date."""

    def __init__(self, settings: Settings):
        self.s = settings
        self.stamps = settings.out / ".stages"
        self.logs = settings.out / "logs"
        self.stamps.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.times: dict[str, dict] = {}

    def stage(self, name: str, commands: list[list[str]], deps: tuple[str, ...] = (), outputs: tuple[Path, ...] = (),
              inputs: tuple[Path, ...] = ()):
        """Run ``commands`` as stage ``name`` unless its stamp is newer than its deps' and the commands and the
        contents of ``inputs`` (files, or folders of files: the recipes a stage reads) are unchanged."""
        stamp = self.stamps / f"{name}.json"
        printable = [[str(c) for c in cmd] for cmd in commands]
        digest = _digest(inputs)
        if stamp.is_file():
            old = json.loads(stamp.read_text())
            newer = all((self.stamps / f"{d}.json").is_file()
                        and (self.stamps / f"{d}.json").stat().st_mtime_ns <= stamp.stat().st_mtime_ns for d in deps)
            if (old.get("commands") == printable and old.get("inputs") == digest and newer
                    and all(Path(o).exists() for o in outputs)):
                print(f"\n=== [{name}] up to date (ran in {old['seconds']:.0f} s), skipped", flush=True)
                self.times[name] = {"seconds": old["seconds"], "cached": True}
                return
        print(f"\n=== [{name}]", flush=True)
        start = time.perf_counter()
        log_path = self.logs / f"{name}.log"
        with open(log_path, "w", encoding="utf-8") as log:
            for cmd in printable:
                print("$ " + " ".join(cmd), flush=True)
                log.write("$ " + " ".join(cmd) + "\n")
                log.flush()
                code = _run_tee(cmd, log)
                if code != 0:
                    raise StageFailed(f"stage '{name}' failed (exit {code}) running: {' '.join(cmd)}; "
                                      f"log: {log_path}")
        seconds = time.perf_counter() - start
        stamp.write_text(json.dumps({"commands": printable, "inputs": digest, "seconds": seconds}, indent=2))
        self.times[name] = {"seconds": seconds, "cached": False}
        print(f"=== [{name}] done in {seconds:.0f} s", flush=True)


def _digest(paths: tuple[Path, ...]) -> str:
    """SHA-256 over the names and bytes of ``paths`` (folders: their files, sorted)."""
    h = hashlib.sha256()
    for path in map(Path, paths):
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file():
                h.update(str(f.relative_to(REPO) if f.is_relative_to(REPO) else f).encode())
                h.update(f.read_bytes())
    return h.hexdigest()


def _run_tee(cmd: list[str], log) -> int:
    """Run a command from the repository root, streaming its output to the console and the log."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1, errors="replace")
    for line in proc.stdout:
        sys.stdout.write(line)
        log.write(line)
    return proc.wait()


def run(settings: Settings) -> Path:
    """Run every stage; returns the path of ``results.md``."""
    s, py = settings, sys.executable
    out = s.out.resolve()
    data, pretrain_data = out / "mini_flare", out / "pretrain_flare"
    for folder in (data, pretrain_data):
        if folder.exists() and any(folder.iterdir()) and not is_mini_flare(folder):
            raise StageFailed(f"{folder} holds data that mini-FLARE did not write; refusing to overwrite it")
    p = Pipeline(settings)
    p.stage("mini_flare", [
        [py, "-m", "mevlip.synth", "--out", data, "--scale", s.scale, "--seed", str(s.seed), "--no-progress"],
        [py, "-m", "mevlip.synth", "--out", pretrain_data, "--scale", s.scale, "--seed", str(s.seed + 1000),
         "--no-progress"],
    ], outputs=(data / "mini_flare.json", pretrain_data / "mini_flare.json"))
    prep = [py, "llama_factory_internvl/scripts/data_preparation.py", "--workers", "2", "--preset", s.preset]
    recipes = f"llama_factory_internvl/examples/{recipe_dir_name('standin', s.preset)}"
    p.stage("prepare", [
        prep + ["--dataset_root", data, "--output_dir", out / "data", "--val_splits", "validation-public",
                "validation-hidden"],
        prep + ["--dataset_root", pretrain_data, "--output_dir", out / "pretrain_data"],
    ], deps=("mini_flare",), outputs=(out / "data" / "dataset_info.json",))
    p.stage("standin", [[py, "llama_factory_internvl/scripts/make_standin_model.py", "--out", out / "standin" / "base",
                         "--data", data, "--seed", str(s.seed)]],
            deps=("mini_flare",), outputs=(out / "standin" / "base" / "config.json",))
    steps = [f"max_steps={s.max_steps}"] if s.max_steps else []
    p.stage("pretrain", [[
        "llamafactory-cli" if shutil.which("llamafactory-cli") else str(Path(py).parent / "llamafactory-cli"),
        "train", f"{recipes}/pretrain_full.yaml",
        f"model_name_or_path={out / 'standin' / 'base'}", f"dataset_dir={out / 'pretrain_data'}",
        f"output_dir={out / 'standin' / 'pretrained'}", *steps,
        *([f"num_train_epochs={s.pretrain_epochs}"] if s.pretrain_epochs else [])]],
        deps=("prepare", "standin"), outputs=(out / "standin" / "pretrained" / "config.json",),
        inputs=(REPO / recipes / "pretrain_full.yaml",))
    train = [py, "llama_factory_internvl/scripts/train_adapters.py", "--recipe_dir", recipes,
             "--adapters_dir", out / "adapters",
             "--model", out / "standin" / "pretrained", "--dataset_dir", out / "data", "--overwrite"]
    if s.adapter_epochs:
        train += ["--set", f"num_train_epochs={s.adapter_epochs}"]
    p.stage("adapters", [train + (["--max_steps", str(s.max_steps)] if s.max_steps else [])],
            deps=("pretrain",), outputs=(out / "adapters" / "general" / "adapter_config.json",),
            inputs=(REPO / recipes,))
    # The router to deploy (--final: every training-split wording), CPU-light: the top 3 encoder layers, label model
    # fixed (its projector trains), 60 steps; tests/test_router.py measured these at 100 % on held-out wordings.
    router = [py, "task_classifier/train_task_classifier.py", "--data_dir", out / "data", "--final",
              "--output_dir", out / "router", "--trainable_layers", "3", "--freeze_label_encoder", "--no_progress",
              "--paraphrases", "tests/data/router_paraphrases.json"]
    if s.router_epochs:
        router += ["--epochs", str(s.router_epochs)]
    if s.router_max_steps:
        router += ["--max_steps", str(s.router_max_steps)]
    p.stage("router", [router], deps=("prepare",), outputs=(out / "router" / "router_config.json",))
    splits = ["--splits", "validation-public", "validation-hidden"]
    for mode, _ in MODES:
        pred_dir = out / "predictions" / mode
        if mode == "constant":
            cmd = [py, "-m", "mevlip.baselines", "--dataset_root", data, "--output", pred_dir / "predictions.json"]
            deps: tuple[str, ...] = ("mini_flare",)
        else:
            base = out / "standin" / ("base" if mode == "untrained" else "pretrained")
            cmd = [py, "docker_internvl/inference.py", "--base_dataset_path", data, "--output_dir", pred_dir,
                   "--device", "cpu", "--base_model", base, "--max_new_tokens", str(s.max_new_tokens),
                   "--batch_size", str(s.batch_size), "--no_progress", "--overwrite", "--preset", s.preset,
                   *splits]
            if mode == "untrained":  # random weights never stop on their own: a short budget says as much
                cmd[cmd.index("--max_new_tokens") + 1] = str(min(s.max_new_tokens, s.untrained_max_new_tokens))
            else:  # the 4-bit base the adapters were trained on (QLoRA), as the paper's inference
                cmd += ["--quantization", "4bit"]
            if mode in ("untrained", "base"):
                cmd += ["--routing", "record", "--adapters_dir", ""]
                deps = ("standin",) if mode == "untrained" else ("pretrain",)
            else:
                cmd += ["--routing", mode, "--adapters_dir", out / "adapters", "--router_dir", out / "router"]
                deps = ("adapters", "router")
        p.stage(f"predict_{mode}", [cmd], deps=deps, outputs=(pred_dir / "predictions.json",))
        p.stage(f"evaluate_{mode}", [[
            py, "evaluation/evaluation.py", "--base_dataset_path", data, "--prediction_file",
            pred_dir / "predictions.json", "--output_dir", out / "metrics" / mode, "--bootstrap", str(s.bootstrap)]],
            deps=(f"predict_{mode}",), outputs=(out / "metrics" / mode / "metrics_predictions.json",))
    from mevlip.demo_report import write_report

    path = write_report(out, p.times, settings)
    print(f"\n=== results: {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m mevlip.demo [--fresh] [--quick]``."""
    parser = argparse.ArgumentParser(prog="python -m mevlip.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "demo_output"), help="where every artefact goes")
    parser.add_argument("--fresh", action="store_true", help="delete the previous demo output and redo every stage")
    parser.add_argument("--quick", action="store_true",
                        help="CI size: tiny mini-FLARE, a few training steps per stage (checks the plumbing only)")
    parser.add_argument("--seed", type=int, default=0, help="seed of mini-FLARE, the stand-in and training")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=list(TRAINING_PRESETS),
                        help="paper: train and infer as the authors did; ours: our opt-in variant (docs/fidelity.md)")
    args = parser.parse_args(argv)
    settings = Settings(Path(args.out), seed=args.seed, preset=args.preset)
    if args.quick:
        settings = Settings(Path(args.out), scale="tiny", seed=args.seed, preset=args.preset, max_steps=2,
                            router_max_steps=4, max_new_tokens=24, bootstrap=20)
    if args.fresh and settings.out.exists():
        shutil.rmtree(settings.out)
    try:
        run(settings)
    except StageFailed as err:
        print(f"\nDEMO FAILED: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
