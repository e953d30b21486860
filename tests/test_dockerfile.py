"""The inference image builds from the repository root and rebuilds cheaply: layer order, model folder, build context.

No Docker engine runs here, so these tests read ``docker_internvl/Dockerfile`` and ``.dockerignore`` and check what
a build would do with them: the dependency layer depends on the requirements file alone, the model layer comes next
and the code last (a code or README edit then reuses both big layers from the cache); the models come from the
git-ignored ``models/`` folder the README's ``hf download`` commands fill; and the build context sends what the
Dockerfile copies and nothing of the local state (virtual environments, data, outputs, caches). ``.dockerignore`` is
evaluated with a re-implementation of Docker's matcher (moby/patternmatcher), checked on cases from its own tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker_internvl" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
REQUIREMENTS = "docker_internvl/requirements-inference.txt"


# --- the Dockerfile ------------------------------------------------------------------------------------------------

def instructions(text: str | None = None) -> list[tuple[str, str]]:
    """The Dockerfile's ``(INSTRUCTION, arguments)`` pairs in order, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text() if text is None else text
    lines = [line.strip() for line in text.replace("\\\n", " ").splitlines()]
    steps = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(step[0].upper(), step[1] if len(step) > 1 else "") for step in steps]


def copy_args(args: str) -> tuple[list[str], str]:
    """The sources and destination of a COPY: shell or JSON form, ``--chown=``-style flags dropped."""
    words = json.loads(args) if args.lstrip().startswith("[") else args.split()
    words = [w for w in words if not w.startswith("--")]
    return words[:-1], words[-1]


def layers(text: str | None = None) -> list[tuple[str, str]]:
    """The steps that make the image's content, in order: ``("COPY", source)`` for each source, ``("RUN", command)``."""
    out = []
    for name, args in instructions(text):
        if name in ("COPY", "ADD"):
            out += [(name, src) for src in copy_args(args)[0]]
        elif name == "RUN":
            out.append((name, " ".join(args.split())))
    return out


def _index(steps: list[tuple[str, str]], name: str, pattern: str) -> int:
    """The position of the only step ``name`` whose argument matches ``pattern``."""
    found = [i for i, (n, arg) in enumerate(steps) if n == name and re.search(pattern, arg)]
    assert len(found) == 1, f"expected one {name} matching {pattern!r}, found {[steps[i] for i in found]}"
    return found[0]


DEPS = ("RUN", r"pip install .*(-r|--requirement) +(\./)?requirements-inference\.txt")
MODELS = ("COPY", r"^models/?$")
PACKAGE = ("RUN", r"pip install .*--no-deps .*\.$")


def check_layer_order(text: str | None = None) -> None:
    """Dependencies, then the models, then the code; an AssertionError names the step out of place."""
    steps = layers(text)
    deps, models, package = _index(steps, *DEPS), _index(steps, *MODELS), _index(steps, *PACKAGE)
    copies = [i for i, (name, _) in enumerate(steps) if name in ("COPY", "ADD")]
    # anything else copied before the install would make each of its edits reinstall every dependency
    assert [steps[i] for i in copies if i < deps] == [("COPY", REQUIREMENTS)], \
        f"only {REQUIREMENTS} may be copied before the dependency install: {steps[:deps]}"
    assert deps < models, "the models must come after the dependency install"
    # anything copied before the models would make each of its edits copy the models again
    early = [steps[i] for i in copies if deps < i < models]
    assert not early, f"copied between the dependency install and the models: {early}"
    assert package > models and [i for i in copies if i > models], "the code comes after the models"


def test_layers_go_dependencies_then_models_then_code():
    check_layer_order()


REQ_COPY, MODELS_COPY = f"COPY {REQUIREMENTS} ./\n", "COPY models /app/models\n"


@pytest.mark.parametrize("mistake", [
    # the code copied with the requirements file: any code edit reinstalls every dependency
    lambda text: text.replace(REQ_COPY, f"COPY {REQUIREMENTS} README.md ./\n"),
    # the models after the code: any code edit copies ~16 GB again
    lambda text: text.replace(MODELS_COPY, "") + MODELS_COPY,
    # the models before the dependencies: a requirements edit copies them again
    lambda text: text.replace(MODELS_COPY, "").replace(REQ_COPY, MODELS_COPY + REQ_COPY),
    # a code file between the dependencies and the models
    lambda text: text.replace(MODELS_COPY, "COPY docker_internvl/predict.sh ./\n" + MODELS_COPY),
], ids=["code-with-requirements", "models-after-code", "models-before-deps", "code-before-models"])
def test_layer_order_check_catches_a_misplaced_layer(mistake):
    """The order check fails on each mistake it exists for (a check that cannot fail checks nothing)."""
    text = DOCKERFILE.read_text()
    assert REQ_COPY in text and MODELS_COPY in text
    broken = mistake(text)
    assert broken != text
    with pytest.raises(AssertionError):
        check_layer_order(broken)


def test_package_is_installed_after_its_sources():
    """``pip install --no-deps .`` needs pyproject.toml, README.md (its ``readme``) and mevlip/ already in place."""
    steps = layers()
    package = _index(steps, *PACKAGE)
    for source in ("pyproject.toml", "README.md", "mevlip"):
        assert _index(steps, "COPY", rf"^{re.escape(source)}/?$") < package


def test_models_come_from_the_git_ignored_models_folder():
    copies = [copy_args(args) for name, args in instructions() if name == "COPY"]
    models = [dest for sources, dest in copies if "models" in [s.rstrip("/") for s in sources]]
    assert models == ["/app/models"]
    assert not [s for sources, _ in copies for s in sources if s.rstrip("/").endswith("/models")], \
        "one model folder: models/ at the repository root"
    # predict.sh looks for the models where the image puts them
    assert 'MODELS_DIR="${MODELS_DIR:-/app/models}"' in (REPO / "docker_internvl" / "predict.sh").read_text()
    ignored = subprocess.run(["git", "check-ignore", "models/", "models/InternVL3-8B-hf/model.safetensors"],
                             cwd=REPO, capture_output=True, text=True)
    assert ignored.returncode == 0 and len(ignored.stdout.split()) == 2, "models/ must be git-ignored"
    tracked = subprocess.run(["git", "ls-files", "models"], cwd=REPO, capture_output=True, text=True, check=True)
    assert tracked.stdout == ""


def test_readme_downloads_into_the_folder_the_image_copies():
    """Every ``hf download --local-dir`` of the README fills a sub-folder of ``models/``."""
    dirs = re.findall(r"hf download \S+ --local-dir (\S+)", (REPO / "README.md").read_text())
    assert dirs and all(d.startswith("models/") and d.count("/") == 1 for d in dirs), dirs
    assert {"models/InternVL3-8B-hf", "models/FLARE-InternVL3-8B-hf", "models/FLARE-gliclass-small-v1.0"} <= set(dirs)


# --- .dockerignore -------------------------------------------------------------------------------------------------

Rule = tuple[bool, Callable[[str], bool], str]  # (is an exception "!...", matches a path, the pattern)


def _matcher(pattern: str) -> Callable[[str], bool]:
    """Docker's test of one cleaned pattern against a slash-separated path (moby/patternmatcher ``Pattern.match``).

    ``*`` and ``?`` stop at ``/``; ``**`` spans any number of folders (a ``/`` right after it is part of it);
    ``[...]`` is a character class and ``\\`` escapes the next character; the rest is literal. A pattern that starts
    with ``**`` and has no other wildcard matches by suffix, one that ends with it and has none before, by prefix.
    """
    regex, kind, i = "^", "exact", 0
    while i < len(pattern):
        start, ch, i = i, pattern[i], i + 1
        if ch == "*" and pattern.startswith("*", i):
            i += 1 + pattern.startswith("/", i + 1)
            if i == len(pattern):
                kind, regex = ("prefix", regex) if kind == "exact" else ("regexp", regex + ".*")
            else:
                kind, regex = "regexp", regex + "(.*/)?"
            if start == 0:
                kind = "suffix"
        elif ch == "*":
            kind, regex = "regexp", regex + "[^/]*"
        elif ch == "?":
            kind, regex = "regexp", regex + "[^/]"
        elif ch in ".+()|{}$":  # regular-expression characters that mean nothing to filepath.Match
            regex += "\\" + ch
        elif ch == "\\":
            if i < len(pattern):
                kind, regex, i = "regexp", regex + "\\" + pattern[i], i + 1
            else:
                regex += "\\\\"
        elif ch in "[]":
            kind, regex = "regexp", regex + ch
        else:
            regex += ch
    if kind == "exact":
        return lambda path: path == pattern
    if kind == "prefix":
        return lambda path: path.startswith(pattern[:-2])
    if kind == "suffix":
        suffix = pattern[2:]
        return lambda path: path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
    compiled = re.compile(regex + "$")
    return lambda path: compiled.match(path) is not None


def read_dockerignore(text: str | None = None) -> list[Rule]:
    """The rules of ``.dockerignore`` in order, read as Docker reads the file (moby/patternmatcher ``ReadAll``)."""
    text = DOCKERIGNORE.read_text() if text is None else text
    rules = []
    for line in text.splitlines():
        line = line.strip() if not line.startswith("#") else ""  # only a "#" in the first column starts a comment
        if not line:
            continue
        exception = line.startswith("!")
        pattern = line[1:].strip() if exception else line
        pattern = os.path.normpath(pattern) if pattern else pattern
        pattern = pattern[1:] if len(pattern) > 1 and pattern.startswith("/") else pattern  # / is the context root
        rules.append((exception, _matcher(pattern), pattern))
    return rules


def excluded(path: str, rules: list[Rule] | None = None) -> bool:
    """Whether the build context leaves ``path`` out (``PatternMatcher.MatchesOrParentMatches``).

    A rule applies when it matches the path or one of its parent folders; the last rule that applies wins.
    """
    rules = read_dockerignore() if rules is None else rules
    parts = os.path.normpath(path).split("/")
    candidates = ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]
    matched = False
    for exception, matches, _ in rules:
        if exception == matched and any(matches(c) for c in candidates):
            matched = not exception
    return matched


@pytest.mark.parametrize("ignore,path,expected", [
    ("*.pyc", "a.pyc", True),
    ("*.pyc", "mevlip/a.pyc", False),  # Docker's `*` does not reach into folders (unlike .gitignore)
    ("**/*.pyc", "mevlip/sub/a.pyc", True),
    ("**/*.pyc", "a.pyc", True),
    ("models/**/.cache", "models/InternVL3-8B-hf/.cache/huggingface/x.lock", True),
    ("models/**/.cache", "models/.cache", True),
    ("models/**/.cache", "models/InternVL3-8B-hf/config.json", False),
    ("demo_output*", "demo_output_seed1/results.json", True),
    ("/saves", "saves/x", True),
    ("saves", "llama_factory_internvl/saves/x", False),
    ("*\n!models", "models/a/b.safetensors", False),
    ("*\n!models\nmodels/**/.cache", "models/a/.cache/x", True),
    ("!models\n*", "models/a", True),  # the last rule that applies wins
    ("data/?.txt", "data/ab.txt", False),
    ("data/[ab].txt", "data/b.txt", True),
    # from moby/patternmatcher's own tests
    ("abc/**", "abc", False),
    ("abc/**", "abc/def/ghi", True),
    ("**/dir", "dir/file", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a*/b", "a/c/b", False),
    ("docs\n!docs/README.md", "docs/README.md", False),
    ("**\n!dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    ("**\n!util/docker/web\nutil/docker/web/foo", "util/docker/web/foo", True),
])
def test_the_matcher_follows_docker(ignore, path, expected):
    """The matcher agrees with Docker on the cases that decide this repository's context and on Docker's own."""
    assert excluded(path, read_dockerignore(ignore)) is expected


def copied_sources() -> list[str]:
    """Every path of the build context that the Dockerfile copies."""
    return [src.rstrip("/") for name, args in instructions() if name in ("COPY", "ADD")
            and not args.startswith("--from") for src in copy_args(args)[0]]


def test_context_holds_everything_the_image_copies():
    for src in copied_sources():
        assert src == "models" or (REPO / src).exists(), f"the Dockerfile copies {src}, which is not in the repository"
        assert not excluded(src), f".dockerignore leaves out {src}, which the Dockerfile copies"
        if (REPO / src).is_dir():
            tracked = subprocess.run(["git", "ls-files", src], cwd=REPO, capture_output=True, text=True, check=True)
            files = tracked.stdout.split()
            assert files and not [f for f in files if excluded(f)]
    # what a model folder holds, ours and the release's, is sent
    for path in ["models/InternVL3-8B-hf/model-00001-of-00004.safetensors", "models/InternVL3-8B-hf/config.json",
                 "models/adapters/general/adapter_model.safetensors", "models/task_classifier/model.safetensors",
                 "models/FLARE-InternVL3-8B-hf/internvl-all/lora/sft/adapter_config.json",
                 "models/FLARE-gliclass-small-v1.0/config.json"]:
        assert not excluded(path), path


@pytest.mark.parametrize("path", [
    ".venv/bin/python", ".git/HEAD", "demo_output/results.json", "demo_output_seed1/results.json",
    "original_dataset/Retinography/x.json", "__pycache__/x.pyc", "mevlip/__pycache__",
    "mevlip/__pycache__/flare.cpython-311.pyc", "mevlip/flare.pyc", ".pytest_cache/v/x", "mevlip/.ruff_cache/x",
    "mutants/mevlip/flare.py",
    "llama_factory_internvl/saves/internvl3-8b/adapters/general/adapter_model.safetensors",
    "llama_factory_internvl/data/train.json", "task_classifier/model/model.safetensors",
    "benchmarks/results/bench_router.json", "tests/test_dockerfile.py", "docs/fidelity.md", "saves/x",
    "models/InternVL3-8B-hf/.cache/huggingface/download/model.safetensors.lock", "models/adapters/.git/HEAD",
    "mevlip.egg-info/PKG-INFO", "build/lib/mevlip/flare.py", "docker_internvl/out_release/predictions.json",
    "FLARE_Test/Retinography/x.json", "out/predictions.json",
])
def test_context_leaves_out_local_state(path):
    assert excluded(path)


def test_context_sends_only_what_the_image_copies():
    """Walking this checkout as Docker would, every file sent lies under a path the Dockerfile copies."""
    rules, sources = read_dockerignore(), copied_sources()
    exceptions = [pattern for exception, _, pattern in rules if exception]
    sent = []
    for root, dirs, files in os.walk(REPO):
        rel = Path(root).relative_to(REPO).as_posix()
        rel = "" if rel == "." else rel + "/"
        # Docker skips an excluded folder unless an exception could re-include something inside it
        dirs[:] = [d for d in dirs if not excluded(rel + d, rules)
                   or any(p.startswith(rel + d + "/") for p in exceptions)]
        sent += [rel + f for f in files if not excluded(rel + f, rules)]
    assert sent
    stray = [f for f in sent if not any(f == s or f.startswith(s + "/") for s in sources)]
    assert not stray, f"sent to the builder but never copied: {stray[:20]}"
