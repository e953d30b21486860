"""Which device inference runs on: ``--device`` checked before anything loads, so a wrong one is one line, not a
traceback from deep inside torch.

``auto`` (the default) is the first CUDA GPU when one is visible. Without one it stops and says so: an 8B model on a
CPU takes hours, so a CPU run must be asked for (``--device cpu``), never fallen into.
"""

from __future__ import annotations

import re

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_CUDA = re.compile(r"cuda(?::(\d+))?")


class DeviceError(ValueError):
    """A ``--device`` that names no device, or a GPU that is not there; the message says what to pass instead."""


def resolve_device(spec: str, cuda_count: int | None = None) -> str:
    """The torch device string for ``--device spec``.

    Args:
        spec: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (case and surrounding blanks ignored).
        cuda_count: visible CUDA GPUs (default: ``torch.cuda.device_count()``, asked only for ``auto`` and ``cuda``).

    Raises:
        DeviceError: an unknown device, no GPU for ``auto``/``cuda``, or an index past the visible GPUs.
    """
    text = str(spec).strip().lower()
    if text == "cpu":
        return "cpu"
    match = _CUDA.fullmatch(text)
    if text != "auto" and match is None:
        raise DeviceError(f"--device {spec!r} is not a device; use {DEVICE_CHOICES}")
    if cuda_count is None:
        import torch

        cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cuda_count == 0:
        raise DeviceError(f"--device {spec}: no CUDA GPU is visible (for Docker: --gpus; check nvidia-smi); pass "
                          "--device cpu (DEVICE=cpu for predict.sh) to run on the CPU, which is slow for an 8B model")
    index = int(match.group(1)) if match is not None and match.group(1) is not None else 0
    if index >= cuda_count:
        raise DeviceError(f"--device {spec}: only {cuda_count} CUDA GPU(s) visible (cuda:0 to cuda:{cuda_count - 1})")
    return f"cuda:{index}"
