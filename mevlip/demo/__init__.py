"""``make demo``: the whole pipeline on the embedded default (``python -m mevlip.demo``), and its report.

* :mod:`~mevlip.demo.run` - the stages, their scheduling and caching, one seed or several;
* :mod:`~mevlip.demo.report` - ``results.md`` / ``seeds.md`` (``python -m mevlip.demo.report`` merges and compares).

Nothing is re-exported here: importing the package would import ``report`` before ``python -m`` runs it.
"""
