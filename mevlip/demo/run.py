"""``make demo``: the whole ME-VLIP pipeline on the embedded default, for real, with a results report.

Every stage runs the same command a user would type (printed before it runs, logged under ``demo_output/logs/``)::

    1 mini_flare   python -m mevlip.synth  -> demo_output/mini_flare/ (mini_flare_pretrain: pretrain_flare/)
    2 prepare      llama_factory_internvl/scripts/data_preparation.py -> demo_output/data/ (prepare_pretrain)
    3 standin      llama_factory_internvl/scripts/make_standin_model.py -> demo_output/standin/base/
    4 pretrain     llamafactory-cli train examples/standin/pretrain_full.yaml -> demo_output/standin/pretrained/
    5 adapter_<name> llama_factory_internvl/scripts/train_adapters.py --only <name> -> demo_output/adapters/<name>/
    6 router       task_classifier/train_task_classifier.py            -> demo_output/router/
    7 predict      docker_internvl/inference.py (+ mevlip.baselines)   -> demo_output/predictions/<mode>/
    8 evaluate     evaluation/evaluation.py                            -> demo_output/metrics/<mode>/
    9 report       demo_output/results.md (+ plots)

Training follows a preset (:mod:`mevlip.presets`): ``paper`` by default, what the authors trained (one row per image,
``"<image> " + question``, no system turn, answers as given, their recipe); ``--preset ours`` runs our opt-in variant
into the same stages (the stamps see the changed commands). ``results.md`` names the preset.

Stages run as soon as the stages they need are done, up to ``--jobs`` at once (2: the target is a 2-core CPU), each
process with a fixed torch thread count (``--threads`` 1, also the pre-training's ``--pretrain_threads``) whatever the
machine, so that a seed's figures do not depend on its core count; each adapter is its own stage, so two adapters
train at once. One thread per process, two processes: OpenMP threads that outnumber free cores spin at their
barriers (measured: the 2-thread pre-training beside one other process ran 12x slower per step).

A stage is skipped when its stamp (``demo_output/.stages/<stage>.json``) records the same command and the same
contents of the recipes it reads, and is newer than the stamps of the stages it depends on; ``--fresh``
(``make demo FRESH=1``) redoes everything.

Seeds: ``--seed`` is the training seed (stand-in weights, pre-training, adapters, router), ``--data_seed`` draws
mini-FLARE. ``--seeds 0 1 2`` (``make demo SEEDS="0 1 2"``) trains, infers and scores once per seed on the same
mini-FLARE (seed 0 in ``demo_output/``, seed n in ``demo_output/seeds/seed_n/``) and writes ``seeds.md`` /
``seeds.json``: mean and [min, max] per task and column, and every seed's learning verdicts; it takes about one demo
per seed. ``results.md`` of a one-seed run says where its figures fall in the committed reference range
(``benchmarks/results/demo_seeds.json``, what the README quotes).

The stand-in's "pre-training" is a full fine-tune on a separate synthetic draw (data seed + 1000) of the same tasks:
it stands in for InternVL3's own pre-training, which the paper starts from; it samples the tasks by probability
rather than concatenating them, since LLaMA-Factory averages the loss over answer tokens and 2-token counts would
otherwise weigh nothing (``mevlip.training.recipes.STANDIN_PRETRAIN_MIX``). ``small`` mini-FLARE (whose chromosome
images are partial spreads, ``mevlip.synth.catalog.WHOLE_KARYOTYPE``), the recipes' pre-training and the paper's 3
adapter epochs, a CPU-light router (``--final``, 400 steps).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from mevlip.presets import DEFAULT_PRESET
from mevlip.synth import is_mini_flare
from mevlip.tasks import GENERAL_ADAPTER
from mevlip.training.recipes import ADAPTERS, recipe_dir_name

logger = logging.getLogger("demo")
REPO = Path(__file__).resolve().parents[2]
#: Prediction columns of the results table: (mode, title).
MODES = (("constant", "constant baseline"), ("untrained", "untrained stand-in"), ("base", "pre-trained, no adapter"),
         ("general", "general adapter"), ("router", "ME-VLIP (with TC)"), ("record", "oracle routing"))


@dataclass
class Settings:
    """What the demo runs; ``quick`` is the CI-sized run.

    ``seed`` is the training seed (stand-in weights, pre-training, adapters, router); ``data_seed`` draws mini-FLARE
    (the pre-training draw is ``data_seed + 1000``), so that the seeds mode varies training over the same data.
    ``threads`` is the torch thread count of every process (fixed, not the machine's core count: another thread
    count is another summation order), ``pretrain_threads`` that of the pre-training;
    ``jobs`` stages run at once where their inputs are ready (2 on the 2-core target).
    """

    out: Path
    scale: str = "small"
    seed: int = 0
    data_seed: int = 0
    preset: str = DEFAULT_PRESET
    pretrain_epochs: float | None = None  # None: the recipe's (examples/standin/pretrain_full.yaml)
    adapter_epochs: float | None = None  # None: the recipes' (the paper's 3)
    max_steps: int | None = None
    router_epochs: float | None = None
    router_max_steps: int | None = 400
    max_new_tokens: int = 1024
    untrained_max_new_tokens: int = 64
    batch_size: int = 16
    bootstrap: int = 200
    jobs: int = 2
    threads: int = 1
    pretrain_threads: int = 1
    extra: dict = field(default_factory=dict)


class StageFailed(RuntimeError):
    """A stage's command failed; the message names the stage and its log."""


@dataclass
class Stage:
    """One step of the demo: commands run in order from the repository root, with ``threads`` torch threads.

    ``key`` is unique in a pipeline (``name``, or ``seed_<n>/name`` in the seeds mode); its stamp and log live in
    ``out/.stages/<name>.json`` and ``out/logs/<name>.log``.
    """

    key: str
    name: str
    out: Path
    commands: list[list[str]]
    deps: tuple[str, ...] = ()
    outputs: tuple[Path, ...] = ()
    inputs: tuple[Path, ...] = ()
    threads: int = 1


class Pipeline:
    """Runs stages in dependency order, up to ``jobs`` at once, skipping those whose outputs are up to date.

    A stage is skipped when its stamp records the same commands and the same contents of the recipes it reads
    (``inputs``), is newer than the stamps of the stages it depends on, and its outputs exist.
    """

    def __init__(self, settings: Settings, jobs: int | None = None):
        self.s = settings
        self.jobs = max(1, jobs if jobs is not None else settings.jobs)
        self.stages: dict[str, Stage] = {}
        self.times: dict[str, dict] = {}

    def add(self, name: str, commands: list[list], deps: tuple[str, ...] = (), outputs: tuple[Path, ...] = (),
            inputs: tuple[Path, ...] = (), threads: int | None = None, out: Path | None = None,
            prefix: str = "") -> str:
        """Declare a stage (``deps`` are keys of stages added before); returns its key."""
        key = prefix + name
        missing = [d for d in deps if d not in self.stages]
        if missing:
            raise ValueError(f"stage {key!r} depends on undeclared {missing}")
        self.stages[key] = Stage(key, name, Path(out or self.s.out), [[str(c) for c in cmd] for cmd in commands],
                                 tuple(deps), tuple(outputs), tuple(inputs),
                                 threads if threads is not None else self.s.threads)
        return key

    def stage(self, name: str, commands: list[list], deps: tuple[str, ...] = (), outputs: tuple[Path, ...] = (),
              inputs: tuple[Path, ...] = ()) -> None:
        """Declare one stage and run it (and whatever is pending) now."""
        self.add(name, commands, deps, outputs, inputs)
        self.run()

    def run(self) -> dict[str, dict]:
        """Run every declared stage not yet run; raises :class:`StageFailed` naming the first that failed (the
        stages already running finish first, nothing new starts)."""
        pending = [k for k in self.stages if k not in self.times]
        running: dict = {}
        failure: StageFailed | None = None
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            while pending or running:
                if failure is None:
                    for key in list(pending):
                        if len(running) >= self.jobs:
                            break
                        if all(d in self.times for d in self.stages[key].deps):
                            pending.remove(key)
                            running[pool.submit(self._run_stage, self.stages[key])] = key
                if not running:
                    if failure is not None:
                        break
                    raise StageFailed(f"stages {pending} wait on stages that never ran")  # unreachable by add()
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    key = running.pop(future)
                    try:
                        self.times[key] = future.result()
                    except StageFailed as err:
                        failure = failure or err
        if failure is not None:
            raise failure
        return self.times

    def _run_stage(self, st: Stage) -> dict:
        stamps, logs = st.out / ".stages", st.out / "logs"
        stamps.mkdir(parents=True, exist_ok=True)
        logs.mkdir(parents=True, exist_ok=True)
        stamp = stamps / f"{st.name}.json"
        digest = _digest(st.inputs)
        if stamp.is_file():
            old = json.loads(stamp.read_text())
            dep_stamps = [self.stages[d].out / ".stages" / f"{self.stages[d].name}.json" for d in st.deps]
            newer = all(d.is_file() and d.stat().st_mtime_ns <= stamp.stat().st_mtime_ns for d in dep_stamps)
            if (old.get("commands") == st.commands and old.get("inputs") == digest and newer
                    and all(Path(o).exists() for o in st.outputs)):
                print(f"\n=== [{st.key}] up to date (ran in {old['seconds']:.0f} s), skipped", flush=True)
                return {"seconds": old["seconds"], "cached": True, "threads": old.get("threads")}
        print(f"\n=== [{st.key}] ({st.threads} thread{'s' if st.threads > 1 else ''})", flush=True)
        start = time.perf_counter()
        log_path = logs / f"{st.name}.log"
        prefix = f"[{st.key}] " if self.jobs > 1 else ""
        with open(log_path, "w", encoding="utf-8") as log:
            for cmd in st.commands:
                print(prefix + "$ " + " ".join(cmd), flush=True)
                log.write("$ " + " ".join(cmd) + "\n")
                log.flush()
                code = _run_tee(cmd, log, st.threads, prefix)
                if code != 0:
                    raise StageFailed(f"stage '{st.key}' failed (exit {code}) running: {' '.join(cmd)}; "
                                      f"log: {log_path}")
        seconds = time.perf_counter() - start
        stamp.write_text(json.dumps({"commands": st.commands, "inputs": digest, "seconds": seconds,
                                     "threads": st.threads}, indent=2))
        print(f"=== [{st.key}] done in {seconds:.0f} s", flush=True)
        return {"seconds": seconds, "cached": False, "threads": st.threads}


def _digest(paths: tuple[Path, ...]) -> str:
    """SHA-256 over the names and bytes of ``paths`` (folders: their files, sorted)."""
    h = hashlib.sha256()
    for path in map(Path, paths):
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file():
                h.update(str(f.relative_to(REPO) if f.is_relative_to(REPO) else f).encode())
                h.update(f.read_bytes())
    return h.hexdigest()


_CONSOLE = threading.Lock()


def _run_tee(cmd: list[str], log, threads: int = 1, prefix: str = "") -> int:
    """Run a command from the repository root with ``threads`` torch/BLAS threads, streaming its output to the
    console (each line after ``prefix``) and the log."""
    n = str(max(1, threads))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n,
           "OPENBLAS_NUM_THREADS": n}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1, errors="replace")
    for line in proc.stdout:
        with _CONSOLE:
            sys.stdout.write(prefix + line)
            sys.stdout.flush()
        log.write(line)
    return proc.wait()


def seed_dir(out: Path, seed: int) -> Path:
    """Where a seed's training artefacts go: ``out`` itself for seed 0 (``make demo``), ``out/seeds/seed_<n>``
    otherwise; the data stages always live in ``out``."""
    return out if seed == 0 else out / "seeds" / f"seed_{seed}"


def add_data_stages(p: Pipeline, s: Settings, out: Path) -> dict[str, str]:
    """mini-FLARE (evaluation draw and pre-training draw) and their data preparation; returns the stage keys."""
    py = sys.executable
    data, pretrain_data = out / "mini_flare", out / "pretrain_flare"
    for folder in (data, pretrain_data):
        if folder.exists() and any(folder.iterdir()) and not is_mini_flare(folder):
            raise StageFailed(f"{folder} holds data that mini-FLARE did not write; refusing to overwrite it")
    keys = {}
    for name, folder, seed in (("mini_flare", data, s.data_seed), ("mini_flare_pretrain", pretrain_data,
                                                                     s.data_seed + 1000)):
        keys[name] = p.add(name, [[py, "-m", "mevlip.synth", "--out", folder, "--scale", s.scale, "--seed", str(seed),
                                   "--no-progress"]], outputs=(folder / "mini_flare.json",), out=out)
    prep = [py, "llama_factory_internvl/scripts/data_preparation.py", "--workers", "1", "--preset", s.preset]
    keys["prepare"] = p.add("prepare", [prep + ["--dataset_root", data, "--output_dir", out / "data", "--val_splits",
                                                "validation-public", "validation-hidden"]],
                            deps=(keys["mini_flare"],), outputs=(out / "data" / "dataset_info.json",), out=out)
    keys["prepare_pretrain"] = p.add("prepare_pretrain", [prep + ["--dataset_root", pretrain_data, "--output_dir",
                                                                  out / "pretrain_data"]],
                                     deps=(keys["mini_flare_pretrain"],),
                                     outputs=(out / "pretrain_data" / "dataset_info.json",), out=out)
    return keys


def add_seed_stages(p: Pipeline, s: Settings, data_out: Path, out: Path, data_keys: dict[str, str],
                    prefix: str = "") -> None:
    """Every stage a training seed changes: stand-in, pre-training, adapters, router, predictions, evaluation."""
    py = sys.executable
    data = data_out / "mini_flare"
    recipes = f"llama_factory_internvl/examples/{recipe_dir_name('standin', s.preset)}"
    seed = str(s.seed)

    def add(name, commands, deps=(), **kw):
        return p.add(name, commands, deps=deps, out=out, prefix=prefix, **kw)

    standin = add("standin", [[py, "llama_factory_internvl/scripts/make_standin_model.py",
                               "--out", out / "standin" / "base", "--data", data, "--seed", seed]],
                  deps=(data_keys["mini_flare"],), outputs=(out / "standin" / "base" / "config.json",))
    steps = [f"max_steps={s.max_steps}"] if s.max_steps else []
    cli = "llamafactory-cli" if shutil.which("llamafactory-cli") else str(Path(py).parent / "llamafactory-cli")
    pretrain = add("pretrain", [[
        cli, "train", f"{recipes}/pretrain_full.yaml",
        f"model_name_or_path={out / 'standin' / 'base'}", f"dataset_dir={data_out / 'pretrain_data'}",
        f"output_dir={out / 'standin' / 'pretrained'}", f"seed={seed}", *steps,
        *([f"num_train_epochs={s.pretrain_epochs}"] if s.pretrain_epochs else [])]],
        deps=(data_keys["prepare_pretrain"], standin), outputs=(out / "standin" / "pretrained" / "config.json",),
        inputs=(REPO / recipes / "pretrain_full.yaml",), threads=s.pretrain_threads)
    # one stage per adapter (the same train_adapters.py, --only <name>), so that two train at once on two cores
    adapter_keys = []
    for name in ADAPTERS:
        train = [py, "llama_factory_internvl/scripts/train_adapters.py", "--recipe_dir", recipes, "--only", name,
                 "--adapters_dir", out / "adapters", "--model", out / "standin" / "pretrained",
                 "--dataset_dir", data_out / "data", "--overwrite", "--set", f"seed={seed}"]
        if s.adapter_epochs:
            train += ["--set", f"num_train_epochs={s.adapter_epochs}"]
        if s.max_steps:
            train += ["--max_steps", str(s.max_steps)]
        recipe = REPO / recipes / f"internvl_lora_sft_bnb{'' if name == GENERAL_ADAPTER else '_' + name}.yaml"
        adapter_keys.append(add(f"adapter_{name}", [train], deps=(pretrain, data_keys["prepare"]),
                                outputs=(out / "adapters" / name / "adapter_config.json",), inputs=(recipe,)))
    # The router to deploy (--final: every training-split wording), CPU-light: the top 3 encoder layers, label model
    # fixed (its projector trains), 400 steps (the wording augmentation needs them: at 200 the held-out-dataset misses
    # moved between folds with the router seed; task_classifier/README.md gives the leave-one-dataset-out figures at
    # 400); tests/test_router.py trains with these settings and checks held-out and paraphrase accuracy.
    router_cmd = [py, "task_classifier/train_task_classifier.py", "--data_dir", data_out / "data", "--final",
                  "--output_dir", out / "router", "--trainable_layers", "3", "--freeze_label_encoder",
                  "--no_progress", "--seed", seed, "--paraphrases", "tests/data/router_paraphrases.json"]
    if s.router_epochs:
        router_cmd += ["--epochs", str(s.router_epochs)]
    if s.router_max_steps:
        router_cmd += ["--max_steps", str(s.router_max_steps)]
    router = add("router", [router_cmd], deps=(data_keys["prepare"],), outputs=(out / "router" / "router_config.json",))
    splits = ["--splits", "validation-public", "validation-hidden"]
    for mode, _ in MODES:
        pred_dir = out / "predictions" / mode
        if mode == "constant":
            cmd = [py, "-m", "mevlip.baselines", "--dataset_root", data, "--output", pred_dir / "predictions.json"]
            deps: tuple[str, ...] = (data_keys["mini_flare"],)
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
                deps = (standin,) if mode == "untrained" else (pretrain,)
            else:
                cmd += ["--routing", mode, "--adapters_dir", out / "adapters", "--router_dir", out / "router"]
                deps = (*adapter_keys, router)
        predict = add(f"predict_{mode}", [cmd], deps=deps, outputs=(pred_dir / "predictions.json",))
        add(f"evaluate_{mode}", [[
            py, "evaluation/evaluation.py", "--base_dataset_path", data, "--prediction_file",
            pred_dir / "predictions.json", "--output_dir", out / "metrics" / mode, "--bootstrap", str(s.bootstrap)]],
            deps=(predict,), outputs=(out / "metrics" / mode / "metrics_predictions.json",))


def run(settings: Settings, seeds: list[int] | None = None) -> Path:
    """Run every stage (for each of ``seeds``, default ``[settings.seed]``); returns the path of ``results.md``
    (one seed) or ``seeds.md`` (several)."""
    from mevlip.demo.report import write_report, write_seeds_summary

    out = settings.out.resolve()
    seeds = list(seeds) if seeds else [settings.seed]
    p = Pipeline(settings)
    start = time.perf_counter()
    data_keys = add_data_stages(p, settings, out)
    runs = {}
    for seed in seeds:
        s = replace(settings, seed=seed)
        folder = out if len(seeds) == 1 else seed_dir(out, seed)
        prefix = "" if folder == out else f"seed_{seed}/"
        add_seed_stages(p, s, out, folder, data_keys, prefix)
        runs[seed] = (s, folder, prefix)
    p.run()
    wall = time.perf_counter() - start
    paths = []
    for seed, (s, folder, prefix) in runs.items():
        times = {k[len(prefix):]: v for k, v in p.times.items()
                 if k.startswith(prefix) and (prefix or "/" not in k)}
        if folder != out:  # the shared data stages ran once, in out
            times = {**{k: v for k, v in p.times.items() if k in data_keys.values()}, **times}
        paths.append(write_report(folder, times, s, wall_seconds=wall if len(seeds) == 1 else None))
        print(f"\n=== results (seed {seed}): {paths[-1]}")
    if len(seeds) == 1:
        return paths[0]
    summary = write_seeds_summary(out, {seed: folder for seed, (_, folder, _) in runs.items()}, wall_seconds=wall)
    print(f"\n=== seeds summary: {summary}")
    return summary

