"""Import the repository's command-line scripts (which live outside the package) by path, to call ``main(argv)``."""

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_script(relpath: str):
    """The module of a script such as ``docker_internvl/inference.py`` (loaded once, cached in ``sys.modules``)."""
    name = "script_" + relpath.replace("/", "_").removesuffix(".py")
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / relpath)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
