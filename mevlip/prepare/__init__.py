"""Data preparation: FLARE -> LLaMA-Factory ShareGPT rows, ``dataset_info.json`` and the router set.

The library of ``llama_factory_internvl/scripts/data_preparation.py``, one module per concern:

* :mod:`~mevlip.prepare.core` - the run: per question file, rows per preset, task subsets, router set;
* :mod:`~mevlip.prepare.images` - zip extraction (a process pool), finding and checking each image;
* :mod:`~mevlip.prepare.io` - the output side: streamed JSON lists, ``dataset_info.json``, staged atomic writes;
* :mod:`~mevlip.prepare.stats` - counts, token lengths and the console summary.
"""

from mevlip.prepare.core import ANSWER_MODES, STATS_FILE, PrepareConfig, canonical_answer, default_workers, prepare
from mevlip.prepare.stats import format_summary

__all__ = ["ANSWER_MODES", "STATS_FILE", "PrepareConfig", "canonical_answer", "default_workers", "format_summary",
           "prepare"]
