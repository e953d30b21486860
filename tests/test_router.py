"""The task router: data contract, save/reload, gliclass parity, threshold fallback, errors, and real learning.

The accuracy tests train for real (CLI, ~60 steps on a small mini-FLARE's training questions, CPU) and judge the
router on held-out validation questions and on hand-written paraphrases whose wordings the generator never
produces (``tests/data/router_paraphrases.json``).
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from scripts import load_script

from mevlip.router import Route, Router, RouterError, save_router
from mevlip.router_data import (
    RouterDataError,
    build_router_sets,
    collect_questions,
    label_set,
    load_router_set,
    write_router_set,
)
from mevlip.router_train import RouterTrainConfig, departures, question_stem, sample_weights, train_router
from mevlip.synth import generate
from mevlip.tasks import GENERAL_ADAPTER, TASK_NAMES, TASKS

REPO = Path(__file__).resolve().parent.parent
PARAPHRASES = REPO / "tests" / "data" / "router_paraphrases.json"
# Fast settings for the test run: top 3 text-encoder layers, label model fixed (the CLI default trains all).
QUICK = ["--max_steps", "60", "--trainable_layers", "3", "--freeze_label_encoder", "--threads", "1",
         "--no_progress"]


@contextlib.contextmanager
def torch_threads(n: int):
    """Run with ``n`` torch threads and restore the previous count (other tests share the process)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def mini_flare_small(tmp_path_factory) -> Path:
    """A small mini-FLARE (160 training rows per dataset), generated once (~6 s)."""
    root = tmp_path_factory.mktemp("mini_flare_small")
    generate(root, scale="small", seed=0)
    return root


@pytest.fixture(scope="session")
def trained_router(mini_flare_small, tmp_path_factory) -> tuple[Path, dict]:
    """A bi-encoder router trained through the CLI on the small set's training questions; returns (dir, report)."""
    main = load_script("task_classifier/train_task_classifier.py").main

    out = tmp_path_factory.mktemp("router") / "model"
    before = torch.get_num_threads()
    try:
        report = main(["--flare_root", str(mini_flare_small), "--output_dir", str(out), "--preset", "embedded",
                       "--paraphrases", str(PARAPHRASES), *QUICK])
    finally:
        torch.set_num_threads(before)
    return out, report


@pytest.fixture(scope="session")
def uni_router(mini_flare_tiny, tmp_path_factory) -> tuple[Path, object]:
    """A uni-encoder router after 3 training steps (tokens added to the vocabulary); returns (dir, model)."""
    train, _ = build_router_sets(mini_flare_tiny)
    cfg = RouterTrainConfig(architecture="uni-encoder", max_steps=3, epochs=0, batch_size=4)
    with torch_threads(1):
        model, tok, label_tok, _ = train_router(cfg, train, list(TASK_NAMES), progress=False)
    out = save_router(model, tok, label_tok, tmp_path_factory.mktemp("uni") / "router", list(TASK_NAMES))
    return out, (model, tok)


def _copy(router_dir: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "router"
    shutil.copytree(router_dir, dest)
    return dest


# ----------------------------------------------------------------------------------------------- data
def test_router_sets_follow_the_contract(mini_flare_tiny, tmp_path):
    train, test = build_router_sets(mini_flare_tiny)
    for rows in (train, test):
        assert len({r["text"] for r in rows}) == len(rows)  # de-duplicated by text
        assert all(r["all_labels"] == list(TASK_NAMES) and len(r["true_labels"]) == 1 for r in rows)
    assert {r["true_labels"][0] for r in train} == set(TASK_NAMES)
    questions = collect_questions(mini_flare_tiny, ["training"])
    assert {r["text"]: r["true_labels"][0] for r in train} == questions
    path = write_router_set(train, tmp_path / "task_classifier" / "train.json")
    assert load_router_set(path) == train
    assert label_set(train) == list(TASK_NAMES)


@pytest.mark.parametrize("row, message", [
    ({"text": "", "all_labels": ["counting"], "true_labels": ["counting"]}, "non-empty 'text'"),
    ({"text": "q", "all_labels": ["counting"], "true_labels": ["Counting"]}, "canonical task name"),
    ({"text": "q", "all_labels": ["counting"], "true_labels": ["segmentation"]}, "unknown TaskType"),
    ({"text": "q", "all_labels": ["counting"], "true_labels": ["counting", "regression"]}, "exactly one"),
])
def test_bad_router_rows_name_file_and_row(tmp_path, row, message):
    good = {"text": "How many cells?", "all_labels": ["counting"], "true_labels": ["counting"]}
    path = tmp_path / "train.json"
    path.write_text(json.dumps([good, row]))
    with pytest.raises(RouterDataError, match=rf"train\.json row 1: .*{re.escape(message)}"):
        load_router_set(path)


def _sentences(text: str) -> list[str]:
    """Sentences of 3+ words ending in . ? or ! (option and label names have no end mark, so they are left out)."""
    parts = re.split(r"(?<=[.?!;:])\s+|\n", text.lower())
    return [" ".join(p.split()) for p in parts if len(p.split()) >= 3 and p.strip()[-1:] in ".?!"]


def _generator_sentences() -> list[re.Pattern]:
    """Every sentence of every string in mevlip/synth/samples.py, f-string fields as wildcards."""
    tree = ast.parse((REPO / "mevlip" / "synth" / "samples.py").read_text())
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            texts.append("".join(v.value if isinstance(v, ast.Constant) else "\0" for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts.append(node.value)
    return [re.compile(".+".join(re.escape(x) for x in s.split("\0"))) for t in texts for s in _sentences(t)]


def test_paraphrases_cover_every_task_in_new_wordings(mini_flare_tiny):
    rows = load_router_set(PARAPHRASES)
    assert len(rows) >= 40
    counts = {t: sum(r["true_labels"][0] == t for r in rows) for t in TASK_NAMES}
    assert min(counts.values()) >= 5, counts
    generated = set(collect_questions(mini_flare_tiny, ["training", "validation-public", "validation-hidden"]))
    assert not generated & {r["text"] for r in rows}
    templates = _generator_sentences()
    assert len(templates) > 50  # the check below really reads the generator's templates
    reused = [(s, t.pattern) for r in rows for s in _sentences(r["text"]) for t in templates if t.fullmatch(s)]
    assert not reused, reused


# ----------------------------------------------------------------------------------------------- router
def test_save_reload_gives_identical_scores(uni_router, trained_router):
    router_dir, (model, tok) = uni_router
    questions = [r["text"] for r in load_router_set(PARAPHRASES)][:12]
    with torch_threads(1):
        live = Router(model, tok, None, list(TASK_NAMES), {t: t for t in TASK_NAMES}).scores(questions)
        loaded = Router.from_pretrained(router_dir).scores(questions)
        assert torch.equal(live, loaded)
        bi_dir, _ = trained_router
        first, second = Router.from_pretrained(bi_dir), Router.from_pretrained(bi_dir)
        # another batch size, other batch neighbours: equal up to float summation order
        torch.testing.assert_close(first.scores(questions), second.scores(questions, batch_size=5),
                                   atol=1e-6, rtol=1e-5)
    assert live.shape == (12, len(TASK_NAMES))


@pytest.mark.parametrize("which", ["uni", "bi"])
def test_batched_scores_equal_gliclass_pipeline_one_question_at_a_time(which, uni_router, trained_router):
    from gliclass import ZeroShotClassificationPipeline

    router = Router.from_pretrained(uni_router[0] if which == "uni" else trained_router[0])
    questions = [r["text"] for r in load_router_set(PARAPHRASES)][::4]  # short and long ones: padding differs
    with torch_threads(1):
        batched = router.scores(questions, batch_size=8)
        pipe = ZeroShotClassificationPipeline(router.model, router.tokenizer, classification_type="multi-label",
                                              device="cpu", progress_bar=False)
        alone = torch.tensor([[{x["label"]: x["score"] for x in pipe(q, router.labels, threshold=0.0)[0]}[label]
                               for label in router.labels] for q in questions])
    torch.testing.assert_close(batched, alone, atol=2e-5, rtol=1e-4)


def test_threshold_falls_back_to_the_general_adapter(trained_router, tmp_path):
    router = Router.from_pretrained(trained_router[0])
    questions = [r["text"] for r in load_router_set(PARAPHRASES)]
    classified = router.classify(questions)
    cut = sorted(s for _, s in classified)[len(classified) // 2]
    routes = router.route(questions, threshold=cut)
    assert [(r.task, r.score) for r in routes] == classified
    for r in routes:
        assert isinstance(r, Route)
        assert r.adapter == (TASKS[r.task].adapter if r.score >= cut else GENERAL_ADAPTER)
        assert r.is_fallback == (r.score < cut)
    assert 0 < sum(r.is_fallback for r in routes) < len(routes)
    assert router.threshold == 0.3 and all(not r.is_fallback for r in router.route(questions, threshold=0.0))
    edited = _copy(trained_router[0], tmp_path)
    cfg = json.loads((edited / "router_config.json").read_text())
    (edited / "router_config.json").write_text(json.dumps({**cfg, "threshold": 1.0}))
    assert all(r.is_fallback for r in Router.from_pretrained(edited).route(questions[:5]))
    assert not any(r.is_fallback for r in Router.from_pretrained(edited, threshold=0.0).route(questions[:5]))


MISMATCH = r"router_config\.json: labels .*/config\.json router_labels"


@pytest.mark.parametrize("edit, message", [
    (lambda c: {**c, "labels": list(reversed(c["labels"]))}, MISMATCH),
    (lambda c: {**c, "labels": c["labels"][:-1]}, MISMATCH),
    (lambda c: {k: v for k, v in c.items() if k != "labels"}, r"router_config\.json: 'labels' must be"),
    (lambda c: {**c, "threshold": 3}, r"router_config\.json: 'threshold'"),
])
def test_broken_router_folders_are_clear_errors(trained_router, tmp_path, edit, message):
    router_dir = _copy(trained_router[0], tmp_path)
    path = router_dir / "router_config.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    with pytest.raises(RouterError, match=message):
        Router.from_pretrained(router_dir)


def test_missing_router_files_are_named(trained_router, tmp_path):
    router_dir = _copy(trained_router[0], tmp_path)
    (router_dir / "router_config.json").unlink()
    with pytest.raises(RouterError, match="router_config.json: router config not found"):
        Router.from_pretrained(router_dir)


def test_router_handles_empty_and_bad_input(trained_router):
    router = Router.from_pretrained(trained_router[0])
    assert router.classify([]) == [] and router.route([]) == []
    with pytest.raises(TypeError, match="question 1 is a int"):
        router.classify(["How many cells?", 3])


def test_a_saved_router_needs_neither_the_encoder_folders_nor_the_hub(trained_router, tmp_path):
    router_dir = _copy(trained_router[0], tmp_path)
    config = json.loads((router_dir / "config.json").read_text())
    config.update(encoder_model="/nonexistent/encoder", label_model_name="/nonexistent/label_model")
    (router_dir / "config.json").write_text(json.dumps(config))
    questions = [r["text"] for r in load_router_set(PARAPHRASES)][:6]
    with torch_threads(1):
        torch.testing.assert_close(Router.from_pretrained(router_dir).scores(questions),
                                   Router.from_pretrained(trained_router[0]).scores(questions), atol=0, rtol=0)


def test_stem_balance_weighs_tasks_then_question_wordings():
    texts = ["What is the grade? A: x, B: y", "What is the grade? A. y B. x", "What is the grade?\nA. x\nB. y",
             "Is it benign or malignant?", "How many cells?", "Count the cells."]
    targets = [0, 0, 0, 0, 1, 1]
    assert question_stem(texts[0]) == question_stem(texts[1]) == question_stem(texts[2]) == "what is the grade?"
    assert question_stem("Question: Which pathologies are present on tooth 46? Options: a") == \
        question_stem("Which pathologies are present on tooth 11?")
    weights = sample_weights(texts, targets, "stem")
    assert sum(weights[:4]) == pytest.approx(1.0) and sum(weights[4:]) == pytest.approx(1.0)
    assert weights[3] == pytest.approx(0.5) and weights[0] == pytest.approx(0.5 / 3)  # 2 wordings in task 0
    assert sample_weights(texts, targets, "full")[:4] == [0.25] * 4


def test_paper_alpha_is_reported_as_a_departure():
    text = "\n".join(departures(RouterTrainConfig(focal_alpha=1.0, lr=1e-5)))
    assert "negative labels" in text and "encoder:" in text and "lr:" not in text


# ----------------------------------------------------------------------------------------------- learning
def test_cli_trains_a_router_that_generalises(trained_router):
    router_dir, report = trained_router
    for name in ("config.json", "model.safetensors", "router_config.json", "report.json", "report.md",
                 "confusion_test.png", "confusion_paraphrases.png", "label_tokenizer/tokenizer_config.json"):
        assert (router_dir / name).is_file(), name
    assert not list(router_dir.glob("*.bin"))  # safetensors only
    test, para = report["evaluations"]["test"], report["evaluations"]["paraphrases"]
    assert report["training"]["last_loss"] < report["training"]["first_loss"]
    assert test["n"] > 300 and test["accuracy"] >= 0.99, test["error_rows"]
    assert test["unseen"]["n"] > 20 and test["unseen"]["accuracy"] >= 0.95
    assert para["accuracy"] >= 0.95, para["error_rows"]
    for task in TASK_NAMES:  # every task type is learned, not only the frequent ones
        assert para["per_class"][task]["recall"] >= 0.8, (task, para["per_class"][task])
    saved = json.loads((router_dir / "report.json").read_text())
    assert saved["evaluations"]["paraphrases"]["accuracy"] == para["accuracy"]
    assert "below_threshold" in saved["evaluations"]["test"]


def test_an_untrained_router_is_near_chance(uni_router):
    """The learning test above is meaningful: 3 steps of training do not route the paraphrases."""
    router = Router.from_pretrained(uni_router[0])
    rows = load_router_set(PARAPHRASES)
    with torch_threads(1):
        predicted = router.classify([r["text"] for r in rows])
    hits = sum(t == r["true_labels"][0] for (t, _), r in zip(predicted, rows, strict=True))
    assert hits / len(rows) < 0.6


def test_route_questions_cli_reports_accuracy(trained_router, mini_flare_tiny, tmp_path):
    main = load_script("task_classifier/route_questions.py").main

    out = tmp_path / "routed.json"
    with torch_threads(1):
        summary = main(["--router_dir", str(trained_router[0]), "--output", str(out), "--questions",
                        str(mini_flare_tiny / "validation-public"), str(PARAPHRASES)])
    rows = json.loads(out.read_text())
    assert len(rows) == summary["n"] and summary["accuracy"] >= 0.9
    flare = [r for r in rows if r["source"].endswith("_questions_val.json")]
    assert flare and all("ImageName" in r and r["true_task"] in TASK_NAMES for r in flare)
    assert all(r["adapter"] in (TASKS[r["task"]].adapter, GENERAL_ADAPTER) for r in rows)
    strings = tmp_path / "questions.json"
    strings.write_text(json.dumps(["How many cells are there?", "Describe the heart."]))
    with torch_threads(1):
        plain = main(["--router_dir", str(trained_router[0]), "--output", str(out), "--questions", str(strings)])
    assert plain["n"] == 2 and "accuracy" not in plain
