"""Training: the LLaMA-Factory recipes, the local stand-in model and the adapter runs.

* :mod:`~mevlip.training.recipes` - the recipes, generated from one base dict
  (``python -m mevlip.training.recipes``);
* :mod:`~mevlip.training.standin` - a tiny InternVL3-architecture model built offline;
* :mod:`~mevlip.training.adapters` - the eight adapter runs (``llamafactory-cli train``), behind ``train_adapters.py``.

Nothing is re-exported here: importing the package would import ``recipes`` before ``python -m`` runs it.
"""
