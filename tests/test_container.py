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


# ------------------------------------------------------------------------------------- inputs we did not write
#: Layouts a test folder may come in, each as (question files, relative to the input folder). Images sit in
#: ``imagesTs/`` beside each question file, named in the records with and without that prefix.
LAYOUTS = {
    "flat": ["a_questions_test.json", "b.json"],
    "dataset": ["DSA/DSA_questions_test.json", "DSB/DSB_questions_test.json"],
    "category": ["Xray/DSA/DSA_questions_test.json", "Xray/DSB/DSB_questions_test.json"],
    "split": ["testing/Xray/DSA/DSA_questions_test.json", "testing/Xray/DSB/DSB_questions_test.json"],
    "deeper": ["FLARE_Test/round_2/Xray/DSA/DSA_questions_test.json", "FLARE_Test/round_2/Xray/DSB/q.json"],
}


def _task_spellings() -> list[str]:
    from mevlip.tasks import TASKS

    return sorted({s for spec in TASKS.values() for s in spec.spellings})


def _foreign_records(tag: str) -> list[dict]:
    """Records as a test file may hold them: every TaskType spelling, keys missing, in several key orders."""
    out = []
    for n, spelling in enumerate(_task_spellings()):
        name = f"imagesTs/{tag}_{n % 3}.png" if n % 2 else f"{tag}_{n % 3}.png"  # prefixed and bare names
        if n % 3 == 0:  # the test set's form: no Answer, no Split
            out.append({"TaskType": spelling, "Modality": "X-ray", "ImageName": name, "Question": f"{tag} q{n}?"})
        elif n % 3 == 1:  # only what answering needs, plus a field of the team's own
            out.append({"Question": f"{tag} q{n}? Answer with A or B.", "ImageName": name, "TaskType": spelling,
                        "case_id": n})
        else:
            out.append({"TaskType": spelling, "Modality": "X-ray", "ImageName": [name, f"{tag}_big.jpg"],
                        "Question": f"{tag} q{n}?", "Answer": "", "Split": "test"})
    out.append({"ImageName": f"imagesTs/{tag}_big.jpg", "Question": f"{tag}: how many cells are visible?"})
    out.append({"Question": f"{tag}: describe the findings.", "TaskType": "Segmentation", "ImageName": f"{tag}_0.png"})
    return out


def _foreign_inputs(root: Path, layout: str) -> dict[str, list[dict]]:
    """An input folder in ``layout`` with images (one of real size), a ground-truth twin and non-question JSON."""
    from PIL import Image

    written = {}
    for n, rel in enumerate(LAYOUTS[layout]):
        path = root / rel
        tag = "ab"[n]
        (path.parent / "imagesTs").mkdir(parents=True, exist_ok=True)
        for k in range(3):
            Image.new("RGB", (64 + 32 * k, 48), (40 * k, 200, 90)).save(path.parent / "imagesTs" / f"{tag}_{k}.png")
        Image.new("RGB", (1536, 1152), (120, 30, 200)).save(path.parent / "imagesTs" / f"{tag}_big.jpg")
        records = _foreign_records(tag)
        path.write_text(json.dumps(records, indent=1))
        twin = path.with_name(path.stem + "_withGT.json")
        twin.write_text(json.dumps([{**r, "Answer": "A"} for r in records]))  # answered once, from the blank file
        written[rel] = records
    (root / "dataset_info.json").write_text(json.dumps({"name": "FLARE test", "files": list(LAYOUTS[layout])}))
    return written


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_challenge_command_answers_every_layout(models, tmp_path, layout):
    app, _ = image_workdir(tmp_path)
    mounted = tmp_path / "FLARE_Test"
    written = _foreign_inputs(mounted, layout)
    out = tmp_path / "out"
    env = _env(tmp_path, INPUT_DIR=str(mounted), OUTPUT_DIR=str(out), MODELS_DIR=str(models))
    run = _run(CHALLENGE_ARGV, app, env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    preds = json.loads((out / "predictions.json").read_text())
    # every record of every question file, in path order and file order, each key kept in place, Answer set
    expected = [r for rel in sorted(LAYOUTS[layout], key=lambda p: Path(p).parts) for r in written[rel]]
    assert len(preds) == len(expected)
    for got, given in zip(preds, expected, strict=True):
        assert list(got) == list(given) + ([] if "Answer" in given else ["Answer"])
        assert {k: v for k, v in got.items() if k != "Answer"} == {k: v for k, v in given.items() if k != "Answer"}
        assert isinstance(got["Answer"], str)
    details = [json.loads(x) for x in (out / "predictions.details.jsonl").read_text().splitlines()]
    assert [d["error"] for d in details] == [None] * len(expected)
    assert all(d["raw"] is not None and d["adapter"] in EXPECTED_ADAPTERS for d in details)
    # a record without a known TaskType is routed and post-processed by the router's task, and says so
    untyped = [d for d, r in zip(details, expected, strict=True)
               if "TaskType" not in r or r["TaskType"] == "Segmentation"]
    assert len(untyped) == 4 and all(d["task_source"] == "router" and d["task"] == d["routed_task"] for d in untyped)
    summary = json.loads((out / "predictions.summary.json").read_text())
    assert summary["records"] == len(expected) and summary["errors"] == 0
    assert summary["question_files"] == 2 and summary["records_without_task_type"] == 4
    skipped = {Path(k).relative_to(mounted).as_posix() for k in summary["skipped_inputs"]}
    assert skipped == {"dataset_info.json", *(str(Path(r).with_name(Path(r).stem + "_withGT.json"))
                                               for r in LAYOUTS[layout])}


def test_sigterm_stops_inference_and_the_rerun_resumes(models, tmp_path):
    import signal
    import time

    app, _ = image_workdir(tmp_path)
    mounted = tmp_path / "inputs"
    written = _foreign_inputs(mounted, "dataset")
    total = sum(len(r) for r in written.values())
    out = tmp_path / "out"
    env = _env(tmp_path, INPUT_DIR=str(mounted), OUTPUT_DIR=str(out), MODELS_DIR=str(models), BATCH_SIZE="1",
               MAX_NEW_TOKENS="24")
    proc = subprocess.Popen(CHALLENGE_ARGV, cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    journal = out / "predictions.journal.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:  # wait until a few answers are journalled
        if journal.exists() and len(journal.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "inference ended before it could be stopped: " + proc.stderr.read()[-2000:]
    proc.send_signal(signal.SIGTERM)  # what `docker stop` sends to the container's first process
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr[-3000:]
    assert "Traceback" not in stderr
    kept = len(journal.read_text().splitlines()) - 1
    assert 3 <= kept < total  # stopped part way, every answer so far kept
    assert not (out / "predictions.json").exists()
    assert not list(out.glob(".images*")) and not os.listdir(env["TMPDIR"])  # its scratch folders are removed
    rerun = _run(CHALLENGE_ARGV, app, env)  # the same command goes on where it stopped
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads((out / "predictions.summary.json").read_text())
    assert summary["resumed"] == kept and summary["answered_now"] == total - kept and summary["records"] == total


def test_without_a_gpu_predict_sh_says_so_in_one_line(tmp_path):
    app, _ = image_workdir(tmp_path)
    mounted = tmp_path / "inputs"
    _foreign_inputs(mounted, "flat")
    env = _env(tmp_path, INPUT_DIR=str(mounted), OUTPUT_DIR=str(tmp_path / "out"), CUDA_VISIBLE_DEVICES="")
    env.pop("DEVICE")  # the challenge sets nothing: auto
    run = _run(CHALLENGE_ARGV, app, env)
    errors = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert errors == ["inference.py: error: --device auto: no CUDA GPU is visible (for Docker: --gpus; check "
                      "nvidia-smi); pass --device cpu (DEVICE=cpu for predict.sh) to run on the CPU, which is slow "
                      "for an 8B model"]
    assert not list((tmp_path / "out").glob(".images*"))
