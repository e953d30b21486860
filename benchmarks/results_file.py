"""Where each benchmark script writes its figures: ``benchmarks/results/<script>.json``.

``benchmarks/check_readme_figures.py`` reads these files back and checks every figure the READMEs quote from them.
Each file records the command line that produced it, the time and the machine's core count.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write_result(name: str, figures: dict, argv: list[str] | None = None, path: str | Path | None = None) -> Path:
    """Write ``figures`` with their provenance to ``benchmarks/results/<name>.json`` (or ``path``).

    Args:
        name: the script's name without ``.py`` (``bench_router``).
        figures: JSON-serialisable results.
        argv: the script's arguments (default: this process's ``sys.argv[1:]``).
        path: another file to write instead of the default.

    Returns:
        The file written.
    """
    args = sys.argv[1:] if argv is None else argv
    data = {"command": " ".join(["python", f"benchmarks/{name}.py", *map(shlex.quote, args)]),
            "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu_count": os.cpu_count(),
            **figures}
    target = Path(path) if path else RESULTS_DIR / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"results written to {target}")
    return target
