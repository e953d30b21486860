"""The container as the challenge runs it, without Docker (not available here).

The challenge runs ``docker run --gpus all ... IMAGE /bin/bash -c "sh predict.sh"``: that command replaces the
image's CMD and runs in its WORKDIR. These tests read the Dockerfile (no ENTRYPOINT, its CMD, WORKDIR, which files it
copies there), lay out an image-like working directory with the stand-in models in the authors' release layout
(``models/FLARE-InternVL3-8B-hf``, ``models/FLARE-gliclass-small-v1.0``, as the original inference.py read them),
and run both the challenge's exact argv and the image's CMD from it, the models given through the environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from release_standins import build_plain_router, build_release_adapters, cached

from mevlip.flare import discover, load_records, record_key
from mevlip.inference.layout import EXPECTED_ADAPTERS, RELEASE_GENERAL_FOLDER
from mevlip.synth import generate

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker_internvl" / "Dockerfile"
CHALLENGE_ARGV = ["/bin/bash", "-c", "sh predict.sh"]  # docker run ... biomedia:latest /bin/bash -c "sh predict.sh"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's ``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def image_workdir(tmp: Path) -> tuple[Path, list[str]]:
    """A folder standing for the image's WORKDIR: the docker_internvl files the Dockerfile copies there.

    Returns:
        The folder and the image's CMD argv.
    """
    steps = instructions()
    workdirs = [args for name, args in steps if name == "WORKDIR"]
    cmds = [json.loads(args) for name, args in steps if name == "CMD"]
    assert workdirs and workdirs[-1] == "/app" and len(cmds) == 1
    app = tmp / "app"
    app.mkdir()
    copied = []
    for name, args in steps:
        if name == "COPY" and args.split()[-1] in ("./", "/app/", "/app"):
            for src in args.split()[:-1]:
                if src.startswith("docker_internvl/"):
                    shutil.copy(REPO / src, app / Path(src).name)
                    copied.append(Path(src).name)
    assert {"inference.py", "predict.sh"} <= set(copied)
    return app, cmds[0]


@pytest.fixture(scope="module")
def models(tmp_path_factory, standin_dir):
    """MODELS_DIR as the original's image holds the release: base, FLARE-InternVL3-8B-hf, FLARE-gliclass-small-v1.0."""
    adapters = cached(tmp_path_factory, "release_adapters", lambda out: build_release_adapters(standin_dir, out))
    router = cached(tmp_path_factory, "release_router", build_plain_router)
    out = tmp_path_factory.mktemp("models")
    (out / "InternVL3-8B-hf").symlink_to(standin_dir, target_is_directory=True)
    (out / "FLARE-InternVL3-8B-hf").symlink_to(adapters, target_is_directory=True)
    (out / "FLARE-gliclass-small-v1.0").symlink_to(router, target_is_directory=True)
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The final-phase input: <Category>/<dataset>/ folders directly under the mounted inputs folder."""
    root = tmp_path_factory.mktemp("container_data")
    generate(root, "tiny", seed=7, datasets=["dental"])  # a dataset with a testing split (multi-label questions)
    return root


def _env(tmp: Path, **extra) -> dict:
    scratch = tmp / "tmpdir"
    scratch.mkdir(exist_ok=True)
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "TMPDIR": str(scratch),
            "DEVICE": "cpu", "MAX_NEW_TOKENS": "4", **extra}


def _run(argv: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_dockerfile_lets_the_challenge_command_replace_cmd():
    steps = instructions()
    names = [name for name, _ in steps]
    assert "ENTRYPOINT" not in names  # an ENTRYPOINT would receive `/bin/bash -c "sh predict.sh"` as arguments
    assert [json.loads(args) for name, args in steps if name == "CMD"] == [["sh", "predict.sh"]]
    # no USER: the image runs as root, as the original's, so a root-owned mounted outputs/ folder is writable
    assert "USER" not in names


def test_challenge_command_line_writes_predictions(models, inputs, tmp_path):
    app, cmd = image_workdir(tmp_path)
    mounted = tmp_path / "inputs"
    shutil.copytree(inputs / "testing", mounted)
    env = _env(tmp_path, INPUT_DIR=str(mounted), OUTPUT_DIR=str(tmp_path / "outputs"), MODELS_DIR=str(models))
    run = _run(CHALLENGE_ARGV, app, env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    preds = json.loads((tmp_path / "outputs" / "predictions.json").read_text())
    expected = [r for f in discover(inputs, ["testing"], gt="exclude") for r in load_records(f).records]
    assert [record_key(p) for p in preds] == [record_key(r) for r in expected] and preds
    summary = json.loads((tmp_path / "outputs" / "predictions.summary.json").read_text())
    assert summary["errors"] == 0 and summary["routing"] == "router" and summary["router_scoring"] == "softmax"
    assert summary["preset"] == "paper"  # the format the released adapters were trained on
    assert summary["adapters_loaded"] == list(EXPECTED_ADAPTERS)  # the release's eight, found by predict.sh
    assert summary["adapter_folders"]["general"] == str(models / "FLARE-InternVL3-8B-hf" / RELEASE_GENERAL_FOLDER)
    assert summary["router_dir"] == str(models / "FLARE-gliclass-small-v1.0")
    assert not os.listdir(env["TMPDIR"])  # predict.sh removed its scratch folder
    assert not list((tmp_path / "outputs").glob(".images*"))  # each run's own images folder is removed too
    # `docker run IMAGE` alone runs the CMD from the same folder: the same predictions
    env["OUTPUT_DIR"] = str(tmp_path / "outputs_cmd")
    run = _run(cmd, app, env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((tmp_path / "outputs_cmd" / "predictions.json").read_text()) == preds


def test_predict_sh_names_what_is_wrong(tmp_path):
    app, _ = image_workdir(tmp_path)
    env = _env(tmp_path, OUTPUT_DIR=str(tmp_path / "outputs"))
    missing = _run(["sh", "predict.sh"], app, {**env, "INPUT_DIR": str(tmp_path / "nowhere")})
    assert missing.returncode == 1 and f"INPUT_DIR={tmp_path / 'nowhere'} does not exist" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = _run(["sh", "predict.sh"], app, {**env, "INPUT_DIR": str(tmp_path / "empty")})
    assert empty.returncode == 1 and f"INPUT_DIR={tmp_path / 'empty'} is empty" in empty.stderr
    (tmp_path / "a_file").write_text("x")
    unwritable = _run(["sh", "predict.sh"], app, {**env, "INPUT_DIR": str(app),
                                                  "OUTPUT_DIR": str(tmp_path / "a_file" / "out")})
    assert unwritable.returncode == 1 and "cannot write to OUTPUT_DIR=" in unwritable.stderr
    # the old image's mistake: the challenge's command line handed to predict.sh as arguments
    stray = _run(["sh", "predict.sh", *CHALLENGE_ARGV], app, {**env, "INPUT_DIR": str(app)})
    assert stray.returncode == 2 and "arguments must be inference.py options (--...), got '/bin/bash'" in stray.stderr
    assert not (tmp_path / "outputs" / "predictions.json").exists()
