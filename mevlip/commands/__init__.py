"""The command-line entry points, one module per stage's script, and the ``mevlip`` command that runs them.

``pip install .`` installs ``mevlip <stage> [options]``, in the style of ``llamafactory-cli <command>``; each stage's
options are exactly its script's (``mevlip infer --help`` = ``python docker_internvl/inference.py --help``). The
scripts at their original paths are thin wrappers over these modules, so the original README's commands keep working.
"""

from __future__ import annotations

import importlib
import sys

#: ``mevlip <stage>`` -> (module that holds ``main``, what it does). In pipeline order.
STAGES: dict[str, tuple[str, str]] = {
    "synth": ("mevlip.synth.__main__", "write mini-FLARE, the synthetic dataset in the FLARE layout"),
    "prepare": ("mevlip.commands.data_preparation", "FLARE question files -> LLaMA-Factory ShareGPT data"),
    "standin": ("mevlip.commands.make_standin_model", "build the tiny InternVL3-architecture stand-in model"),
    "recipes": ("mevlip.training.recipes", "write the LLaMA-Factory recipes"),
    "train": ("mevlip.commands.train_adapters", "train the general and task adapters (llamafactory-cli)"),
    "train-router": ("mevlip.commands.train_task_classifier", "train the GLiClass task router"),
    "route": ("mevlip.commands.route_questions", "route questions with a router"),
    "infer": ("mevlip.commands.inference", "answer every question: predictions.json"),
    "merge": ("mevlip.commands.merge_predictions", "join hand-run inference shards"),
    "evaluate": ("mevlip.commands.evaluation", "score predictions with every FLARE metric"),
    "demo": ("mevlip.demo.__main__", "the whole pipeline on the embedded default"),
}


def usage() -> str:
    """The command's help: its stages, one a line."""
    lines = ["usage: mevlip <stage> [options]   (mevlip <stage> --help for a stage's options)", "", "stages:"]
    lines += [f"  {name:13s} {what}" for name, (_, what) in STAGES.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``mevlip <stage> ...``: run that stage's command with the remaining arguments."""
    from mevlip import cli

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if argv else 2)
    stage, rest = argv[0], argv[1:]
    if stage not in STAGES:
        print(f"mevlip: error: unknown stage {stage!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    cli.COMMAND_NAME = f"mevlip {stage}"  # usage and error lines name the stage, not the module
    module = importlib.import_module(STAGES[stage][0])
    sys.argv = [cli.COMMAND_NAME, *rest]
    cli.run_cli(module.main, rest, prog=cli.COMMAND_NAME)
