"""The authors' released artefacts run through our inference as downloaded: adapters in the release's folders and a
plain GLiClass task classifier scored as the original scored it (single-label softmax, threshold 0.3).

The release itself cannot be fetched here (no network); :mod:`release_standins` builds stand-ins in exactly its
layouts, and the tests run them end to end.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from release_standins import build_plain_router, build_release_adapters, cached, one_thread
from scripts import load_script

from mevlip.inference.layout import (
    EXPECTED_ADAPTERS,
    RELEASE_FOLDERS,
    RELEASE_GENERAL_FOLDER,
    AdapterLayoutError,
    describe,
    find_adapters,
)
from mevlip.inference.run import plan
from mevlip.router import RELEASE_LABELS, Router, RouterError
from mevlip.synth import generate
from mevlip.tasks import GENERAL_ADAPTER, TASK_NAMES, TASKS

QUESTIONS = ["How many cells are in this image?", "Which option describes the lesion? A. benign B. malignant",
             "Describe the findings of this chest X-ray.", "Give the boxes of every tooth with a cavity.",
             "What is the bone loss ratio?", "Which pathologies are present? Options: caries, implant"]


@pytest.fixture(scope="session")
def release_adapters(tmp_path_factory, standin_dir):
    """The eight adapters laid out as AmalSaqib/flare-internvl (the original's /app/models/FLARE-InternVL3-8B-hf)."""
    return cached(tmp_path_factory, "release_adapters", lambda out: build_release_adapters(standin_dir, out))


@pytest.fixture(scope="session")
def release_router(tmp_path_factory):
    """A plain GLiClass uni-encoder folder as MaiAShaaban/flare-gliclass-small-v1.0 (no router_config.json)."""
    return cached(tmp_path_factory, "release_router", build_plain_router)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three datasets: classification, multi-label classification and counting questions."""
    root = tmp_path_factory.mktemp("release_data")
    generate(root, "tiny", seed=5, datasets=["BUSI", "chestdr", "neurips22cell"])
    return root


def _link_layout(src: Path, dest: Path, folders: dict[str, str]) -> Path:
    """A layout made of links to ``src``'s adapters: ``folders`` maps a new relative folder to a source folder."""
    for new, old in folders.items():
        (dest / new).parent.mkdir(parents=True, exist_ok=True)
        (dest / new).symlink_to(src / old, target_is_directory=True)
    return dest


# ----------------------------------------------------------------------------------------------- adapters layout
def test_release_layout_is_read_as_downloaded(release_adapters):
    layout = find_adapters(release_adapters)
    assert layout.layout == "release" and layout.absent == {}
    assert list(layout.folders) == list(EXPECTED_ADAPTERS)  # general first; .cache/ is not an adapter
    assert layout.folders[GENERAL_ADAPTER] == release_adapters / "internvl-all" / "lora" / "sft"
    for task in TASK_NAMES:
        assert layout.folders[TASKS[task].adapter] == release_adapters / task  # the release names = our task names
    assert RELEASE_FOLDERS["multi_label_classification"] == "multi_label_classification"


def test_our_layout_and_ambiguous_or_empty_folders(release_adapters, tmp_path):
    ours = _link_layout(release_adapters, tmp_path / "ours", {n: RELEASE_FOLDERS[n] for n in EXPECTED_ADAPTERS})
    layout = find_adapters(ours)
    assert layout.layout == "ours" and layout.folders == {n: ours / n for n in EXPECTED_ADAPTERS}
    both = _link_layout(release_adapters, tmp_path / "both", {"general": RELEASE_GENERAL_FOLDER,
                                                              RELEASE_GENERAL_FOLDER: RELEASE_GENERAL_FOLDER})
    with pytest.raises(AdapterLayoutError, match="two general adapters"):
        find_adapters(both)
    (tmp_path / "empty" / "classification").mkdir(parents=True)
    with pytest.raises(AdapterLayoutError, match=r"empty: no LoRA adapter .*internvl-all/lora/sft/"):
        find_adapters(tmp_path / "empty")
    with pytest.raises(AdapterLayoutError, match="adapters folder not found"):
        find_adapters(tmp_path / "nowhere")
    pickled = tmp_path / "pickled" / "general"
    shutil.copytree(release_adapters / RELEASE_GENERAL_FOLDER, pickled)
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    with pytest.raises(AdapterLayoutError, match=r"general: no adapter_model\.safetensors .*adapter_model\.bin"):
        find_adapters(pickled.parent)


def test_missing_adapters_are_reported_with_their_fallback(release_adapters, tmp_path):
    partial = _link_layout(release_adapters, tmp_path / "partial",
                           {RELEASE_FOLDERS[n]: RELEASE_FOLDERS[n] for n in EXPECTED_ADAPTERS if n != "counting"})
    layout = find_adapters(partial)
    assert layout.missing() == ["counting"] and "counting not found" in layout.absent["counting"]
    lines = "\n".join(describe(layout, "router"))
    assert f"{'counting':28s} -> general ({partial / RELEASE_GENERAL_FOLDER}): adapter 'counting' missing " \
           f"({partial / 'counting'} not found)" in lines
    no_general = _link_layout(release_adapters, tmp_path / "no_general", {"classification": "classification"})
    lines = describe(find_adapters(no_general), "record")
    assert any(line.strip().startswith("counting") and "the base model (no adapter)" in line for line in lines)
    assert describe(None, "router") == ["adapters: none given (--adapters_dir unset): the base model answers "
                                        "every question"]


# ----------------------------------------------------------------------------------------------- router
@pytest.mark.parametrize("architecture", ["uni-encoder", "bi-encoder"])
def test_plain_gliclass_router_scores_as_the_original_pipeline(architecture, release_router, tmp_path):
    with one_thread():
        folder = release_router if architecture == "uni-encoder" else build_plain_router(tmp_path / "bi", architecture)
        assert not (folder / "router_config.json").exists()
        _compare_with_pipeline(folder)
    if architecture == "bi-encoder":  # its label tokenizer: label_model_name, else label_tokenizer/ in the folder
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "label_model_name": "BAAI/bge-small-en-v1.5"}))
        with pytest.raises(RouterError, match=r"label tokenizer 'BAAI/bge-small-en-v1\.5' cannot be loaded offline "
                                              r".*put it in .*bi/label_tokenizer"):
            Router.from_pretrained(folder)
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(config["label_model_name"]).save_pretrained(folder / "label_tokenizer")
        assert Router.from_pretrained(folder).label_tokenizer is not None


def _compare_with_pipeline(folder: Path) -> None:
    from gliclass import ZeroShotClassificationPipeline

    router = Router.from_pretrained(folder, scoring="softmax")
    assert router.label_texts == list(RELEASE_LABELS) and router.labels == [
        "classification", "detection", "regression", "counting", "instance_detection", "multi_label_classification",
        "report_generation"]
    assert router.threshold == 0.3 and router.adapters == {t: TASKS[t].adapter for t in router.labels}
    batched = router.scores(QUESTIONS, batch_size=4)
    torch.testing.assert_close(batched.sum(-1), torch.ones(len(QUESTIONS)))  # a softmax over the seven labels
    # The original: one single-label pipeline call per question with its label strings; it returns the arg-max.
    original = ZeroShotClassificationPipeline(router.model, router.tokenizer, classification_type="single-label",
                                              device="cpu", progress_bar=False)
    for question, row in zip(QUESTIONS, batched, strict=True):
        top = original(question, list(RELEASE_LABELS), threshold=0.1)[0][0]
        assert router.label_texts[int(row.argmax())] == top["label"]
        assert float(row.max()) == pytest.approx(top["score"], abs=2e-6)
    router.scoring = "sigmoid"
    sigmoid = router.scores(QUESTIONS)
    multi = ZeroShotClassificationPipeline(router.model, router.tokenizer, classification_type="multi-label",
                                           device="cpu", progress_bar=False)
    expected = torch.tensor([[{x["label"]: x["score"] for x in multi(q, list(RELEASE_LABELS), threshold=0.0)[0]}[x]
                              for x in RELEASE_LABELS] for q in QUESTIONS])
    torch.testing.assert_close(sigmoid, expected, atol=2e-6, rtol=1e-5)
    assert not torch.allclose(sigmoid, batched)


def test_threshold_applies_to_the_softmax_and_empty_questions_go_to_general(release_router):
    router = Router.from_pretrained(release_router, scoring="softmax")
    with one_thread():
        classified = router.classify(QUESTIONS)
        cut = sorted(s for _, s in classified)[len(classified) // 2]
        routes = router.route(["", *QUESTIONS, " \n\t"], threshold=cut)
        untrained = router.route(QUESTIONS)
    assert routes[0] == routes[-1] == (None, 0.0, GENERAL_ADAPTER) and routes[0].is_fallback
    for (task, score), route in zip(classified, routes[1:-1], strict=True):
        assert (route.task, route.score) == (task, score)
        assert route.adapter == (TASKS[task].adapter if score >= cut else GENERAL_ADAPTER)
    assert {r.adapter for r in routes[1:-1]} - {GENERAL_ADAPTER}  # some go to a task adapter
    # untrained, seven labels: every softmax top score is far below 0.3, so the original's rule sends all to general
    assert all(r.is_fallback for r in untrained)
    with pytest.raises(TypeError, match="question 1 is a int"):
        router.route(["", 3])


def test_route_questions_cli_takes_the_plain_folder(release_router, tmp_path):
    main = load_script("task_classifier/route_questions.py").main
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps([*QUESTIONS, "   "]))
    summary = main(["--router_dir", str(release_router), "--questions", str(questions), "--output",
                    str(tmp_path / "routed.json")])
    rows = json.loads((tmp_path / "routed.json").read_text())
    assert summary["scoring"] == "softmax" and summary["empty"] == 1
    assert summary["below_threshold"] == len(QUESTIONS)  # untrained: no softmax top score reaches 0.3
    assert rows[-1]["task"] is None and rows[-1]["adapter"] == GENERAL_ADAPTER
    assert all(r["task"] in TASK_NAMES and r["scoring"] == "softmax" for r in rows[:-1])


# ----------------------------------------------------------------------------------------------- end to end
def _infer(data, standin_dir, out, *extra):
    return load_script("docker_internvl/inference.py").main([
        "--base_dataset_path", str(data), "--output_dir", str(out), "--device", "cpu", "--base_model",
        str(standin_dir), "--max_new_tokens", "5", "--batch_size", "4", "--no_progress", *extra])


def _details(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.details.jsonl").read_text().splitlines()]


def test_release_artefacts_run_end_to_end(data, standin_dir, release_adapters, release_router, tmp_path, caplog):
    router = Router.from_pretrained(release_router, scoring="softmax")
    scores = [s for _, s in router.classify([item.question for item in plan(data).items])]
    cut = sorted(scores)[len(scores) // 2]  # half the records to a task adapter, half below it to general
    with caplog.at_level(logging.INFO, logger="inference"):
        summary = _infer(data, standin_dir, tmp_path / "routed", "--adapters_dir", str(release_adapters),
                         "--router_dir", str(release_router), "--threshold", str(cut))
    details = _details(tmp_path / "routed")
    assert summary["records"] == len(details) == len(scores) and summary["errors"] == summary["missing"] == 0
    assert all(d["error"] is None and d["raw"] is not None for d in details)  # every record answered
    assert summary["router_scoring"] == "softmax" and summary["adapters_loaded"] == list(EXPECTED_ADAPTERS)
    assert summary["adapter_folders"][GENERAL_ADAPTER] == str(release_adapters / RELEASE_GENERAL_FOLDER)
    for d in details:  # the adapter each record used: its routed task's, or general below the threshold
        assert d["adapter"] == (TASKS[d["routed_task"]].adapter if d["score"] >= cut else GENERAL_ADAPTER), d
    used = {d["adapter"] for d in details}
    assert GENERAL_ADAPTER in used and used - {GENERAL_ADAPTER}
    log = caplog.text
    assert f"adapters: release layout in {release_adapters} (8 loaded)" in log
    assert f"{'general':28s} -> general ({release_adapters / RELEASE_GENERAL_FOLDER})" in log
    assert f"top softmax score is below {cut:.2f}" in log
    # The fallback records were answered by internvl-all/lora/sft: a run with the general adapter only agrees on
    # them, and disagrees somewhere on the others (the adapters differ, so the check can fail).
    _infer(data, standin_dir, tmp_path / "general", "--adapters_dir", str(release_adapters), "--routing", "general")
    general = {d["i"]: d["raw"] for d in _details(tmp_path / "general")}
    assert all(d["raw"] == general[d["i"]] for d in details if d["adapter"] == GENERAL_ADAPTER)
    assert any(d["raw"] != general[d["i"]] for d in details if d["adapter"] != GENERAL_ADAPTER)


def test_strict_refuses_a_missing_adapter(data, standin_dir, release_adapters, tmp_path, caplog):
    partial = _link_layout(release_adapters, tmp_path / "partial",
                           {RELEASE_FOLDERS[n]: RELEASE_FOLDERS[n] for n in EXPECTED_ADAPTERS if n != "counting"})
    with pytest.raises(SystemExit, match=r"--strict: adapter\(s\) counting missing \(.*counting not found\)"):
        _infer(data, standin_dir, tmp_path / "out", "--adapters_dir", str(partial), "--routing", "record", "--strict")
    assert not (tmp_path / "out" / "predictions.json").exists()
    with pytest.raises(SystemExit, match=r"--strict: adapter\(s\) general, classification, .* missing \(no "):
        _infer(data, standin_dir, tmp_path / "out", "--routing", "record", "--strict")
    # --routing general needs the general adapter only
    with caplog.at_level(logging.INFO, logger="inference"):
        summary = _infer(data, standin_dir, tmp_path / "general", "--adapters_dir", str(partial), "--routing",
                         "general", "--strict", "--splits", "validation-public")
    assert summary["errors"] == 0 and set(summary["per_adapter"]) == {GENERAL_ADAPTER}
    assert f"{'general':28s} -> general ({partial / RELEASE_GENERAL_FOLDER})" in caplog.text
    with pytest.raises(SystemExit, match="--adapters_dir: .*adapters folder not found"):
        _infer(data, standin_dir, tmp_path / "out", "--adapters_dir", str(tmp_path / "nowhere"), "--routing", "record")
