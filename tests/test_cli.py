"""One command-line convention for every script: mevlip.cli and each script's parser.

Every script's ``--help`` shows the common options the same way and each option's default; old spellings still
parse (hidden); a user error is one line ``<prog>: error: ...`` on stderr and exit code 2, never a traceback.
Subprocesses run only ``--help`` and errors found before any real work, so the module stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from scripts import REPO, load_script

from mevlip import cli
from mevlip.cli import UserError, add_common_args, add_option, make_parser, run_cli

#: Every script with a parser: a path from the repository root, or a module run with ``python -m``.
SCRIPTS = {
    "data_preparation": "llama_factory_internvl/scripts/data_preparation.py",
    "train_adapters": "llama_factory_internvl/scripts/train_adapters.py",
    "make_standin_model": "llama_factory_internvl/scripts/make_standin_model.py",
    "inference": "docker_internvl/inference.py",
    "merge_predictions": "docker_internvl/merge_predictions.py",
    "evaluation": "evaluation/evaluation.py",
    "route_questions": "task_classifier/route_questions.py",
    "train_task_classifier": "task_classifier/train_task_classifier.py",
    "synth": "mevlip.synth.__main__",
    "baselines": "mevlip.baselines",
    "recipes": "mevlip.training.recipes",
    "bench_evaluation": "benchmarks/bench_evaluation.py",
    "bench_inference": "benchmarks/bench_inference.py",
    "bench_prepare": "benchmarks/bench_prepare.py",
    "bench_router": "benchmarks/bench_router.py",
    "bench_synth": "benchmarks/bench_synth.py",
    "check_readme_figures": "benchmarks/check_readme_figures.py",
    "mutation": "benchmarks/mutation.py",
    "seeded_bugs": "benchmarks/seeded_bugs.py",
    "gpu_check": "benchmarks/gpu_check_internvl3_8b.py",
    "demo": "mevlip.demo.__main__",
    "demo_report": "mevlip.demo.report",
}
#: Scripts not on the convention yet (none).
NOT_YET: set[str] = set()
#: Scripts whose --help and user errors are checked in a subprocess (the benchmarks that import torch at the top
#: are checked in-process only, to keep this module fast).
LIGHT = [name for name in SCRIPTS if name not in ("bench_inference", "bench_router", "train_task_classifier")]
SNAKE = re.compile(r"^(--[a-z0-9]+(_[a-z0-9]+)*|-[a-z])$")


def _parser(name: str) -> argparse.ArgumentParser:
    target = SCRIPTS[name]
    module = load_script(target) if target.endswith(".py") else importlib.import_module(target)
    return module.build_parser()


def _command(name: str) -> list[str]:
    target = SCRIPTS[name]
    if target.endswith(".py"):
        return [sys.executable, str(REPO / target)]
    return [sys.executable, "-m", target.removesuffix(".__main__")]


def _run(name: str, *argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([*_command(name), *map(str, argv)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def _visible(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.help is not argparse.SUPPRESS]


def _section(help_text: str, title: str) -> str:
    """The lines of one ``title:`` section of a --help text."""
    lines = help_text.split("\n")
    start = lines.index(f"{title}:") + 1
    end = next((i for i in range(start, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    return "\n".join(lines[start:end]).strip("\n")


def _reference_common(progress: bool) -> str:
    parser = make_parser("reference", prog="x")
    add_common_args(parser, progress=progress)
    return _section(parser.format_help(), cli.COMMON_TITLE)


# ------------------------------------------------------------------------------------------------ the inventory
def test_every_script_with_a_parser_is_on_the_list():
    """A new script gets the convention (and this module's checks) or is named here as not yet converted."""
    folders = ("llama_factory_internvl", "docker_internvl", "evaluation", "task_classifier", "benchmarks", "mevlip")
    found = {str(p.relative_to(REPO)) for folder in folders for p in (REPO / folder).rglob("*.py")
             if re.search(r"ArgumentParser\(|make_parser\(", p.read_text(encoding="utf-8"))}
    listed = {_parser_file(t) for t in SCRIPTS.values()}
    assert found - {"mevlip/cli.py"} == listed | NOT_YET


def _parser_file(target: str) -> str:
    """Where a script's parser is written: a wrapper at an original path holds none, its command module does."""
    if not target.endswith(".py"):
        return target.replace(".", "/") + ".py"
    moved = REPO / "mevlip" / "commands" / Path(target).name
    return str(moved.relative_to(REPO)) if moved.exists() else target


def test_the_mevlip_command_runs_every_stage(tmp_path):
    """``mevlip <stage>`` (installed by pip) runs the stage's own command with the same options and help."""
    from mevlip.commands import STAGES

    exe = Path(sys.executable).parent / "mevlip"
    assert exe.exists(), "pip install -e . installs the mevlip command"
    listing = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and all(f"  {stage} " in listing.stdout for stage in STAGES)
    for stage, (module, _) in STAGES.items():
        helped = subprocess.run([str(exe), stage, "--help"], capture_output=True, text=True, timeout=120,
                                cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        assert helped.returncode == 0 and helped.stdout.startswith(f"usage: mevlip {stage} "), stage
        flags = set(re.findall(r"--[a-z][a-z0-9_]*", importlib.import_module(module).build_parser().format_help()))
        assert set(re.findall(r"--[a-z][a-z0-9_]*", helped.stdout)) == flags, stage  # the same options
    wrong = subprocess.run([str(exe), "nope"], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "mevlip: error: unknown stage 'nope'" in wrong.stderr
    bad = subprocess.run([str(exe), "evaluate", "--bootstrap", "-1", "--base_dataset_path", ".",
                          "--prediction_file", "p.json"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().endswith("mevlip evaluate: error: argument --bootstrap: must "
                                                               "be in [0, inf), got -1")


# ------------------------------------------------------------------------------------------------ every parser
@pytest.mark.parametrize("name", list(SCRIPTS))
def test_parser_follows_the_convention(name):
    parser = _parser(name)
    text = parser.format_help()
    progress = any("--no_progress" in a.option_strings for a in parser._actions)
    common = _section(text, cli.COMMON_TITLE)
    log_level = common.split("\n  --no_progress")[0]
    assert log_level == _reference_common(False), "--log_level shown another way"
    if progress:
        assert "\n  --no_progress         no progress bars" in "\n" + common
    assert parser.formatter_class is cli.HelpFormatter
    formatter = cli.HelpFormatter(parser.prog)
    for action in _visible(parser):
        flags = "/".join(action.option_strings)
        assert action.help, f"{flags} has no help"
        assert all(SNAKE.match(s) for s in action.option_strings if s != "--help"), f"{flags}: not snake_case"
        valued = action.nargs != 0 or isinstance(action, argparse.BooleanOptionalAction)
        if valued and not action.required:
            assert re.search(r"\bdefault\b", formatter._get_help_string(action), re.I), f"{flags}: no default shown"
    assert "(default: None)" not in text


def test_route_questions_scorings_are_the_routers():
    from mevlip.router import SCORINGS

    assert load_script(SCRIPTS["route_questions"]).SCORINGS == SCORINGS


@pytest.mark.parametrize("name", LIGHT)
def test_help_runs_and_shows_the_common_options_the_same_way(name):
    done = _run(name, "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    common = _section(done.stdout, cli.COMMON_TITLE)
    assert common.startswith(_reference_common(False))
    assert "(default: INFO)" in common
    if SCRIPTS[name].startswith("mevlip."):
        assert done.stdout.startswith(f"usage: python -m {SCRIPTS[name].removesuffix('.__main__')} ")


# ------------------------------------------------------------------------------------------------ old spellings
ALIASES = [  # (script, argv with old spellings, {dest: value})
    ("data_preparation", ["--dataset_root", "R", "--no-progress", "--no-extract"],
     {"base_dataset_path": "R", "no_progress": True, "no_extract": True}),
    ("data_preparation", ["--progress", "--extract"], {"no_progress": False, "no_extract": False}),
    ("synth", ["--out", "D", "--no-progress"], {"output_dir": "D", "no_progress": True}),
    ("baselines", ["--dataset_root", "R", "--output", "P"], {"base_dataset_path": "R", "output_file": "P"}),
    ("recipes", ["--out", "E"], {"output_dir": "E"}),
    ("make_standin_model", ["--out", "M", "--data", "R"], {"output_dir": "M", "base_dataset_path": "R"}),
    ("merge_predictions", ["--base_dataset_path", "R", "--inputs", "a", "--output", "P"], {"output_file": "P"}),
    ("route_questions", ["--router_dir", "r", "--questions", "q", "--output", "P"], {"output_file": "P"}),
    ("train_task_classifier", ["--flare_root", "R", "--no-normalize_features", "--no-freeze_embeddings"],
     {"base_dataset_path": "R", "normalize_features": False, "freeze_embeddings": False}),
    ("evaluation", ["--base_dataset_path", "R", "--prediction_file", "p", "-v"], {"log_level": "DEBUG"}),
    ("evaluation", ["--base_dataset_path", "R", "--prediction_file", "p", "--verbose"], {"log_level": "DEBUG"}),
    ("inference", ["--base_dataset_path", "R", "--output_dir", "O", "--no-crop_to_patches"],
     {"crop_to_patches": False}),
    ("bench_evaluation", ["--data", "R", "--skip-naive"], {"base_dataset_path": Path("R"), "skip_naive": True}),
    ("bench_prepare", ["--data", "R", "--out", "O"], {"base_dataset_path": Path("R"), "output_dir": Path("O")}),
    ("bench_synth", ["--out", "O"], {"output_dir": "O"}),
    ("bench_router", ["--json", "F"], {"output_file": "F"}),
    ("bench_inference", ["--output", "F"], {"output_file": "F"}),
    ("gpu_check", ["--out", "F"], {"output_file": "F"}),
]


OLD_SPELLINGS = {"--dataset_root", "--no-progress", "--progress", "--no-extract", "--extract", "--out", "--output",
                 "--data", "--verbose", "--no-crop_to_patches", "--skip-naive", "--json", "--flare_root",
                 "--no-normalize_features", "--no-freeze_embeddings"}


@pytest.mark.parametrize("name,argv,expected", ALIASES)
def test_old_spellings_still_parse_and_are_not_shown(name, argv, expected):
    parser = _parser(name)
    args = vars(parser.parse_args(argv))
    assert {k: args[k] for k in expected} == expected
    text = parser.format_help()
    for old in OLD_SPELLINGS.intersection(argv):
        assert not re.search(rf"(?<![\w-]){re.escape(old)}(?![\w-])", text), f"{old} shown in --help"
    assert OLD_SPELLINGS.intersection(argv) or "-v" in argv


def test_new_spellings_and_defaults_of_the_renamed_flags():
    prep = vars(_parser("data_preparation").parse_args(["--base_dataset_path", "R", "--no_progress", "--no_extract"]))
    assert (prep["base_dataset_path"], prep["no_progress"], prep["no_extract"]) == ("R", True, True)
    infer = _parser("inference")
    base = ["--base_dataset_path", "R", "--output_dir", "O"]
    assert [vars(infer.parse_args(base + extra))["crop_to_patches"] for extra in
            ([], ["--crop_to_patches"], ["--no_crop_to_patches"])] == [None, True, False]
    assert vars(infer.parse_args(base + ["--log_level", "debug"]))["log_level"] == "DEBUG"
    assert vars(_parser("evaluation").parse_args(["--base_dataset_path", "R", "--prediction_file", "p"]))[
        "log_level"] == "INFO"
    router = _parser("train_task_classifier")
    assert [vars(router.parse_args(extra))["normalize_features"] for extra in
            ([], ["--normalize_features"], ["--no_normalize_features"])] == [None, True, False]  # None: the preset's
    text = router.format_help()
    assert "--no_normalize_features" in text and "--no-normalize_features" not in text
    assert re.search(r"--lr LR\s+AdamW learning rate.*default: 0\.0001 \(embedded\s+preset\), 1e-05 \(paper\s+preset\)",
                     text, re.S), text


# ------------------------------------------------------------------------------------------------ mevlip.cli
def _demo_parser() -> argparse.ArgumentParser:
    parser = make_parser("demo", prog="demo")
    add_option(parser, "--base_dataset_path", aliases=("--dataset_root",), required=True, help="a root")
    add_option(parser, "--output_file", aliases=("--output",), default="out.json", help="a file")
    parser.add_argument("--size", type=int, default=3, help="a size")
    parser.add_argument("--mode", default=None, help="a mode (default: the preset's)")
    parser.add_argument("--flag", action="store_true", help="a flag")
    add_common_args(parser, progress=True)
    return parser


def test_alias_parses_as_the_flag_and_is_named_nowhere(capsys):
    parser = _demo_parser()
    assert vars(parser.parse_args(["--dataset_root", "A", "--output", "B"]))["output_file"] == "B"
    assert parser.parse_args(["--base_dataset_path", "A"]).base_dataset_path == "A"
    text = parser.format_help()
    assert "--dataset_root" not in text and not re.search(r"--output(?!_)", text)
    with pytest.raises(SystemExit) as err:
        parser.parse_args([])
    assert err.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "demo: error: the following arguments are required: --base_dataset_path"


def test_help_shows_each_default_once():
    text = _demo_parser().format_help()
    assert "a size (default: 3)" in text
    assert "a file (default: out.json)" in text
    assert "a mode (default: the preset's)" in text and "(default: None)" not in text
    assert "a flag\n" in text and "a root\n" in text  # a flag and a required option: no default to show
    assert "(default: INFO)" in text and "no progress bars\n" in text


def _exit(main, capsys, prog="demo"):
    with pytest.raises(SystemExit) as err:
        run_cli(main, [], prog=prog)
    return err.value.code, capsys.readouterr()


def test_run_cli_turns_user_errors_into_one_line_and_code_2(capsys, tmp_path):
    def raises(err):
        def main(argv):
            raise err
        return main

    from mevlip.flare import FlareDataError

    cases = [
        (UserError("bad --x value"), "demo: error: bad --x value"),
        (SystemExit("no question files\nunder /data"), "demo: error: no question files under /data"),
        (FlareDataError(f"{tmp_path}/q.json: not valid JSON"), f"demo: error: {tmp_path}/q.json: not valid JSON"),
        (FileNotFoundError(2, "No such file or directory", str(tmp_path / "x")),
         f"demo: error: {tmp_path / 'x'}: No such file or directory"),
        (FileNotFoundError("recipe folder r does not exist"), "demo: error: recipe folder r does not exist"),
        (PermissionError(13, "Permission denied", "/out"), "demo: error: /out: Permission denied"),
    ]
    for err, line in cases:
        code, out = _exit(raises(err), capsys)
        assert code == 2 and out.err.splitlines() == [line], (err, out.err)


def test_run_cli_passes_exit_codes_and_bugs_through(capsys):
    assert _exit(lambda argv: 0, capsys)[0] == 0
    assert _exit(lambda argv: 1, capsys)[0] == 1
    assert _exit(lambda argv: {"summary": 1}, capsys)[0] == 0
    assert _exit(lambda argv: _demo_parser().parse_args(["--help"]), capsys)[0] == 0

    def bug(argv):
        raise ValueError("a bug, not the user's")

    with pytest.raises(ValueError, match="a bug"):  # a plain ValueError keeps its traceback
        run_cli(bug, [], prog="demo")
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------------ user errors
def _user_error_cases(tmp: Path) -> dict[str, tuple[list, str]]:
    nowhere = tmp / "nowhere"
    return {
        "data_preparation": (["--base_dataset_path", nowhere, "--output_dir", tmp / "d"], str(nowhere)),
        "train_adapters": (["--recipe_dir", nowhere, "--adapters_dir", tmp / "a"], str(nowhere)),
        "make_standin_model": (["--output_dir", tmp / "m", "--base_dataset_path", nowhere], str(nowhere)),
        "inference": (["--base_dataset_path", nowhere, "--output_dir", tmp / "o", "--routing", "general",
                       "--device", "cpu"], str(nowhere)),
        "merge_predictions": (["--base_dataset_path", nowhere, "--inputs", tmp / "s.json", "--output_file",
                               tmp / "p.json"], str(nowhere)),
        "evaluation": (["--base_dataset_path", nowhere, "--prediction_file", tmp / "p.json"], str(nowhere)),
        "route_questions": (["--router_dir", tmp / "r", "--questions", tmp / "bad.json"], str(tmp / "bad.json")),
        "synth": (["--output_dir", tmp / "file" / "sub"], str(tmp / "file" / "sub")),
        "baselines": (["--base_dataset_path", nowhere, "--output_file", tmp / "p.json"], str(nowhere)),
        "recipes": (["--output_dir", tmp / "file" / "sub"], str(tmp / "file" / "sub")),
        "bench_synth": (["--output_dir", tmp / "file" / "sub", "--scale", "tiny"], str(tmp / "file" / "sub")),
        "bench_prepare": (["--base_dataset_path", nowhere], str(nowhere)),
        "check_readme_figures": (["--root", nowhere], str(nowhere)),
        "mutation": (["--report", "--output_file", tmp / "file" / "m.json"], str(tmp / "file" / "m.json")),
        "seeded_bugs": (["--output_file", tmp / "file" / "s.json"], str(tmp / "file" / "s.json")),
        "demo": (["--quick", "--output_dir", tmp / "file" / "sub"], str(tmp / "file" / "sub")),
        "demo_report": (["--compare", tmp / "bad.json", tmp / "bad.json"], str(tmp / "bad.json")),
    }


@pytest.mark.parametrize("name", [n for n in LIGHT if n not in ("bench_evaluation", "gpu_check")])
def test_a_user_error_is_one_line_and_exit_code_2(name, tmp_path):
    """bench_evaluation generates its data when the root is absent and gpu_check's first user error (no CUDA)
    comes after importing torch: no cheap user error to try for those two."""
    (tmp_path / "file").write_text("a file, not a folder")
    (tmp_path / "bad.json").write_text("[")
    argv, named = _user_error_cases(tmp_path)[name]
    done = _run(name, *argv, cwd=tmp_path)
    prog = Path(SCRIPTS[name]).name if SCRIPTS[name].endswith(".py") else \
        "python -m " + SCRIPTS[name].removesuffix(".__main__")
    errors = [line for line in done.stderr.splitlines() if re.match(r"^\d{4}-\d\d-\d\d ", line) is None]
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert len(errors) == 1 and errors[0].startswith(f"{prog}: error: ") and named in errors[0], done.stderr


# ------------------------------------------------------------------------------------------------ training CLI
@pytest.fixture
def recipes(tmp_path) -> Path:
    """The stand-in recipes under <tmp>/examples/standin, so that their relative model path is not there."""
    target = tmp_path / "examples" / "standin"
    shutil.copytree(REPO / "llama_factory_internvl" / "examples" / "standin", target)
    return target


def _train(tmp_path: Path, *argv) -> tuple[int, list[str], str]:
    done = _run("train_adapters", *argv, cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if re.match(r"^\d{4}-\d\d-\d\d ", line) is None]
    return done.returncode, lines, done.stderr


def test_training_cli_user_errors_name_the_file(recipes, tmp_path):
    """No model folder, a bad --set, a broken recipe: one line, exit code 2, nothing trained."""
    base = ["--recipe_dir", recipes, "--adapters_dir", tmp_path / "adapters", "--only", "general"]
    code, lines, err = _train(tmp_path, *base)  # the recipe's model_name_or_path: saves/standin/pretrained
    general = recipes / "internvl_lora_sft_bnb.yaml"
    assert code == 2 and "Traceback" not in err
    assert lines == [f"train_adapters.py: error: {general}: model folder saves/standin/pretrained not found "
                     f"(relative paths are relative to {tmp_path}); build it first (make_standin_model.py for the "
                     "stand-in) or pass --model"]
    code, lines, err = _train(tmp_path, *base, "--model", tmp_path / "no" / "model")
    assert code == 2 and len(lines) == 1 and lines[0].startswith(
        f"train_adapters.py: error: --model: model folder {tmp_path / 'no' / 'model'} not found")
    code, lines, err = _train(tmp_path, *base, "--model", tmp_path, "--set", "learning_rate=1 2")
    assert code == 2 and lines == ["train_adapters.py: error: override value '1 2' contains whitespace, which "
                                   "llamafactory-cli cannot pass on"]
    code, lines, err = _train(tmp_path, *base, "--set", "learning_rate")  # argparse: usage, then one error line
    assert code == 2 and lines[-1] == "train_adapters.py: error: argument --set: expected key=value, got " \
                                      "'learning_rate'" and "Traceback" not in err
    (recipes / "internvl_lora_sft_bnb_counting.yaml").write_text("model_name_or_path: [unclosed\n")
    code, lines, err = _train(tmp_path, *base, "--model", tmp_path)
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith(f"train_adapters.py: error: {recipes / 'internvl_lora_sft_bnb_counting.yaml'}: "
                               "not a readable YAML recipe (")
    assert not (tmp_path / "adapters").exists()


def test_training_cli_refuses_missing_model_before_training_any_adapter(recipes, tmp_path):
    """With --model there, but a --set pointing the base model elsewhere, nothing starts."""
    code, lines, _ = _train(tmp_path, "--recipe_dir", recipes, "--adapters_dir", tmp_path / "adapters",
                            "--model", tmp_path, "--set", f"model_name_or_path={tmp_path}/gone/model")
    assert code == 2 and lines == [f"train_adapters.py: error: --set model_name_or_path: model folder "
                                   f"{tmp_path}/gone/model not found (relative paths are relative to {tmp_path}); "
                                   "build it first (make_standin_model.py for the stand-in) or pass --model"]
    assert not (tmp_path / "adapters").exists()


def test_hub_ids_and_existing_folders_pass_the_model_check(tmp_path):
    from mevlip.training.adapters import check_base_model

    recipe = tmp_path / "r.yaml"
    for value in ("OpenGVLab/InternVL3-8B-hf", "gpt2", str(tmp_path)):
        check_base_model(recipe, value, None, {}, tmp_path)
    (tmp_path / "saves" / "base").mkdir(parents=True)
    check_base_model(recipe, "saves/base", None, {}, tmp_path)  # relative to the workdir
    with pytest.raises(FileNotFoundError, match=r"r\.yaml: model folder \./base not found"):
        check_base_model(recipe, "./base", None, {}, tmp_path)
    with pytest.raises(FileNotFoundError, match="no model_name_or_path"):
        check_base_model(recipe, None, None, {}, tmp_path)
