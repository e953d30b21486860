"""Every numeric option is range-checked as it is parsed: one line naming the flag, exit code 2, nothing run.

And training that diverges stops in one line without saving a model whose weights are not finite.
"""

from __future__ import annotations

import argparse
import math

import pytest
from scripts import load_script

from mevlip.cli import PROBABILITY, SEED_MAX, number

INFER = "docker_internvl/inference.py"
ROUTER = "task_classifier/train_task_classifier.py"
ROUTE = "task_classifier/route_questions.py"
EVAL = "evaluation/evaluation.py"
PREP = "llama_factory_internvl/scripts/data_preparation.py"
ADAPTERS = "llama_factory_internvl/scripts/train_adapters.py"
STANDIN = "llama_factory_internvl/scripts/make_standin_model.py"
REQUIRED = {INFER: ["--base_dataset_path", ".", "--output_dir", "out"],
            ROUTE: ["--router_dir", "r", "--questions", "q"],
            EVAL: ["--base_dataset_path", ".", "--prediction_file", "p.json"], STANDIN: ["--output_dir", "out"]}

CASES = [
    (INFER, "--batch_size", "-1", "must be in [1, inf), got -1"),
    (INFER, "--batch_size", "0", "must be in [1, inf), got 0"),
    (INFER, "--max_new_tokens", "0", "must be in [1, inf), got 0"),
    (INFER, "--threshold", "nan", "must be a finite number in [0, 1], got nan"),
    (INFER, "--threshold", "5", "must be in [0, 1], got 5"),
    (INFER, "--threshold", "-1", "must be in [0, 1], got -1"),
    (INFER, "--num_shards", "0", "must be in [1, inf), got 0"),
    (INFER, "--shard_index", "-1", "must be in [0, inf), got -1"),
    (INFER, "--zip_max_ratio", "0.5", "must be in [1, inf), got 0.5"),
    (ROUTER, "--lr", "nan", "must be a finite number in (0, inf), got nan"),
    (ROUTER, "--lr", "0", "must be in (0, inf), got 0"),
    (ROUTER, "--others_lr", "inf", "must be a finite number in (0, inf), got inf"),
    (ROUTER, "--batch_size", "-1", "must be in [1, inf), got -1"),
    (ROUTER, "--seed", "-1", f"must be in [0, {SEED_MAX}], got -1"),
    (ROUTER, "--augment", "1.5", "must be in [0, 1], got 1.5"),
    (ROUTER, "--focal_alpha", "2", "must be in [0, 1] (or -1.0), got 2"),
    (ROUTER, "--threshold", "nan", "must be a finite number in [0, 1], got nan"),
    (ROUTER, "--lodo_seeds", "-3", f"must be in [0, {SEED_MAX}], got -3"),
    (ROUTER, "--threads", "-2", "must be in [0, inf), got -2"),
    (ROUTE, "--threshold", "1.01", "must be in [0, 1], got 1.01"),
    (ROUTE, "--batch_size", "0", "must be in [1, inf), got 0"),
    (EVAL, "--bootstrap", "-1", "must be in [0, inf), got -1"),
    (EVAL, "--seed", "1e3", "expected an integer, got '1e3'"),
    (EVAL, "--error_cap", "inf", "must be a finite number in (0, inf), got inf"),
    (PREP, "--workers", "0", "must be in [1, inf), got 0"),
    (PREP, "--cutoff_len", "0", "must be in [1, inf), got 0"),
    (PREP, "--router_test_fraction", "1", "must be in [0, 1), got 1"),
    (PREP, "--seed", "-1", f"must be in [0, {SEED_MAX}], got -1"),
    (PREP, "--zip_max_bytes", "0", "must be in [1, inf), got 0"),
    (ADAPTERS, "--max_steps", "0", "must be in [1, inf), got 0"),
    (STANDIN, "--seed", "-1", f"must be in [0, {SEED_MAX}], got -1"),
    (STANDIN, "--text_layers", "0", "must be in [1, inf), got 0"),
]


@pytest.mark.parametrize("script,flag,value,message", CASES, ids=[f"{c[0].split('/')[-1]}{c[1]}={c[2]}" for c in CASES])
def test_a_number_out_of_range_is_one_line_naming_the_flag(script, flag, value, message, capsys):
    main = load_script(script).main
    with pytest.raises(SystemExit) as err:
        main([*REQUIRED.get(script, []), flag, value])
    assert err.value.code == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert lines[-1].endswith(f"error: argument {flag}: {message}"), lines[-1]


@pytest.mark.parametrize("module,flag,value,message", [
    ("mevlip.demo.__main__", "--jobs", "0", "must be in [1, inf), got 0"),
    ("mevlip.demo.__main__", "--seeds", "-1", f"must be in [0, {SEED_MAX}], got -1"),
    ("mevlip.synth.__main__", "--seed", "-1", f"must be in [0, {SEED_MAX}], got -1"),
])
def test_module_commands_check_their_numbers_too(module, flag, value, message, capsys):
    import importlib

    argv = [flag, value] + (["--output_dir", "x"] if "synth" in module else [])
    with pytest.raises(SystemExit) as err:
        importlib.import_module(module).main(argv)
    assert err.value.code == 2 and capsys.readouterr().err.strip().endswith(f"argument {flag}: {message}")


def test_number_bounds_are_exact():
    assert PROBABILITY("0") == 0.0 and PROBABILITY("1") == 1.0
    positive = number(float, 0.0, low_open=True)
    assert positive("1e-300") == 1e-300
    with pytest.raises(argparse.ArgumentTypeError):
        positive("0")
    below_one = number(float, 0.0, 1.0, high_open=True)
    assert below_one("0.999") == 0.999
    with pytest.raises(argparse.ArgumentTypeError):
        below_one("1")
    off = number(float, 0.0, 1.0, also=(-1.0,))
    assert off("-1") == -1.0
    with pytest.raises(argparse.ArgumentTypeError, match=r"\(or -1.0\)"):
        off("-0.5")
    assert number(int, 0, 10)("10") == 10
    with pytest.raises(argparse.ArgumentTypeError, match="expected an integer, got '2.5'"):
        number(int, 0, 10)("2.5")


def test_router_config_checks_its_numbers_in_code_too():
    from mevlip.router.train import RouterTrainConfig

    for bad, message in [({"lr": math.nan}, "--lr must be a finite number"), ({"batch_size": 0}, "--batch_size must"),
                         ({"word_dropout": 2.0}, "--word_dropout must"), ({"seed": -1}, "--seed must")]:
        with pytest.raises(ValueError, match=message):
            RouterTrainConfig(**bad)
    assert RouterTrainConfig(focal_alpha=-1.0).focal_alpha == -1.0  # -1 turns alpha weighting off


def test_a_diverging_router_stops_before_anything_is_saved(tmp_path):
    from mevlip.router.data import router_example
    from mevlip.router.train import RouterTrainConfig, RouterTrainingError, train_router
    from mevlip.tasks import TASK_NAMES

    rows = [router_example(f"Question {i} about task {t}?", t) for i, t in enumerate(TASK_NAMES * 4)]
    cfg = RouterTrainConfig(max_steps=30, lr=1e30, others_lr=1e30, warmup_ratio=0.0, trainable_layers=1,
                            freeze_label_encoder=True, augment=0.0, label_examples=False)
    with pytest.raises(RouterTrainingError, match=r"router training (stopped at step \d+ of \d+: the loss is "
                                                  r"(nan|inf)|ended with non-finite weights)"):
        train_router(cfg, rows, list(TASK_NAMES), progress=False)


@pytest.mark.parametrize("script,argv", [
    (INFER, [*REQUIRED[INFER], "--device", "banana"]),
    (ROUTE, ["--router_dir", "r", "--questions", "q.json", "--device", "banana"]),
    (ROUTER, ["--device", "banana"]),
])
def test_a_wrong_device_is_one_line(script, argv, tmp_path, capsys, monkeypatch):
    from mevlip.cli import run_cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "q.json").write_text('["How many cells?"]')
    with pytest.raises(SystemExit) as err:
        run_cli(load_script(script).main, argv)
    assert err.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "error: --device 'banana' is not a device; use auto, cpu, cuda or cuda:N")


def test_cuda_without_a_gpu_is_one_line(capsys, tmp_path, monkeypatch):
    from mevlip.cli import run_cli

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as err:
        run_cli(load_script(INFER).main, [*REQUIRED[INFER], "--device", "cuda:0"])
    assert err.value.code == 2
    assert "error: --device cuda:0: no CUDA GPU is visible" in capsys.readouterr().err
