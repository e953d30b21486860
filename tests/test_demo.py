"""`make demo` at CI size: every stage runs for real (tiny mini-FLARE, two training steps per run), fills the report,
skips up-to-date stages on a rerun, redoes a stage whose command changed, and refuses to overwrite real data."""

import json
import re
import subprocess
import sys

import pytest

from mevlip.demo import run as demo
from mevlip.demo.report import MODE_TITLES
from mevlip.tasks import TASK_NAMES

STAGES = ["mini_flare", "mini_flare_pretrain", "prepare", "prepare_pretrain", "standin", "pretrain", "router"] + [
    f"adapter_{name}" for name in ("general", *TASK_NAMES)] + [
    f"{step}_{mode}" for mode, _ in demo.MODES for step in ("predict", "evaluate")]


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo_output"
    proc = subprocess.run([sys.executable, "-m", "mevlip.demo", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out, proc.stdout


def test_every_stage_ran_and_left_its_artefacts(quick_demo):
    out, stdout = quick_demo
    for stage in STAGES:
        assert f"=== [{stage}] done in" in stdout, stage
        stamp = json.loads((out / ".stages" / f"{stage}.json").read_text())
        assert stamp["threads"] == 1, stage  # fixed, whatever the machine
    assert json.loads((out / "mini_flare" / "mini_flare.json").read_text())["synthetic"] is True
    for name in ("general", *TASK_NAMES):
        assert (out / "adapters" / name / "adapter_config.json").is_file(), name
        assert (out / "adapters" / name / "adapter_model.safetensors").is_file(), name
    assert (out / "router" / "router_config.json").is_file()
    for mode, _ in demo.MODES:
        preds = json.loads((out / "predictions" / mode / "predictions.json").read_text())
        metrics = json.loads((out / "metrics" / mode / "metrics_predictions.json").read_text())
        assert len(preds) == metrics["matching"]["n_matched"] == metrics["matching"]["n_gt"] > 0, mode
    assert (out / "plots" / "metrics.png").stat().st_size > 1000
    assert (out / "plots" / "loss_curves.png").stat().st_size > 1000


def test_results_table_has_every_cell_filled(quick_demo):
    out, _ = quick_demo
    text = (out / "results.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| task | metric |"))
    for mode, _ in demo.MODES:
        assert MODE_TITLES[mode] in header
    rows = [line for line in text.splitlines() if line.startswith("| ") and "|---" not in line]
    table = rows[rows.index(header) + 1: rows.index(header) + 1 + len(TASK_NAMES)]
    assert len(table) == len(TASK_NAMES)
    for row in table:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 3 + len(demo.MODES), row
        for cell in cells[3:]:  # every metric cell is a number (inf for unparsable MAE under flare25 rules)
            assert re.fullmatch(r"\*{0,2}(-?\d+\.\d+|inf)\*{0,2}", cell), row
    assert "routing of the" in text and "router accuracy on" in text
    results = json.loads((out / "results.json").read_text())
    assert set(results["metrics"]) >= set(TASK_NAMES)
    # the learning check: one verdict per task against the constant baseline, in the JSON and in the Markdown
    assert set(results["learning"]) == set(TASK_NAMES)
    verdict = r"(beats|below) \((clearly|within noise)\)|ties|n/a"
    assert all(re.fullmatch(verdict, v) for v in results["learning"].values())
    assert "## Did training learn?" in text and "Beats the constant baseline on" in text
    # the paper's preset by default, named in both outputs, and really used by the stages
    assert results["preset"] == "paper" and "**Preset: `paper`**" in text
    rows = json.loads((out / "data" / "flare" / "train" / "classification.json").read_text())
    assert all(r["conversations"][0]["value"].startswith("<image> ") and len(r["images"]) == 1 for r in rows)
    summary = json.loads((out / "predictions" / "router" / "predictions.summary.json").read_text())
    assert summary["preset"] == "paper"
    # the router under both scorings (softmax: the original's and the default; sigmoid: the option)
    assert set(results["routing_by_scoring"]) == {"softmax", "sigmoid"}
    answered = len(json.loads((out / "predictions" / "router" / "predictions.json").read_text()))
    assert all(0 <= r["fallback_rate"] <= 1 and r["n"] == answered for r in results["routing_by_scoring"].values())
    assert "scored with softmax" in text and "scored with sigmoid" in text


def test_rerun_skips_up_to_date_stages_and_redoes_changed_ones(quick_demo, tmp_path):
    out, _ = quick_demo
    settings = demo.Settings(out, scale="tiny", max_steps=2, router_max_steps=4, max_new_tokens=24, bootstrap=20)
    pipeline_times = {}

    class Recorder(demo.Pipeline):
        def run(self):
            pipeline_times.update(super().run())
            return self.times

    original = demo.Pipeline
    demo.Pipeline = Recorder
    try:
        demo.run(settings)
        assert all(info["cached"] for info in pipeline_times.values()), pipeline_times
        # a changed evaluation command (bootstrap) reruns that evaluation stage only
        pipeline_times.clear()
        demo.run(demo.Settings(out, scale="tiny", max_steps=2, router_max_steps=4, max_new_tokens=24, bootstrap=10))
    finally:
        demo.Pipeline = original
    redone = {name for name, info in pipeline_times.items() if not info["cached"]}
    assert redone == {f"evaluate_{mode}" for mode, _ in demo.MODES}


def test_failing_stage_is_named_and_real_data_is_never_overwritten(tmp_path):
    real = tmp_path / "out" / "mini_flare"
    real.mkdir(parents=True)
    (real / "training").mkdir()
    (real / "training" / "notes.txt").write_text("real data")
    with pytest.raises(demo.StageFailed, match="mini-FLARE did not write"):
        demo.run(demo.Settings(tmp_path / "out", scale="tiny"))
    assert (real / "training" / "notes.txt").read_text() == "real data"

    pipeline = demo.Pipeline(demo.Settings(tmp_path / "p"))
    with pytest.raises(demo.StageFailed, match=r"stage 'broken' failed \(exit 3\)"):
        pipeline.stage("broken", [[sys.executable, "-c", "import sys; sys.exit(3)"]])
    assert not (tmp_path / "p" / ".stages" / "broken.json").exists()


def test_a_stage_reruns_when_a_recipe_it_reads_changes(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("learning_rate: 2.0e-4\n")
    marker = tmp_path / "runs.txt"
    cmd = [[sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x')"]]
    for content in ("learning_rate: 2.0e-4\n", "learning_rate: 2.0e-4\n", "learning_rate: 1.0e-3\n"):
        recipe.write_text(content)
        demo.Pipeline(demo.Settings(tmp_path / "p")).stage("train", cmd, inputs=(recipe,))
    assert marker.read_text() == "xx"  # ran, skipped (same recipe), ran again (changed recipe)


def test_learning_verdict_uses_the_models_interval():
    from mevlip.demo.report import learning_verdict

    const = {"flare25": 0.2}
    assert learning_verdict({"flare25": 0.5, "flare25_ci95": [0.4, 0.6]}, const, True) == "beats (clearly)"
    assert learning_verdict({"flare25": 0.3, "flare25_ci95": [0.1, 0.5]}, const, True) == "beats (within noise)"
    assert learning_verdict({"flare25": 0.1, "flare25_ci95": [0.05, 0.15]}, const, True) == "below (clearly)"
    mae = {"flare25": 9.0}  # lower is better; an unparsable-number MAE is infinite under the organisers' rules
    assert learning_verdict({"flare25": 5.2, "flare25_ci95": [3.6, 7.6]}, mae, False) == "beats (clearly)"
    assert learning_verdict({"flare25": "Infinity", "flare25_ci95": ["Infinity", "Infinity"]}, mae, False) == \
        "below (clearly)"
    assert learning_verdict({"flare25": 12.0, "flare25_ci95": [None, None]}, mae, False) == "below (within noise)"
    assert learning_verdict({"flare25": 0.0}, {"flare25": 0.0}, True) == "ties"
    assert learning_verdict(None, const, True) == "n/a"


def test_stages_run_two_at_once_after_their_dependencies(tmp_path):
    """With jobs=2, stage a waits for a file that stage b writes: it passes only if both run at the same time;
    stage c depends on both and must see both files. With jobs=1 the same wait times out and a is named."""
    flag, seen = tmp_path / "b_started", tmp_path / "c_saw"
    wait_for_b = ("import pathlib, sys, time\n"
                  f"for _ in range(600):\n    if pathlib.Path({str(flag)!r}).exists(): sys.exit(0)\n"
                  "    time.sleep(0.1)\nsys.exit(7)")
    c_check = (f"import pathlib; pathlib.Path({str(seen)!r}).write_text("
               f"str(pathlib.Path({str(flag)!r}).exists() and pathlib.Path({str(tmp_path / 'a_done')!r}).exists()))")
    for jobs in (2, 1):
        flag.unlink(missing_ok=True)
        p = demo.Pipeline(demo.Settings(tmp_path / f"p{jobs}"), jobs=jobs)
        a = p.add("a", [[sys.executable, "-c", wait_for_b], [sys.executable, "-c",
                                                            f"open({str(tmp_path / 'a_done')!r}, 'w')"]])
        b = p.add("b", [[sys.executable, "-c", f"open({str(flag)!r}, 'w')"]])
        p.add("c", [[sys.executable, "-c", c_check]], deps=(a, b))
        if jobs == 2:
            times = p.run()
            assert set(times) == {"a", "b", "c"} and seen.read_text() == "True"
        else:
            with pytest.raises(demo.StageFailed, match=r"stage 'a' failed \(exit 7\)"):
                p.run()
            assert "c" not in p.times  # nothing starts after a failure
    with pytest.raises(ValueError, match="undeclared"):
        demo.Pipeline(demo.Settings(tmp_path / "q")).add("x", [], deps=("nope",))


def test_each_stage_gets_its_fixed_thread_count(tmp_path):
    p = demo.Pipeline(demo.Settings(tmp_path / "p", threads=1))
    show = "import os, torch; print('threads', os.environ['OMP_NUM_THREADS'], torch.get_num_threads())"
    p.add("one", [[sys.executable, "-c", show]])
    p.add("three", [[sys.executable, "-c", show]], threads=3)
    p.run()
    assert "threads 1 1" in (tmp_path / "p" / "logs" / "one.log").read_text()
    assert "threads 3 " in (tmp_path / "p" / "logs" / "three.log").read_text()  # torch caps it at the core count


def test_seeds_mode_shares_the_data_and_passes_each_seed_to_every_training(tmp_path):
    """Declared, not run: the stages of two seeds, their folders, seeds and dependencies."""
    settings = demo.Settings(tmp_path / "out", scale="tiny")
    p = demo.Pipeline(settings)
    data = demo.add_data_stages(p, settings, settings.out)
    for seed in (0, 3):
        folder = demo.seed_dir(settings.out, seed)
        demo.add_seed_stages(p, demo.replace(settings, seed=seed), settings.out, folder, data,
                             "" if seed == 0 else f"seed_{seed}/")
    assert demo.seed_dir(settings.out, 3) == settings.out / "seeds" / "seed_3"
    keys = set(p.stages)
    assert {k for k in keys if "mini_flare" in k} == {"mini_flare", "mini_flare_pretrain"}  # drawn once
    assert {"pretrain", "seed_3/pretrain", "seed_3/adapter_counting", "seed_3/evaluate_router"} <= keys
    for key, seed in (("standin", "0"), ("seed_3/standin", "3")):
        cmd = p.stages[key].commands[0]
        assert cmd[cmd.index("--seed") + 1] == seed
    assert "seed=3" in p.stages["seed_3/pretrain"].commands[0]
    adapter = p.stages["seed_3/adapter_general"].commands[0]
    assert adapter[adapter.index("--set") + 1] == "seed=3" and adapter[adapter.index("--only") + 1] == "general"
    router = p.stages["seed_3/router"].commands[0]
    assert router[router.index("--seed") + 1] == "3"
    assert str(settings.out / "seeds" / "seed_3" / "adapters") in adapter
    assert str(settings.out / "data") in adapter  # the shared preparation
    assert p.stages["seed_3/pretrain"].deps == ("prepare_pretrain", "seed_3/standin")
    assert set(p.stages["seed_3/predict_router"].deps) == {f"seed_3/adapter_{n}" for n in ("general", *TASK_NAMES)} | {
        "seed_3/router"}
    assert p.stages["seed_3/pretrain"].threads == 1 and p.stages["seed_3/router"].threads == 1
