"""Shared test fixtures: offline, CPU, a tiny mini-FLARE generated once per session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from mevlip.synth import generate  # noqa: E402

#: Modules whose functions memoise results (functools.lru_cache): the scorers and the token counter.
_MEMOISING = ("mevlip.metrics.profiles", "mevlip.metrics.text_metrics", "mevlip.metrics.green_rule",
              "mevlip.prepare.stats")


@pytest.fixture(autouse=True)
def _empty_caches():
    """Every test starts with empty result caches, so what it checks is the code, not a result an earlier test
    cached. Mutation testing needs it too: mutmut runs each mutant's tests in a fork of a process that has already
    run them, and a cached score would stand in for the mutated code (mutants of the GREEN rule survived so)."""
    import importlib

    for name in _MEMOISING:
        for value in vars(importlib.import_module(name)).values():
            if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", None) == name:
                value.cache_clear()


@pytest.fixture(autouse=True)
def _process_local_progress_lock():
    """Progress bars lock this process only. tqdm's default lock is a multiprocessing semaphore made once and shared
    with every process forked after it: mutmut forks each mutant's test run from one parent, kills a run that times
    out, and a run killed inside a bar left the semaphore held, so every later run that drew a bar hung until its
    own timeout (the data-preparation group, 2026-12-03)."""
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


@pytest.fixture(scope="session")
def mini_flare_tiny(tmp_path_factory):
    """A tiny mini-FLARE root (all 19 datasets, every split). Read-only: copy it before changing anything."""
    root = tmp_path_factory.mktemp("mini_flare_tiny")
    generate(root, scale="tiny", seed=0)
    return root


@pytest.fixture(scope="session")
def standin_dir(tmp_path_factory, mini_flare_tiny):
    """The tiny InternVL3-architecture stand-in (random weights), built once per session from mini-FLARE texts."""
    from mevlip.training.standin import build_standin

    return build_standin(tmp_path_factory.mktemp("standin"), data=mini_flare_tiny, seed=0)


@pytest.fixture
def flare(tmp_path, mini_flare_tiny):
    """A writable copy of the tiny mini-FLARE (zips get extracted and files damaged in it by the tests)."""
    import shutil

    root = tmp_path / "original_dataset"
    shutil.copytree(mini_flare_tiny, root)
    return root
