"""BLEU-4 and ROUGE-L against their reference libraries (nltk, rouge_score) on seeded report-like pairs."""

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
