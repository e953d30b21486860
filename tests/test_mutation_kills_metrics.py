"""Metrics cases the mutation run (``make mutation``, docs/mutation.md) showed untested.

Expected values are worked out by hand (means, counts, the organisers' formulas as written in
``shared/flare_format.md`` and the docstrings) or come from an independent implementation named in the test.
"""

import pytest

import mevlip.metrics.green_llm as green_llm
from mevlip.metrics.evaluate import EvalConfig, score_samples
from mevlip.metrics.records import MatchResult, Sample


class _FakeJudge:
    """Stands in for the LLM judge: records what evaluation asks and answers fixed scores (the unit here is
    evaluation's use of the judge, not the model, which tests/test_metrics_green.py runs for real)."""

    calls: list = []

    def __init__(self, model, batch_size, max_length, max_new_tokens):
        self.calls.append(("init", model, batch_size, max_length, max_new_tokens))

    def score(self, references, candidates, progress=False):
        self.calls.append(("score", list(references), list(candidates)))
        return [0.25, 0.75][: len(references)]


def test_llm_green_scores_only_report_samples_and_lands_on_them(monkeypatch):
    monkeypatch.setattr(green_llm, "GreenJudge", _FakeJudge)
    _FakeJudge.calls = []
    samples = [Sample("k0", "iu", "validation-public", "report_generation", "Heart normal.", "Heart is normal.", "ok"),
               Sample("k1", "busi", "validation-public", "classification", "B", "B", "ok"),
               Sample("k2", "iu", "validation-hidden", "report_generation", "No effusion.", ["No", "effusion."],
                      "ok")]
    config = EvalConfig("root", "pred.json", bootstrap=0, green_model="judge-dir", green_batch_size=3,
                        green_max_length=99, green_max_new_tokens=7)
    profiles, rows = score_samples(MatchResult(samples=samples), config)
    # the raw texts go to the judge (a list prediction as JSON text, as the organisers' as_text writes it)
    asked = ("score", ["Heart normal.", "No effusion."], ["Heart is normal.", '["No", "effusion."]'])
    assert _FakeJudge.calls == [("init", "judge-dir", 3, 99, 7), asked]
    assert [r["flare25"].get("green_llm") for r in rows] == [0.25, None, 0.75]
    assert [r["strict"].get("green_llm") for r in rows] == [0.25, None, 0.75]
    for profile in ("flare25", "strict"):
        assert profiles[profile]["tasks"]["report_generation"]["metrics"]["green_llm"] == pytest.approx(0.5)
    _FakeJudge.calls = []
    score_samples(MatchResult(samples=samples[1:2]), config)  # no report sample: the judge is never loaded
    assert _FakeJudge.calls == []
    score_samples(MatchResult(samples=samples), EvalConfig("root", "pred.json", bootstrap=0))
    assert _FakeJudge.calls == []
