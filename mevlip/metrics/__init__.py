"""FLARE 2025 Task 5 metrics: the organisers' rules (profile ``flare25``) and corrected ones (``strict``).

Two steps (style.md item 2): :mod:`~mevlip.metrics.profiles` scores each sample (parsed prediction, parsed
target, per-sample values); :mod:`~mevlip.metrics.scores` aggregates any slice, and bootstrap resamples, with
numpy. Modules:

* :mod:`~mevlip.metrics.flare25_parsing` - the organisers' answer extraction (FLARE25-QWen2.5VL regexes);
* :mod:`~mevlip.metrics.matching` - IoU and the prediction-order greedy box matcher;
* :mod:`~mevlip.metrics.green_rule` - ``green_flare25_rule``, the rule-based score the organisers call "GREEN";
* :mod:`~mevlip.metrics.green_llm` - real GREEN, the LLM judge (GPU; ``--green_model``);
* :mod:`~mevlip.metrics.text_metrics` - BLEU-4 and ROUGE-L;
* :mod:`~mevlip.metrics.records` - ground truth, predictions and key matching;
* :mod:`~mevlip.metrics.evaluate` / :mod:`~mevlip.metrics.report` - the pipeline and its output files.

The differences between the profiles are listed in :mod:`mevlip.metrics.profiles` (``STRICT_DIFFERENCES``).
"""

from mevlip.metrics.evaluate import EvalConfig, evaluate
from mevlip.metrics.profiles import PROFILES, STRICT_DIFFERENCES, score_sample
from mevlip.metrics.scores import HIGHER_IS_BETTER, PRIMARY

__all__ = ["EvalConfig", "HIGHER_IS_BETTER", "PRIMARY", "PROFILES", "STRICT_DIFFERENCES", "evaluate", "score_sample"]
