"""``torchrun --nproc_per_node 2 docker_internvl/inference.py`` on CPU (gloo): the ranks split the records, rank 0
writes the one merged ``predictions.json``, identical to a single-process run's; a rerun resumes every rank."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scripts import load_script

from mevlip.synth import generate

REPO = Path(__file__).resolve().parents[1]
INFER = REPO / "docker_internvl" / "inference.py"
TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three datasets: single- and multi-image records, validation and test files."""
    root = tmp_path_factory.mktemp("torchrun_data")
    generate(root, "tiny", seed=3, datasets=["BUSI", "neojaundice", "dental"])
    return root


def _args(data, standin_dir, out):
    return ["--base_dataset_path", str(data), "--output_dir", str(out), "--device", "cpu", "--routing", "record",
            "--base_model", str(standin_dir), "--max_new_tokens", "6", "--no_progress", "--batch_size", "4"]


def _torchrun(data, standin_dir, out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", str(INFER),
                           *_args(data, standin_dir, out), *extra], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.slow
def test_two_ranks_write_the_single_process_predictions(data, standin_dir, tmp_path):
    single = load_script("docker_internvl/inference.py").main(_args(data, standin_dir, tmp_path / "single"))
    expected = json.loads((tmp_path / "single" / "predictions.json").read_text())

    done = _torchrun(data, standin_dir, tmp_path / "ranks")
    assert done.returncode == 0, done.stderr[-4000:]
    out = tmp_path / "ranks"
    assert json.loads((out / "predictions.json").read_text()) == expected
    summary = json.loads((out / "predictions.summary.json").read_text())
    assert summary["world_size"] == 2 and summary["shard"] is None
    assert summary["records"] == single["records"] == len(expected) and summary["answered_now"] == len(expected)
    # each rank answered its half (index % 2 == rank) into its own folder, with its own journal and lock
    halves = []
    for rank in range(2):
        details = (out / ".ranks" / f"rank-{rank}" / "predictions.details.jsonl").read_text().splitlines()
        indices = {json.loads(line)["i"] for line in details}
        assert indices and all(i % 2 == rank for i in indices)
        halves.append(indices)
        assert (out / ".ranks" / f"rank-{rank}" / "predictions.journal.jsonl").is_file()
    assert halves[0] | halves[1] == set(range(len(expected)))
    assert "rank 1 of 2" in done.stderr and "rank 0 of 2" in done.stderr

    # the same command again: every rank resumes its journal, nothing is generated, the merge is the same
    again = _torchrun(data, standin_dir, tmp_path / "ranks")
    assert again.returncode == 0, again.stderr[-4000:]
    summary = json.loads((out / "predictions.summary.json").read_text())
    assert summary["answered_now"] == 0 and summary["resumed"] == len(expected)
    assert json.loads((out / "predictions.json").read_text()) == expected

    # the ranks are the shards: hand-made shards on top are refused
    refused = _torchrun(data, standin_dir, tmp_path / "x", "--num_shards", "2")
    assert refused.returncode != 0 and "drop --num_shards" in refused.stderr
