"""Stage 3, the task classifier (TC): a GLiClass router that sends each question to a task adapter.

- :mod:`~mevlip.router.routing`: :class:`Router` (load a router folder, score, classify and route questions in
  batches), :func:`save_router`, the label strings of the authors' release;
- :mod:`~mevlip.router.data`: the router sets (data preparation's contract files, or FLARE question files) and the
  leave-one-dataset-out folds;
- :mod:`~mevlip.router.train`: the training loop and every setting (:class:`~mevlip.router.train.RouterTrainConfig`);
  :mod:`~mevlip.router.augment`, :mod:`~mevlip.router.labels`: wording augmentation and the label texts scored;
- :mod:`~mevlip.router.report`, :mod:`~mevlip.router.lodo`: evaluation, ``report.md``/``report.json``, and the
  leave-one-dataset-out measure; :mod:`~mevlip.router.portable`: no absolute path in a router folder.

The scripts use ``from mevlip.router import Router`` (re-exported below); the rest is imported from its module.
"""

from mevlip.router.routing import (
    DEFAULT_THRESHOLD,
    RELEASE_LABELS,
    SCORINGS,
    Route,
    Router,
    RouterError,
    save_router,
)

__all__ = ["DEFAULT_THRESHOLD", "RELEASE_LABELS", "SCORINGS", "Route", "Router", "RouterError", "save_router"]
