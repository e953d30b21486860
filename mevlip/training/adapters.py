"""Train the eight adapters (``general`` + one per task type) in sequence with ``llamafactory-cli train``.

Each adapter is one ``llamafactory-cli train <recipe.yaml> key=value ...`` subprocess (LLaMA-Factory merges
``key=value`` arguments after the YAML over it with OmegaConf). The adapters land where inference looks for
them: ``<adapters_dir>/general``, ``<adapters_dir>/classification``, ... (``mevlip.tasks.GENERAL_ADAPTER`` and
``TASK_NAMES``), each with ``adapter_config.json``, ``adapter_model.safetensors``, LLaMA-Factory's
``training_loss.png`` when the recipe has ``plot_loss`` and at least one loss was logged, its log
(``mevlip_train.log``) and a provenance file (``mevlip_train.json``).

A recipe folder holds one YAML per adapter; which adapter a file trains is read from its ``dataset`` key
(``flare_all`` -> general, ``flare_<task>`` -> that task); YAMLs that are not LoRA recipes (the stand-in's
``pretrain_full.yaml``) are ignored.

LLaMA-Factory's own output (its progress bar, ``{'loss': ...}`` lines, warnings) goes live to the console and to the
log. An interrupted adapter resumes: a folder holding ``checkpoint-<step>/`` but no final adapter is continued from
its newest complete checkpoint (``resume_from_checkpoint=``; the recipes set ``overwrite_output_dir: true``, under
which LLaMA-Factory would not look for one itself). ``--overwrite`` starts afresh and removes old checkpoints.
"""

from __future__ import annotations

import codecs
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mevlip.training.recipes import ADAPTERS, adapter_for_dataset

logger = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
LOG_NAME = "mevlip_train.log"
PROVENANCE_NAME = "mevlip_train.json"
PLOT_NAME = "training_loss.png"
#: ``report_to`` values passed through to the Trainer, and the module each needs (None: nothing).
REPORTERS = {"none": None, "tensorboard": "tensorboard", "wandb": "wandb"}
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class AdapterTrainingError(RuntimeError):
    """``llamafactory-cli train`` failed or left no adapter; the message names the adapter and its log."""


@dataclass
class AdapterRun:
    """What happened to one adapter."""

    adapter: str
    recipe: str
    output_dir: str
    status: str  # trained | skipped
    seconds: float = 0.0
    command: list[str] = field(default_factory=list)
    plot: str | None = None
    resumed_from: str | None = None


def find_recipes(recipe_dir: str | os.PathLike) -> dict[str, Path]:
    """``adapter -> YAML`` for the LoRA recipes directly inside ``recipe_dir``.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: a recipe's ``dataset`` is no adapter's entry, or two recipes train the same adapter.
    """
    import yaml

    recipe_dir = Path(recipe_dir)
    if not recipe_dir.is_dir():
        raise FileNotFoundError(f"recipe folder {recipe_dir} does not exist")
    found: dict[str, Path] = {}
    for path in sorted(recipe_dir.glob("*.yaml")):
        try:
            recipe = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            reason = " ".join(str(err).split())
            raise ValueError(f"{path}: not a readable YAML recipe ({type(err).__name__}: {reason})") from None
        if not isinstance(recipe, dict):
            raise ValueError(f"{path}: expected a mapping of LLaMA-Factory arguments, got {type(recipe).__name__}")
        if recipe.get("finetuning_type") != "lora":
            continue
        try:
            adapter = adapter_for_dataset(str(recipe.get("dataset")))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        if adapter in found:
            raise ValueError(f"{found[adapter]} and {path} both train the {adapter} adapter")
        found[adapter] = path
    return found


def _looks_like_folder(value: str) -> bool:
    """A ``model_name_or_path`` meant as a local folder: absolute, ``./``/``../``/``~``, or 2+ path parts (a hub id
    is ``name`` or ``org/name``)."""
    return (Path(value).is_absolute() or value.startswith(("./", "../", "~")) or "\\" in value
            or value.count("/") >= 2)


def check_base_model(recipe: Path, recipe_model: object, model: str | os.PathLike | None, extra: dict,
                     workdir: Path) -> None:
    """Refuse, before any training starts, a base model meant as a local folder that is not there.

    The value is ``extra["model_name_or_path"]`` (``--set``), else ``model`` (``--model``), else the recipe's; a
    relative one may be relative to the current folder (``--model``) or to ``workdir`` (where LLaMA-Factory runs).
    A hub id (``org/name``) passes: LLaMA-Factory resolves it.

    Raises:
        FileNotFoundError: naming the recipe or flag that gave the value, and the value.
    """
    if "model_name_or_path" in extra:
        value, source = str(extra["model_name_or_path"]), "--set model_name_or_path"
    elif model is not None:
        value, source = str(model), "--model"
    elif recipe_model is not None:
        value, source = str(recipe_model), str(recipe)
    else:
        raise FileNotFoundError(f"{recipe}: no model_name_or_path; pass --model")
    here = Path(value).expanduser()
    if here.is_dir() or (workdir / here).is_dir() or not (_looks_like_folder(value) or here.exists()):
        return
    raise FileNotFoundError(f"{source}: model folder {value} not found (relative paths are relative to {workdir}); "
                            "build it first (make_standin_model.py for the stand-in) or pass --model")


def is_trained(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds a saved adapter (config and safetensors weights)."""
    return all((Path(folder) / name).is_file() for name in ADAPTER_FILES)


def nonfinite_tensors(path: str | os.PathLike) -> list[str]:
    """The names of the tensors in a safetensors file that hold a NaN or an infinity (read without running code).

    Raises:
        AdapterTrainingError: the file is not a safetensors file.
    """
    import torch
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as weights:
            return [name for name in weights.keys() if not torch.isfinite(weights.get_tensor(name)).all()]
    except (SafetensorError, OSError) as err:
        raise AdapterTrainingError(f"{path}: not a readable safetensors file ({err})") from None


def last_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The newest complete ``checkpoint-<step>/`` in ``folder`` (None if none).

    The Trainer writes ``trainer_state.json`` last when it saves a checkpoint, so a checkpoint whose state file is
    missing or does not parse was cut short by the interruption and is passed over.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = []
    for path in folder.iterdir():
        match = _CHECKPOINT.match(path.name)
        if match and path.is_dir():
            try:
                json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                logger.debug("%s is incomplete (no readable trainer_state.json); not resuming from it", path)
                continue
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def check_report_to(report_to: str) -> None:
    """Refuse a ``report_to`` we do not pass through, or one whose package is not installed.

    Raises:
        ValueError: naming the value, or the package and how to install it.
    """
    if report_to not in REPORTERS:
        raise ValueError(f"report_to {report_to!r} is not one of {', '.join(REPORTERS)}")
    module = REPORTERS[report_to]
    if module is not None and importlib.util.find_spec(module) is None:
        extra = ' (pip install ".[tensorboard]")' if report_to == "tensorboard" else ""
        raise ValueError(f"report_to {report_to} needs the {module} package, which is not installed{extra}")


def default_cli() -> list[str]:
    """``llamafactory-cli`` of this interpreter's environment (else the one on PATH)."""
    beside = Path(sys.executable).with_name("llamafactory-cli")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("llamafactory-cli")
    if found is None:
        raise FileNotFoundError("llamafactory-cli not found; install llamafactory (requirements.txt)")
    return [found]


def _format(value: object) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    # llamafactory-cli's torchrun launcher (multi-GPU, FORCE_TORCHRUN=1) re-splits arguments on spaces.
    if any(c.isspace() for c in text):
        raise ValueError(f"override value {text!r} contains whitespace, which llamafactory-cli cannot pass on")
    return text


def build_command(recipe: str | os.PathLike, overrides: dict, cli: Sequence[str]) -> list[str]:
    """``[*cli, "train", recipe, "key=value", ...]``."""
    return [*cli, "train", str(recipe), *(f"{key}={_format(value)}" for key, value in overrides.items())]


def select_adapters(only: Sequence[str] | None) -> list[str]:
    """The adapters to train, in the canonical order; ``only`` names a subset."""
    if not only:
        return list(ADAPTERS)
    unknown = [name for name in only if name not in ADAPTERS]
    if unknown:
        raise ValueError(f"unknown adapter(s) {', '.join(unknown)}; known adapters: {', '.join(ADAPTERS)}")
    return [name for name in ADAPTERS if name in only]


def _run(command: list[str], workdir: Path, log_path: Path, echo: bool, append: bool = False) -> tuple[int, str]:
    """Run ``command`` in ``workdir``, copying its output as it comes to ``log_path`` (and the console if ``echo``);
    ``append`` adds to the log instead of replacing it.

    Output is read in chunks, not lines, so that tqdm's progress bar (redrawn with carriage returns) shows live.

    Returns:
        The exit code and the last 40 lines of output (each progress bar line as last drawn).
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text: list[str] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "a" if append else "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        proc = subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            part = decoder.decode(chunk)
            log.write(part)
            log.flush()
            text = (text + [part])[-200:]
            if echo:
                sys.stdout.write(part)
                sys.stdout.flush()
        code = proc.wait()
    lines = [line.rsplit("\r", 1)[-1] for line in "".join(text).rstrip("\r\n").split("\n")]
    return code, "\n".join(lines[-40:]) + "\n"


def train_adapters(recipe_dir: str | os.PathLike, adapters_dir: str | os.PathLike, *,
                   model: str | os.PathLike | None = None, dataset_dir: str | os.PathLike | None = None,
                   max_steps: int | None = None, only: Sequence[str] | None = None, overwrite: bool = False,
                   extra: dict | None = None, workdir: str | os.PathLike | None = None,
                   cli: Sequence[str] | None = None, echo: bool = True, report_to: str | None = None,
                   save_steps: int | None = None, resume: bool = True) -> list[AdapterRun]:
    """Train the selected adapters one after another; skip those already trained unless ``overwrite``.

    Args:
        recipe_dir: a folder of adapter recipes (``examples/train_qlora`` or ``examples/standin``).
        adapters_dir: where ``<adapter>/`` folders go (overrides each recipe's ``output_dir``).
        model: overrides ``model_name_or_path`` (a local base model or the stand-in).
        dataset_dir: overrides ``dataset_dir`` (the folder with ``dataset_info.json``).
        max_steps: overrides ``max_steps`` (smoke runs); also logs every step so the loss plot has points.
        only: adapter names to train (default: all eight).
        overwrite: retrain adapters that already exist (passes ``overwrite_output_dir=true``), from scratch.
        extra: further ``key: value`` overrides (e.g. ``deepspeed``).
        workdir: where ``llamafactory-cli`` runs, i.e. what relative paths inside the recipes are relative to;
            default: the folder holding ``examples/`` when ``recipe_dir`` is ``.../examples/<set>``, else the
            current folder. Paths given as arguments here are relative to the current folder.
        cli: the command that runs LLaMA-Factory (default :func:`default_cli`).
        echo: print LLaMA-Factory's output (progress bar, loss lines) live on the console; it always goes to the
            adapter's log.
        report_to: overrides ``report_to`` (``none``, ``tensorboard``: event files under ``<adapter>/runs/``, or
            ``wandb``); refused when its package is missing.
        save_steps: save a checkpoint every so many steps (``save_strategy=steps``), so an interrupted run can resume;
            default: the recipe's (the paper's every 500 steps; the stand-in recipes save none).
        resume: continue an adapter whose folder has a checkpoint but no final adapter from its newest complete
            checkpoint (ignored under ``overwrite``); a run that starts afresh removes the folder's old checkpoints.

    Returns:
        One :class:`AdapterRun` per selected adapter, in training order.

    Raises:
        AdapterTrainingError: naming the first adapter whose training failed or left no adapter files.
        ValueError: a selected adapter has no recipe in ``recipe_dir``, a recipe does not parse, or ``report_to``
            cannot be used.
        FileNotFoundError: ``recipe_dir`` or a base model folder (:func:`check_base_model`) is not there; checked
            before any adapter trains.
    """
    if report_to is not None:
        check_report_to(report_to)
    recipe_dir = Path(recipe_dir).resolve()
    recipes = find_recipes(recipe_dir)
    adapters = select_adapters(only)
    missing = [a for a in adapters if a not in recipes]
    if missing:
        raise ValueError(f"{recipe_dir} has no recipe for adapter(s) {', '.join(missing)}")
    if workdir is None:
        workdir = recipe_dir.parent.parent if recipe_dir.parent.name == "examples" else Path.cwd()
    workdir = Path(workdir).resolve()
    adapters_dir = Path(adapters_dir).resolve()
    cli = list(cli) if cli is not None else default_cli()
    for adapter in adapters:  # every base model is there before the first adapter trains
        if overwrite or not is_trained(adapters_dir / adapter):
            check_base_model(recipes[adapter], _recipe_value(recipes[adapter], "model_name_or_path"), model,
                             extra or {}, workdir)

    runs: list[AdapterRun] = []
    for adapter in adapters:
        out = adapters_dir / adapter
        if is_trained(out) and not overwrite:
            logger.info("%s: already trained in %s, skipped (use --overwrite to retrain)", adapter, out)
            runs.append(AdapterRun(adapter, str(recipes[adapter]), str(out), "skipped"))
            continue
        overrides = _overrides(recipes[adapter], out, model, dataset_dir, max_steps, overwrite, extra)
        if report_to is not None:
            overrides["report_to"] = report_to
        if save_steps is not None:
            overrides.update(save_strategy="steps", save_steps=int(save_steps))
        checkpoint = last_checkpoint(out) if resume and not overwrite else None
        if checkpoint is not None:
            overrides["resume_from_checkpoint"] = checkpoint
        else:  # a fresh start: old checkpoints would be taken for this run's by a later resume
            for old in sorted(p for p in out.glob("checkpoint-*") if _CHECKPOINT.match(p.name) and p.is_dir()):
                logger.info("%s: starting afresh, removing the old %s", adapter, old)
                shutil.rmtree(old)
        command = build_command(recipes[adapter], overrides, cli)
        out.mkdir(parents=True, exist_ok=True)
        log_path = out / LOG_NAME
        if checkpoint is not None:
            newer = [p.name for p in out.glob("checkpoint-*") if _CHECKPOINT.match(p.name)
                     and int(p.name.split("-")[1]) > int(checkpoint.name.split("-")[1])]
            passed = f", passing over the incomplete {', '.join(sorted(newer))}" if newer else ""
            logger.info("%s: resuming from %s%s (log: %s)", adapter, checkpoint, passed, log_path)
        else:
            logger.info("%s: training with %s (log: %s)", adapter, recipes[adapter].name, log_path)
        start = time.perf_counter()
        # a resumed run appends, so the log keeps the interrupted run's output before the new command line
        code, tail = _run(command, workdir, log_path, echo, append=checkpoint is not None)
        seconds = time.perf_counter() - start
        if code != 0:
            raise AdapterTrainingError(f"adapter {adapter}: llamafactory-cli train {recipes[adapter]} exited with "
                                       f"{code} after {seconds:.0f} s; log {log_path}; last lines:\n{tail}")
        if not is_trained(out):
            raise AdapterTrainingError(f"adapter {adapter}: training finished but {out} lacks "
                                       f"{' / '.join(ADAPTER_FILES)}; log {log_path}")
        if bad := nonfinite_tensors(out / ADAPTER_FILES[1]):  # a diverged run: never kept as a trained adapter
            aside = out / ADAPTER_FILES[1].replace(".safetensors", ".nonfinite.safetensors")
            os.replace(out / ADAPTER_FILES[1], aside)
            raise AdapterTrainingError(f"adapter {adapter}: its weights are not finite ({', '.join(bad[:3])}): the "
                                       f"training diverged (lower learning_rate); moved aside to {aside}, not kept "
                                       f"as a trained adapter; log {log_path}")
        plot = out / PLOT_NAME
        run = AdapterRun(adapter, str(recipes[adapter]), str(out), "trained", round(seconds, 1), command,
                         str(plot) if plot.is_file() else None, str(checkpoint) if checkpoint else None)
        (out / PROVENANCE_NAME).write_text(json.dumps({**asdict(run), "workdir": str(workdir),
                                                       "overrides": overrides}, indent=2, default=str) + "\n",
                                               encoding="utf-8")
        logger.info("%s: trained in %.0f s -> %s%s", adapter, seconds, out, "" if run.plot else " (no loss plot)")
        runs.append(run)
    return runs


def _recipe_value(recipe: Path, key: str) -> object:
    import yaml

    return (yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}).get(key)


def _overrides(recipe: Path, out: Path, model, dataset_dir, max_steps, overwrite, extra) -> dict:
    import yaml

    overrides: dict = {"output_dir": out}
    if model is not None:
        overrides["model_name_or_path"] = Path(model).resolve() if Path(model).exists() else model
    if dataset_dir is not None:
        overrides["dataset_dir"] = Path(dataset_dir).resolve()
    if max_steps is not None:
        overrides["max_steps"] = int(max_steps)
        logging_steps = yaml.safe_load(recipe.read_text(encoding="utf-8")).get("logging_steps", 5)
        if max_steps < logging_steps:  # else LLaMA-Factory logs no loss and draws no plot
            overrides["logging_steps"] = 1
    if overwrite:
        overrides["overwrite_output_dir"] = True
    overrides.update(extra or {})
    return overrides
