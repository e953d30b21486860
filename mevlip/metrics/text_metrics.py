"""Secondary report-generation metrics: corpus BLEU-4 as nltk computes it, ROUGE-L as rouge_score computes it, and
the organisers' own BLEU and clinical efficacy (FLARE25-QWen2.5VL ``utils/metrics.py``).

Both are re-implemented here (a few lines each) because importing ``nltk`` (which ``rouge_score`` also imports)
pulls in scipy.stats and costs 3-9 s per run on a busy 2-core machine; the tests check both against the real
libraries (``nltk.translate.bleu_score.corpus_bleu`` and ``rouge_score.rouge_scorer.RougeScorer``).

* BLEU-4: nltk's ``modified_precision`` (clipped n-gram matches over hypothesis n-grams, denominator at least 1),
  one reference, closest reference length, brevity penalty, uniform weights, no smoothing (nltk ``method0``: a
  zero precision becomes ``sys.float_info.min``; no unigram match gives 0). Counts are kept per sample so that any
  slice or bootstrap resample gets the exact corpus BLEU by summing them. Tokens: lower-cased words and
  punctuation marks (``\\w+|[^\\w\\s]``), no tokenizer download needed.
* ROUGE-L: F-measure of the longest common subsequence on rouge_score's default tokens (lower-cased, runs of
  ``[a-z0-9]``), ``use_stemmer=False``; 0 when either side has no token.
* ``bleu_score``, the organisers' ``calculate_bleu_score``: not corpus BLEU. Tokens are ``text.lower().split()``;
  each pair's modified n-gram precision (0 for a prediction without n-grams) is averaged over the pairs, n = 1..4;
  the brevity penalty compares the summed lengths (1 if the predictions are longer, 0 if they are empty); any
  averaged precision of 0 makes the score 0. Kept per pair as :data:`FLARE25_BLEU_COLUMNS` numbers so that a slice
  or a bootstrap resample sums them.
* ``clinical_efficacy``, the organisers' ``calculate_clinical_efficacy_score``: each text falls in the first of
  critical / abnormal / normal / uncertain one of whose terms it contains (substring) without "no ", "not " or
  "without" in the 20 characters before its first occurrence, else normal; a pair scores 1 when both fall in the
  same category, 0.5 when both are critical or abnormal, else 0; the mean over pairs.
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from functools import lru_cache

import numpy as np

_TOKEN = re.compile(r"\w+|[^\w\s]")
_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")
#: Columns of a BLEU count row: clipped matches and totals for n = 1..4, hypothesis and reference lengths.
BLEU_COLUMNS = 10
_LOG_TINY = math.log(sys.float_info.min)


def tokenize(text: str) -> list[str]:
    """BLEU tokens: lower-cased words and punctuation marks."""
    return _TOKEN.findall(text.lower())


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(zip(*(tokens[i:] for i in range(n)), strict=False)) if len(tokens) >= n else Counter()


@lru_cache(maxsize=65536)
def bleu_counts(hypothesis: str, reference: str) -> tuple[int, ...]:
    """nltk's corpus-BLEU statistics of one pair (see :data:`BLEU_COLUMNS`)."""
    hyp, ref = tokenize(hypothesis), tokenize(reference)
    numerators, denominators = [], []
    for n in range(1, 5):
        counts, ref_counts = _ngrams(hyp, n), _ngrams(ref, n)
        numerators.append(sum(min(c, ref_counts[g]) for g, c in counts.items()))
        denominators.append(max(1, sum(counts.values())))
    return (*numerators, *denominators, len(hyp), len(ref))


def corpus_bleu_from_counts(counts: np.ndarray) -> np.ndarray:
    """Corpus BLEU-4 from summed counts.

    Args:
        counts: ``(..., 10)`` summed :func:`bleu_counts` rows (one row per slice or bootstrap resample).

    Returns:
        ``(...,)`` BLEU-4 values, equal to nltk's ``corpus_bleu`` on the same pairs.
    """
    counts = np.asarray(counts, dtype=np.float64)
    num, den = counts[..., 0:4], counts[..., 4:8]
    hyp_len, ref_len = counts[..., 8], counts[..., 9]
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(num > 0, np.log(np.where(num > 0, num, 1.0) / np.where(den > 0, den, 1.0)), _LOG_TINY)
        bp = np.where(hyp_len > ref_len, 1.0,
                      np.where(hyp_len > 0, np.exp(1.0 - ref_len / np.where(hyp_len > 0, hyp_len, 1.0)), 0.0))
    bleu = bp * np.exp(0.25 * logp.sum(axis=-1))
    return np.where(num[..., 0] > 0, bleu, 0.0)


def _lcs_length(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


@lru_cache(maxsize=65536)
def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F-measure of one pair (0.0 when either side has no token)."""
    hyp, ref = _ROUGE_TOKEN.findall(hypothesis.lower()), _ROUGE_TOKEN.findall(reference.lower())
    if not hyp or not ref:
        return 0.0
    lcs = _lcs_length(ref, hyp)
    p, r = lcs / len(hyp), lcs / len(ref)
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


#: Columns of an organisers' BLEU row: 1 (the pair), modified precisions for n = 1..4, prediction and reference length.
FLARE25_BLEU_COLUMNS = 7


@lru_cache(maxsize=65536)
def flare25_bleu_stats(prediction: str, reference: str) -> tuple[float, ...]:
    """One pair's share of the organisers' ``bleu_score`` (see :data:`FLARE25_BLEU_COLUMNS`)."""
    pred, ref = prediction.lower().split(), reference.lower().split()
    precisions = []
    for n in range(1, 5):
        counts, ref_counts = _ngrams(pred, n), _ngrams(ref, n)
        total = sum(counts.values())
        precisions.append(sum((counts & ref_counts).values()) / total if total else 0.0)
    return (1.0, *precisions, float(len(prediction.split())), float(len(reference.split())))


def flare25_bleu_from_stats(stats: np.ndarray) -> np.ndarray:
    """The organisers' ``bleu_score`` from summed :func:`flare25_bleu_stats` rows.

    Args:
        stats: ``(..., 7)`` sums (one row per slice or bootstrap resample).

    Returns:
        ``(...,)`` values; 0 for a slice without pairs, as the organisers' function returns for empty lists.
    """
    stats = np.asarray(stats, np.float64)
    pairs, pred_len, ref_len = stats[..., 0], stats[..., 5], stats[..., 6]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_p = stats[..., 1:5] / pairs[..., None]
        bp = np.where(pred_len > ref_len, 1.0, np.where(pred_len == 0, 0.0, np.exp(1 - ref_len / pred_len)))
        bleu = bp * np.exp(np.log(np.where(mean_p > 0, mean_p, 1.0)).mean(axis=-1))
    return np.where((pairs > 0) & (mean_p > 0).all(axis=-1), bleu, 0.0)


_CE_TERMS = {
    "critical": ("emergency", "urgent", "critical", "acute", "severe"),
    "abnormal": ("abnormal", "abnormality", "pathology", "disease", "disorder"),
    "normal": ("normal", "unremarkable", "clear", "no acute", "negative"),
    "uncertain": ("possible", "probable", "suspicious", "concerning", "question"),
}


def _ce_category(text: str) -> str:
    low = text.lower()
    for category, terms in _CE_TERMS.items():
        for term in terms:
            position = low.find(term)
            if position >= 0 and not any(neg in low[max(0, position - 20):position] for neg in ("no ", "not ",
                                                                                                 "without")):
                return category
    return "normal"


@lru_cache(maxsize=65536)
def clinical_efficacy_pair(prediction: str, reference: str) -> float:
    """One pair's organisers' clinical efficacy: 1 same category, 0.5 both critical/abnormal, else 0."""
    pred, ref = _ce_category(prediction), _ce_category(reference)
    if pred == ref:
        return 1.0
    return 0.5 if {pred, ref} <= {"critical", "abnormal"} else 0.0
