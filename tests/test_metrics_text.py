"""BLEU-4 and ROUGE-L against their reference libraries (nltk, rouge_score) on seeded report-like pairs."""

import math
import random
import warnings

import numpy as np
import pytest

from mevlip.metrics.text_metrics import bleu_counts, corpus_bleu_from_counts, rouge_l, tokenize

_WORDS = ("the heart is normal in size . the lungs are clear , no focal consolidation pleural effusion or "
          "pneumothorax . mild degenerative changes of the thoracic spine").split()


def _pairs(n, seed):
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        ref = rng.choices(_WORDS, k=rng.randint(3, 16))
        hyp = [w if rng.random() < 0.8 else rng.choice(_WORDS) for w in ref]
        hyp = hyp[: rng.randint(1, len(hyp))] if rng.random() < 0.3 else hyp
        pairs.append((" ".join(hyp), " ".join(ref)))
    return pairs + [("", "no acute findings ."), ("Heart: normal!", "heart normal")]


@pytest.mark.parametrize("size", [1, 3, 40, 200])
def test_corpus_bleu_equals_nltk(size):
    from nltk.translate.bleu_score import corpus_bleu

    pairs = _pairs(size, seed=size)[:size]
    ours = float(corpus_bleu_from_counts(np.sum([bleu_counts(h, r) for h, r in pairs], axis=0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns about zero n-gram overlaps
        theirs = corpus_bleu([[tokenize(r)] for _, r in pairs], [tokenize(h) for h, _ in pairs])
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-300)


def test_bleu_identity_and_empty():
    assert float(corpus_bleu_from_counts(np.array(bleu_counts("the lungs are clear .", "the lungs are clear .")))) \
        == pytest.approx(1.0)
    assert float(corpus_bleu_from_counts(np.array(bleu_counts("", "the lungs are clear .")))) == 0.0
    batch = corpus_bleu_from_counts(np.stack([np.array(bleu_counts("a b c d", "a b c d")),
                                              np.array(bleu_counts("x", "a b c d"))]))
    assert batch.shape == (2,) and batch[0] == pytest.approx(1.0) and batch[1] == 0.0


def test_rouge_l_equals_rouge_score():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for hyp, ref in _pairs(150, seed=3) + [("Héllo, World!!", "hello world"), ("", ""), ("x", "")]:
        assert rouge_l(hyp, ref) == pytest.approx(scorer.score(ref, hyp)["rougeL"].fmeasure)


# ------------------------------------------------------------- the organisers' own figures (FLARE25-QWen2.5VL)
#: Three pairs worked by hand below (whitespace tokens, lower-cased).
_HAND = [("the lungs are clear", "the lungs are clear"),
         ("no pleural effusion is seen", "small pleural effusion is seen"),
         ("heart size normal", "the heart size is normal")]


def _report_metrics(pairs, profile="flare25"):
    from mevlip.metrics.profiles import score_sample
    from mevlip.metrics.scores import aggregate, build_columns, point_weights

    rows = [score_sample(profile, "report_generation", pred, ref) for pred, ref in pairs]
    return {k: float(v[0]) for k, v in aggregate("report_generation", build_columns("report_generation", rows),
                                                   point_weights(len(rows)), profile).items()}


def test_organisers_bleu_averages_pair_precisions():
    """Their ``calculate_bleu_score``, by hand: precisions per pair (n = 1..4) are (1, 1, 1, 1), (4/5, 3/4, 2/3, 1/2)
    and (3/3, 1/2, 0/1, 0: no 4-gram); their means 14/15, 3/4, 5/9, 1/2 (product 7/36); lengths 12 vs 14."""
    from mevlip.metrics.text_metrics import flare25_bleu_from_stats, flare25_bleu_stats

    expected = math.exp(1 - 14 / 12) * (7 / 36) ** 0.25
    stats = np.sum([flare25_bleu_stats(p, r) for p, r in _HAND], axis=0)
    assert float(flare25_bleu_from_stats(stats)) == pytest.approx(expected, abs=1e-12)
    metrics = _report_metrics(_HAND)
    assert metrics["bleu_score"] == pytest.approx(expected, abs=1e-12)
    # nltk's corpus BLEU of the same pairs is another figure, under its own name
    nltk_value = float(corpus_bleu_from_counts(np.sum([bleu_counts(p, r) for p, r in _HAND], axis=0)))
    assert metrics["bleu4_nltk"] == pytest.approx(nltk_value) and abs(nltk_value - expected) > 0.01
    assert "bleu4" not in metrics
    # any averaged precision of 0 gives 0; longer predictions get no penalty; no pair gives 0
    assert float(flare25_bleu_from_stats(np.array(flare25_bleu_stats("a b c", "x y z")))) == 0.0
    long = flare25_bleu_stats("the lungs are clear today", "the lungs are clear")
    assert float(flare25_bleu_from_stats(np.array(long))) == pytest.approx((4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25)
    assert float(flare25_bleu_from_stats(np.zeros(7))) == 0.0


def test_organisers_clinical_efficacy():
    from mevlip.metrics.text_metrics import clinical_efficacy_pair

    pairs = [("no acute findings", "acute fracture"),       # normal ("acute" negated, then "no acute") vs critical
             ("severe disease", "abnormal pathology"),      # critical vs abnormal: half credit
             ("possible nodule", "questionable nodule"),   # uncertain ("question" is a substring) on both sides
             ("lungs are clear", "heart is normal")]        # normal, normal
    assert [clinical_efficacy_pair(p, r) for p, r in pairs] == [0.0, 0.5, 1.0, 1.0]
    assert _report_metrics(pairs)["clinical_efficacy"] == pytest.approx(0.625)


def test_green_severity_correlation_and_components_reported():
    from mevlip.metrics.green_rule import COMPONENTS, severity_correlation

    two = "mild effusion" + " x" * 40 + " severe consolidation"  # severities 2*0.3 and 3*1.0, far apart
    assert severity_correlation(two, two) == pytest.approx(1.0)
    assert severity_correlation("mild effusion", "mild effusion") == 0.5  # one pair: undefined correlation
    assert severity_correlation("clear", "pneumothorax") == 0.0  # no shared type
    metrics = _report_metrics([(two, two), ("mild effusion", "mild effusion"), ("clear", "pneumothorax")])
    assert metrics["green_severity_correlation"] == pytest.approx(0.5)
    assert {f"rule_{c}" for c in COMPONENTS} | {"green_flare25_rule", "bleu_score", "clinical_efficacy"} <= set(metrics)
