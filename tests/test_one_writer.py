"""One writer per output: while a run holds an output's lock, a second run of it is refused in one line naming the
first, before it writes or deletes anything.

The first run is stood for by a lock taken in this process: the kernel's lock (``flock``) conflicts between two
open files whatever process holds them, so this is the same refusal a second process gets.
"""

from __future__ import annotations

import os
import socket

import pytest
from scripts import load_script

from mevlip.cli import run_cli
from mevlip.locks import OutputInUseError, OutputLock


def _holder() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}, started "


def test_a_second_data_preparation_run_never_touches_the_first_ones_staging(flare, tmp_path):
    from mevlip.prepare import PrepareConfig, prepare

    out = tmp_path / "data"
    staged = out / ".prepare_tmp" / "new" / "flare" / "train" / "counting.json"  # the first run's work in progress
    staged.parent.mkdir(parents=True)
    staged.write_text("[")
    with OutputLock(out, "data preparation run"):
        with pytest.raises(OutputInUseError) as err:
            prepare(PrepareConfig(str(flare), str(out), workers=1))
        assert str(err.value).startswith(f"{out} is in use by another data preparation run ({_holder()}")
        assert staged.read_text() == "["  # not dropped as an interrupted run's leftovers
        assert not (out / "prepare_stats.json").exists()
    stats = prepare(PrepareConfig(str(flare), str(out), workers=1))  # the first run gone: this one runs
    assert stats["parts"]["train"]["rows"]["total"] > 0


@pytest.mark.parametrize("script,argv,target,what", [
    ("llama_factory_internvl/scripts/data_preparation.py", ["--workers", "1"], "data", "data preparation run"),
    ("evaluation/evaluation.py", ["--prediction_file", "{p}"], "eval/metrics_predictions.json", "evaluation run"),
    ("task_classifier/train_task_classifier.py", ["--max_steps", "1"], "router", "router training run"),
    ("llama_factory_internvl/scripts/make_standin_model.py", [], "standin", "stand-in build"),
    ("llama_factory_internvl/scripts/train_adapters.py",  # per adapter: two adapters of one folder may train at once
     ["--recipe_dir", "{r}", "--adapters_dir", "{a}", "--only", "general,counting"], "adapters/counting",
     "adapter training run"),
])
def test_every_writer_refuses_a_second_run_in_one_line(script, argv, target, what, flare, tmp_path, capsys):
    out = tmp_path / target
    folder = out.parent if target.endswith(".json") else out
    predictions = tmp_path / "p.json"
    predictions.write_text("[]")
    recipes = tmp_path / "examples" / "standin"
    recipes.mkdir(parents=True)
    argv = [a.format(p=predictions, r=recipes, a=out.parent) for a in argv]
    flags = {"data_preparation": ["--base_dataset_path", str(flare), "--output_dir", str(out)],
             "evaluation": ["--base_dataset_path", str(flare), "--output_dir", str(folder)],
             "train_task_classifier": ["--base_dataset_path", str(flare), "--output_dir", str(out)],
             "make_standin_model": ["--output_dir", str(out)], "train_adapters": []}
    name = script.split("/")[-1].removesuffix(".py")
    with OutputLock(out, "first run"):
        with pytest.raises(SystemExit) as err:
            run_cli(load_script(script).main, [*flags[name], *argv])
    assert err.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"error: {out} is in use by another {what} ({_holder()}" in line, line
    if folder == out:  # refused before writing anything into the folder
        assert not out.exists() or not any(out.iterdir())


def test_mini_flare_generation_is_refused_while_another_writes_the_folder(tmp_path):
    from mevlip.synth import generate

    with OutputLock(tmp_path / "mf", "mini-FLARE generation"):
        with pytest.raises(OutputInUseError, match=r"mf is in use by another mini-FLARE generation \(pid "):
            generate(tmp_path / "mf", "tiny", seed=0, datasets=["dental"])
    assert not (tmp_path / "mf").exists()


def test_the_lock_goes_with_its_holder(tmp_path):
    first = OutputLock(tmp_path / "out", "run")
    assert (tmp_path / ".out.lock").read_text().startswith(_holder())
    first.release()
    with OutputLock(tmp_path / "out", "run"):  # free again once the holder has gone (exit, kill -9: the same)
        with pytest.raises(OutputInUseError, match="out is in use by another run"):
            OutputLock(tmp_path / "out", "run")
