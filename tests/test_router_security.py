"""Model folders never run code: a crafted router folder is refused before gliclass reads it, and the base model's
``auto_map`` is ignored.

gliclass 0.1.21 loads an ``encoder_config`` of a ``model_type`` transformers does not know with
``AutoConfig.from_pretrained(encoder_model, trust_remote_code=True)``; a router ``config.json`` pointing
``encoder_model`` at a folder with a ``configuration_*.py`` runs that file. The tests use a configuration file that
writes a marker when imported; a control run shows gliclass itself does run it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from release_standins import build_plain_router, cached
from scripts import load_script

from mevlip.router import Router, RouterError

REPO = Path(__file__).resolve().parents[1]
REFUSED = r"config\.json: {key} model_type 'evil_encoder' is not a transformers architecture; .*refused"


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory):
    return cached(tmp_path_factory, "release_router", build_plain_router)


def _code_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A model folder whose config runs ``configuration_evil.py``, which writes a marker file when imported."""
    folder, marker = tmp_path / "evil_encoder", tmp_path / "MARKER"
    folder.mkdir()
    (folder / "configuration_evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('code ran')\n"
        "from transformers import PretrainedConfig\n\n\nclass EvilConfig(PretrainedConfig):\n"
        "    model_type = 'evil_encoder'\n")
    (folder / "config.json").write_text(json.dumps({"model_type": "evil_encoder", "hidden_size": 384,
                                                    "auto_map": {"AutoConfig": "configuration_evil.EvilConfig"}}))
    return folder, marker


def _crafted(router_dir: Path, tmp_path: Path, key: str = "encoder_config") -> tuple[Path, Path]:
    """A copy of a plain router whose ``key`` names the code folder's model type (and its ``encoder_model``)."""
    code, marker = _code_folder(tmp_path)
    crafted = tmp_path / "router"
    shutil.copytree(router_dir, crafted)
    config = json.loads((crafted / "config.json").read_text())
    if key == "encoder_config":
        config["encoder_config"]["model_type"] = "evil_encoder"
        config["encoder_model"] = str(code)
    else:  # the label model of a bi-encoder
        config.update(label_model_config={**config["encoder_config"], "model_type": "evil_encoder"},
                      label_model_name=str(code))
    (crafted / "config.json").write_text(json.dumps(config))
    return crafted, marker


def test_gliclass_alone_runs_the_crafted_code(router_dir, tmp_path):
    """Control: the attack is real, so the refusal below is what keeps the marker away."""
    crafted, marker = _crafted(router_dir, tmp_path)
    code = f"from gliclass import GLiClassModelConfig\nGLiClassModelConfig.from_pretrained({str(crafted)!r})"
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}
    subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize("key", ["encoder_config", "label_model_config"])
def test_router_refuses_a_folder_that_would_run_code(router_dir, tmp_path, key):
    crafted, marker = _crafted(router_dir, tmp_path, key)
    with pytest.raises(RouterError, match=REFUSED.format(key=key)):
        Router.from_pretrained(crafted)
    assert not marker.exists()


def test_clis_stop_with_one_line(router_dir, tmp_path):
    crafted, marker = _crafted(router_dir, tmp_path)
    questions = tmp_path / "q.json"
    questions.write_text(json.dumps(["How many cells?"]))
    route = load_script("task_classifier/route_questions.py").main
    with pytest.raises(SystemExit, match=REFUSED.format(key="encoder_config")) as err:
        route(["--router_dir", str(crafted), "--questions", str(questions), "--output", str(tmp_path / "r.json")])
    assert "\n" not in str(err.value)
    auto_map = tmp_path / "auto_map"
    shutil.copytree(router_dir, auto_map)
    config = json.loads((auto_map / "config.json").read_text())
    (auto_map / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoConfig": "x.Y"}}))
    with pytest.raises(RouterError, match="'auto_map' asks to run code"):
        Router.from_pretrained(auto_map)
    (auto_map / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(RouterError, match="not a GLiClass model config"):
        Router.from_pretrained(auto_map)
    assert not marker.exists()


def test_no_loading_code_asks_for_remote_code():
    sources = [p for folder in ("mevlip", "docker_internvl", "task_classifier") for p in (REPO / folder).rglob("*.py")]
    assert len(sources) > 20
    offenders = [str(p) for p in sources if re.search(r"trust_remote_code\s*=\s*True", p.read_text())]
    assert not offenders


def test_base_model_auto_map_is_not_run(standin_dir, tmp_path):
    from mevlip.inference.vlm import VLM, VLMConfig

    code, marker = _code_folder(tmp_path)
    base = tmp_path / "base"
    base.mkdir()
    for item in standin_dir.iterdir():
        (base / item.name).symlink_to(item)
    (base / "config.json").unlink()
    config = json.loads((standin_dir / "config.json").read_text())
    evil = "configuration_evil.EvilConfig"
    (base / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoConfig": evil,
                                                                         "AutoModelForImageTextToText": evil}}))
    shutil.copy(code / "configuration_evil.py", base / "configuration_evil.py")
    vlm = VLM(VLMConfig(base_model=str(base), device="cpu"))
    assert type(vlm.model).__name__ == "InternVLForConditionalGeneration" and not marker.exists()
