"""Loading a router prints nothing that is not about the router: no notice from transformers about GLiClass configs,
no deprecation notice from inside gliclass's import; the messages that do concern the user still pass."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from release_standins import build_plain_router, cached

from mevlip.router.routing import _ExpectedConfigNotice


def test_loading_a_router_is_quiet(tmp_path_factory):
    router = cached(tmp_path_factory, "release_router", build_plain_router)
    code = ("from mevlip.router import Router; "
            f"print(Router.from_pretrained({str(router)!r}).route(['How many cells?'])[0].task)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "to instantiate a model of type" not in run.stderr
    assert "torch.jit.script" not in run.stderr
    assert run.stdout.strip()  # it routed


def test_only_the_expected_notice_is_dropped():
    keep = _ExpectedConfigNotice()

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("transformers.configuration_utils", logging.WARNING, "f", 1, message, None, None)

    assert not keep.filter(record("You are using a model of type `GLiClass` to instantiate a model of type ``. ..."))
    assert keep.filter(record("You are using a model of type `bert` to instantiate a model of type `GLiClass`. ..."))
    assert keep.filter(record("Some weights of GLiClassModel were not initialized from the checkpoint"))
