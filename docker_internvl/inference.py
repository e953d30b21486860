"""Keeps ``python inference.py`` working as the original README runs it.

The command is :mod:`mevlip.commands.inference`,
installed as ``mevlip infer`` (the same options and ``--help``).
"""

import sys
from pathlib import Path

try:
    import mevlip  # noqa: F401
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mevlip.cli import run_cli  # noqa: E402
from mevlip.commands.inference import *  # noqa: E402, F403  (the script's names, for callers that import it)
from mevlip.commands.inference import main  # noqa: E402

if __name__ == "__main__":
    run_cli(main)
