"""Router scoring cases the mutation run (``make mutation``, docs/mutation.md) showed untested.

The forward pass is checked against gliclass's own ``ZeroShotClassificationPipeline`` scoring one question at a time
(the original's way), on untrained routers built in a second from the embedded MiniLM weights; the score maths and
the routing decision against hand-worked values.
"""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch

from mevlip.router.routing import (
    LABEL_TOKEN,
    SEP_TOKEN,
    Route,
    Router,
    RouterError,
    _normalize,
    check_supported,
    pool,
    probabilities,
    uni_inputs,
    uni_logits,
)
from mevlip.tasks import GENERAL_ADAPTER

QUESTIONS = ["How many cells are there?", "Which class does this lesion belong to? A. Benign B. Malignant C. Normal",
             "Locate the kidney stone in this ultrasound image and give its bounding box as [x1, y1, x2, y2]."]


# ----------------------------------------------------------------------------------------------- score maths
def test_probabilities_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]])
    multi, single = SimpleNamespace(problem_type="multi_label_classification"), SimpleNamespace(problem_type="x")
    torch.testing.assert_close(probabilities(single, logits), torch.tensor([[0.25, 0.75]]))  # softmax
    torch.testing.assert_close(probabilities(multi, logits), torch.tensor([[0.5, 0.75]]))  # sigmoid
    torch.testing.assert_close(probabilities(multi, logits, "softmax"), torch.tensor([[0.25, 0.75]]))
    torch.testing.assert_close(probabilities(single, logits, "sigmoid"), torch.tensor([[0.5, 0.75]]))
    assert probabilities(single, logits.half()).dtype == torch.float32
    with pytest.raises(ValueError, match="scoring must be one of softmax, sigmoid, got 'max'"):
        probabilities(single, logits, "max")


def test_uni_inputs_as_gliclass_writes_them():
    assert uni_inputs(["Q?"], ["a", "b"], prompt_first=True) == [f"{LABEL_TOKEN}a{LABEL_TOKEN}b{SEP_TOKEN}Q?"]
    assert uni_inputs(["Q?", "R"], ["a"], prompt_first=False) == [f"Q?{LABEL_TOKEN}a{SEP_TOKEN}",
                                                                   f"R{LABEL_TOKEN}a{SEP_TOKEN}"]


def test_avg_pooling_ignores_padding_and_other_strategies_use_gliclass():
    core = SimpleNamespace(config=SimpleNamespace(pooling_strategy="avg"))
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]])
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    # real tokens only; a sequence with none pools to zeros (the sum over no token, divided by at least 1)
    torch.testing.assert_close(pool(core, hidden, mask), torch.tensor([[2.0, 3.0], [0.0, 0.0]]))
    first = SimpleNamespace(config=SimpleNamespace(pooling_strategy="first"), pooler=lambda h: h[:, 0])
    torch.testing.assert_close(pool(first, hidden, mask), hidden[:, 0])


def test_normalize_only_when_the_model_normalizes():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    on = SimpleNamespace(config=SimpleNamespace(normalize_features=True), epsilon=1e-8)
    torch.testing.assert_close(_normalize(on, x), torch.tensor([[0.6, 0.8], [0.0, 0.0]]))
    off = SimpleNamespace(config=SimpleNamespace(normalize_features=False), epsilon=1e-8)
    assert _normalize(off, x) is x


def test_unsupported_gliclass_options_are_refused():
    ok = SimpleNamespace(architecture_type="uni-encoder")
    check_supported(ok)  # gliclass's defaults for the options it does not list
    with pytest.raises(RouterError, match="architecture 'encoder-decoder' is not supported"):
        check_supported(SimpleNamespace(architecture_type="encoder-decoder"))
    with pytest.raises(RouterError, match="GLiClass option use_lstm=True is not supported"):
        check_supported(SimpleNamespace(architecture_type="bi-encoder", use_lstm=True))
    with pytest.raises(RouterError, match="encoder_layer_id=3"):
        check_supported(SimpleNamespace(architecture_type="bi-encoder", encoder_layer_id=3))


# ----------------------------------------------------------------------------------------------- routing
class _Net(torch.nn.Module):
    """What Router needs of a GLiClassModel besides its forward: ``config`` and ``model``."""

    def __init__(self, **config):
        super().__init__()
        self.config = SimpleNamespace(**{"architecture_type": "uni-encoder",
                                         "problem_type": "single_label_classification", **config})

    @property
    def model(self):
        return self


class _Fixed(Router):
    """A router whose model pass returns fixed scores (the unit here is classify/route, not the forward)."""

    table: dict[str, list[float]] = {}

    def scores(self, questions, batch_size=64, progress=False):
        return torch.tensor([self.table[q] for q in questions]).reshape(len(questions), len(self.labels))


def _router(threshold=0.3, **kwargs) -> _Fixed:
    router = _Fixed(_Net(), None, None, ["classification", "counting"],
                    {"classification": "cls_adapter", "counting": "count_adapter"}, threshold=threshold, **kwargs)
    router.table = {"a": [0.2, 0.7], "b": [0.25, 0.2], "c": [0.3, 0.1]}
    return router


def test_route_thresholds_the_top_score_and_skips_empty_questions():
    router = _router()
    assert router.classify(["a", "b"]) == [("counting", pytest.approx(0.7)), ("classification", pytest.approx(0.25))]
    assert router.classify([]) == []
    routes = router.route(["a", "", "b", "c", "  "])
    assert [(r.task, r.adapter) for r in routes] == [
        ("counting", "count_adapter"), (None, GENERAL_ADAPTER), ("classification", GENERAL_ADAPTER),
        ("classification", "cls_adapter"),  # a score equal to the threshold routes to the task
        (None, GENERAL_ADAPTER)]
    assert routes[1] == Route(None, 0.0, GENERAL_ADAPTER) and routes[1].is_fallback and not routes[0].is_fallback
    assert [r.adapter for r in router.route(["a", "c"], threshold=0.8)] == [GENERAL_ADAPTER, GENERAL_ADAPTER]
    assert [r.adapter for r in _router(threshold=0.0).route(["b"])] == ["cls_adapter"]
    with pytest.raises(TypeError, match="question 1 is a int, expected str"):
        router.route(["a", 3])


def test_router_settings():
    router = _router(threshold=1)
    assert router.threshold == 1.0 and isinstance(router.threshold, float)
    assert router.labels == ["classification", "counting"] and router.label_texts == router.labels
    assert router.scoring_name == "softmax" and router.max_length == 512
    assert _Fixed(_Net(problem_type="multi_label_classification"), None, None, ["a"], {"a": "a"}).scoring_name \
        == "sigmoid"
    assert _router(scoring="sigmoid").scoring_name == "sigmoid"
    assert _Fixed(_Net(router_label_texts=["the a task"]), None, None, ["a"], {"a": "a"}).label_texts == ["the a task"]
    assert _Fixed(_Net(), None, None, ["a"], {"a": "a"}, label_texts=["given"]).label_texts == ["given"]
    with pytest.raises(ValueError, match="scoring must be one of softmax, sigmoid, got 'max'"):
        _router(scoring="max")
    with pytest.raises(ValueError, match="2 label texts for 1 labels"):
        _Fixed(_Net(), None, None, ["a"], {"a": "a"}, label_texts=["x", "y"])
    assert not router.model.training  # eval mode: no dropout


# ----------------------------------------------------------------------------------------------- forward parity
@pytest.fixture(scope="module", params=["uni-encoder", "bi-encoder"])
def untrained(request):
    from mevlip.router.train import RouterTrainConfig, build_model

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, tok, label_tok = build_model(RouterTrainConfig(architecture=request.param, seed=0))
    finally:
        torch.set_num_threads(before)
    return model, tok, label_tok


def test_batched_scores_equal_gliclass_alone(untrained):
    from gliclass import ZeroShotClassificationPipeline

    model, tok, label_tok = untrained
    labels = ["classification", "counting", "detection"]
    router = Router(model, tok, label_tok, labels, {x: x for x in labels}, scoring="sigmoid")
    batched = router.scores(QUESTIONS, batch_size=2)  # short and long questions share a padded batch
    pipe = ZeroShotClassificationPipeline(router.model, tok, classification_type="multi-label", device="cpu",
                                          progress_bar=False)
    alone = torch.tensor([[{x["label"]: x["score"] for x in pipe(q, labels, threshold=0.0)[0]}[label]
                           for label in labels] for q in QUESTIONS])
    torch.testing.assert_close(batched, alone, atol=2e-5, rtol=1e-4)
    # softmax: gliclass's single-label pipeline (the original's) gives the top label and its score
    router = Router(model, tok, label_tok, labels, {x: x for x in labels}, scoring="softmax")
    single = ZeroShotClassificationPipeline(router.model, tok, classification_type="single-label", device="cpu",
                                            progress_bar=False)
    tops = [single(q, labels)[0][0] for q in QUESTIONS]
    classified = router.classify(QUESTIONS, batch_size=2)
    assert [t for t, _ in classified] == [t["label"] for t in tops]
    assert [s for _, s in classified] == pytest.approx([t["score"] for t in tops], abs=2e-5)


# ----------------------------------------------------------------------------------------------- second run's survivors
def test_labels_of_unequal_lengths_score_as_gliclass_alone(untrained):
    """Label texts of different token lengths share one padded batch: the padding is masked as gliclass masks it
    (the labels above are one word piece each, so no padding there)."""
    from gliclass import ZeroShotClassificationPipeline

    model, tok, label_tok = untrained
    labels = ["counting", "multi_label_classification", "report generation: describe the findings"]
    router = Router(model, tok, label_tok, labels, {x: x for x in labels}, scoring="sigmoid")
    pipe = ZeroShotClassificationPipeline(router.model, tok, classification_type="multi-label", device="cpu",
                                          progress_bar=False)
    alone = torch.tensor([[{x["label"]: x["score"] for x in pipe(q, labels, threshold=0.0)[0]}[label]
                           for label in labels] for q in QUESTIONS])
    torch.testing.assert_close(router.scores(QUESTIONS, batch_size=2), alone, atol=2e-5, rtol=1e-4)


def test_the_router_moves_its_model_to_its_device(untrained):
    model, tok, label_tok = untrained
    router = Router(copy.deepcopy(model), tok, label_tok, ["a"], {"a": "a"}, device="meta")
    assert router.device == torch.device("meta")
    assert {p.device.type for p in router.model.parameters()} == {"meta"}


def test_a_progress_bar_only_when_asked(untrained, capsys):
    model, tok, label_tok = untrained
    router = Router(model, tok, label_tok, ["a", "b"], {"a": "a", "b": "b"})
    router.classify(QUESTIONS)
    assert capsys.readouterr().err == ""
    router.classify(QUESTIONS, progress=True)
    assert "routing" in capsys.readouterr().err


def test_questions_are_truncated_to_the_routers_max_length(untrained):
    model, tok, label_tok = untrained
    router = Router(model, tok, label_tok, ["a", "b"], {"a": "a", "b": "b"}, max_length=16)
    ids, mask = router._tokenize(tok, ["word " * 100, "short"])
    assert ids.shape == mask.shape == (2, 16) and mask[1].sum() < 16


# ----------------------------------------------------------------------------------------------- full run survivors
# (2026-12-03): each case below failed before on a mutant that every other test let through.
def test_avg_pooling_divides_by_the_real_token_count_even_for_one_token():
    core = SimpleNamespace(config=SimpleNamespace(pooling_strategy="avg"))
    hidden = torch.tensor([[[4.0, 6.0], [100.0, 100.0], [100.0, 100.0]]])
    # one real token: its own state, not half of it (the count is clamped at 1 only for a sequence with none)
    torch.testing.assert_close(pool(core, hidden, torch.tensor([[1, 0, 0]])), torch.tensor([[4.0, 6.0]]))


def test_normalize_uses_the_models_epsilon():
    core = SimpleNamespace(config=SimpleNamespace(normalize_features=True), epsilon=1e-3)
    # a vector shorter than epsilon is divided by epsilon (torch's F.normalize), not by its own length
    torch.testing.assert_close(_normalize(core, torch.tensor([[1e-5, 0.0]])), torch.tensor([[0.01, 0.0]]))


def _uni_core(normalize: bool, seen: dict) -> SimpleNamespace:
    """A GLiClassUniEncoder stand-in: identity projections, a scorer that records what it was given."""
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [9.0, 9.0]]])

    def scorer(text, classes, text_mask=None):
        seen["text"], seen["text_mask"] = text, text_mask
        return torch.tensor([[0.5, -0.25]])

    return SimpleNamespace(
        config=SimpleNamespace(pooling_strategy="avg", normalize_features=normalize), epsilon=1e-8, logit_scale=4.0,
        encoder_model=lambda ids, attention_mask: (hidden,),
        _extract_class_features=lambda h, ids, mask, n: (torch.ones(1, n, 2), None, h, torch.tensor([[1, 1, 0]])),
        dropout=lambda x: x, text_projector=lambda x: x, classes_projector=lambda x: x, scorer=scorer)


def test_uni_logits_scale_only_normalized_features_and_pass_the_token_mask():
    seen: dict = {}
    ids = torch.zeros((1, 3), dtype=torch.long)
    plain = uni_logits(_uni_core(False, seen), ids, torch.ones_like(ids), 2)
    torch.testing.assert_close(plain, torch.tensor([[0.5, -0.25]]))  # gliclass scales only normalised features
    torch.testing.assert_close(seen["text"], torch.tensor([[0.5, 1.0]]))  # mean of the two real tokens
    torch.testing.assert_close(seen["text_mask"], torch.tensor([[1, 1, 0]]))  # gliclass's attention scorer reads it
    scaled = uni_logits(_uni_core(True, seen), ids, torch.ones_like(ids), 2)
    torch.testing.assert_close(scaled, torch.tensor([[2.0, -1.0]]))
    torch.testing.assert_close(seen["text"], torch.tensor([[0.4472136, 0.8944272]]))  # (0.5, 1) / its length


def test_tokens_go_to_the_routers_device():
    def tokenizer(texts, **kwargs):
        assert kwargs == {"truncation": True, "max_length": 7, "padding": "longest", "return_tensors": "pt"}
        return {"input_ids": torch.ones((len(texts), 2), dtype=torch.long),
                "attention_mask": torch.ones((len(texts), 2), dtype=torch.long)}

    ids, mask = Router._tokenize(SimpleNamespace(max_length=7, device=torch.device("meta")), tokenizer, ["a"])
    assert ids.device.type == "meta" and mask.device.type == "meta" and ids.shape == mask.shape == (1, 2)


def test_a_score_exactly_at_the_threshold_routes_to_its_task():
    router = _router(threshold=0.25)  # 0.25 is exact in float32 (0.3 is not: 0.3 as float32 > 0.3)
    router.table = {"d": [0.25, 0.125], "e": [0.125, 0.2421875]}
    assert [(r.task, r.adapter) for r in router.route(["d", "e"])] == [
        ("classification", "cls_adapter"), ("counting", GENERAL_ADAPTER)]


def test_route_shows_no_progress_unless_asked(untrained, capsys):
    model, tok, label_tok = untrained
    router = Router(model, tok, label_tok, ["a", "b"], {"a": "a", "b": "b"})
    routes = router.route(QUESTIONS)
    assert len(routes) == 3 and capsys.readouterr().err == ""
    alone = router.route(QUESTIONS, batch_size=1)  # batching moves scores in the last float bits only
    assert [(r.task, r.adapter) for r in alone] == [(r.task, r.adapter) for r in routes]
    assert [r.score for r in alone] == pytest.approx([r.score for r in routes], abs=1e-5)
    router.route(QUESTIONS, progress=True)
    assert "routing" in capsys.readouterr().err
