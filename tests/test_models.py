"""Model factory: name checks, pretrained weights offline, channels_last, compile switch."""

from __future__ import annotations

import time

import pytest
import torch

from spark_lightning.errors import ConfigError
from spark_lightning.models import build_model


def test_any_smp_pair_by_override():
    net = build_model(arch="linknet", encoder="resnet18")
    assert type(net.model).__name__ == "Linknet"
    assert net(torch.zeros(1, 3, 33, 47)).shape == (1, 3, 33, 47)


def test_timm_encoder_by_tu_prefix():
    net = build_model(arch="unet", encoder="tu-resnet18")
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_wrong_arch_lists_valid_names():
    with pytest.raises(ConfigError, match=r"model.arch='unett'.*'segformer'.*'unet'.*tv_deeplabv3_mnv3"):
        build_model(arch="unett")


def test_wrong_encoder_lists_valid_names():
    with pytest.raises(ConfigError, match=r"model.encoder='resnet35'.*tu-<timm model>.*resnet34"):
        build_model(encoder="resnet35")
    with pytest.raises(ConfigError, match="timm has no model 'nonet'"):
        build_model(encoder="tu-nonet")


def test_pretrained_offline_fails_fast_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing cached
    start = time.monotonic()
    with pytest.raises(ConfigError, match="model.weights_path") as err:
        build_model(encoder="resnet18", encoder_weights="imagenet")
    assert time.monotonic() - start < 5
    assert "resnet18" in str(err.value)


def test_weights_path_loads_encoder(tmp_path):
    donor = build_model(encoder="resnet18")
    path = tmp_path / "encoder.pth"
    torch.save(donor.model.encoder.state_dict(), path)
    net = build_model(encoder="resnet18", encoder_weights="imagenet", weights_path=str(path))
    for a, b in zip(donor.model.encoder.state_dict().values(), net.model.encoder.state_dict().values()):
        assert torch.equal(a, b)
    torch.save({"foo": torch.zeros(1)}, path)
    with pytest.raises(ConfigError, match="shares no weight names"):
        build_model(encoder="resnet18", weights_path=str(path))
    with pytest.raises(ConfigError, match="model.weights_path"):
        build_model(encoder="resnet18", weights_path=str(tmp_path / "missing.pth"))


def test_channels_last_same_output():
    torch.manual_seed(0)
    plain = build_model(encoder="resnet18").eval()
    nhwc = build_model(encoder="resnet18", channels_last=True).eval()
    nhwc.load_state_dict(plain.state_dict())
    conv = next(m for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(plain(x), nhwc(x), atol=1e-4)


def test_a_compiled_network_saves_checkpoints_a_plain_one_loads():
    """model.compile=true compiles the forward, not the module: no ``_orig_mod.`` prefixes, so
    predict, export and init_from (plain networks) load a compiled run's checkpoints."""
    plain, compiled = build_model(encoder="resnet18"), build_model(encoder="resnet18", compile=True)
    assert list(plain.state_dict()) == list(compiled.state_dict())
    assert not any("_orig_mod" in k for k in compiled.state_dict())
    with torch.no_grad():
        for p in compiled.parameters():
            p.add_(0.5)
    plain.load_state_dict(compiled.state_dict())  # strict
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), compiled.state_dict().values()))


@pytest.mark.parametrize(("arch", "encoder", "inner"), [("unet", "resnet18", "encoder"),
                                                        ("tv_deeplabv3_mnv3", "none", "backbone")])
def test_encoder_property_for_lr_split(arch, encoder, inner):
    """``encoder`` is the pretrained-able part (smp's encoder, torchvision's backbone): what
    optimizer.encoder_lr_mult puts in its own, slower parameter group."""
    from spark_lightning.training.optim import param_groups

    net = build_model(arch=arch, encoder=encoder)
    assert net.encoder is getattr(net.model, inner)
    enc, rest = param_groups(net, lr=1.0, encoder_lr_mult=0.1)
    assert enc["lr"] == pytest.approx(0.1) and rest["lr"] == 1.0
    assert {id(p) for p in enc["params"]} == {id(p) for p in getattr(net.model, inner).parameters()}
    assert len(enc["params"]) + len(rest["params"]) == len(list(net.parameters()))


def test_channels_last_auto_follows_cuda():
    net = build_model(encoder="resnet18", channels_last="auto")
    assert net.channels_last == torch.cuda.is_available()
    with pytest.raises(ConfigError, match="model.channels_last='yes'"):
        build_model(encoder="resnet18", channels_last="yes")


@pytest.mark.parametrize("arch, encoder", [("unet", "resnet18"), ("fpn", "tu-mobilenetv3_small_100"), ("tiny", "none")])
def test_a_classification_head_on_any_smp_network(arch, encoder):
    """craft_classes adds smp's aux head (or tiny's): forward stays a segmentation network,
    forward_both adds one row of class logits per image, trained by its own gradient."""
    torch.manual_seed(0)
    net = build_model(arch=arch, encoder=encoder, num_classes=3, craft_classes=10, head_dropout=0.0)
    x = torch.randint(0, 256, (2, 3, 70, 50), dtype=torch.uint8)
    with torch.no_grad():
        masks, labels = net.eval().forward_both(x)
        assert torch.allclose(net(x), masks, atol=1e-6)  # export, TTA and sliding windows see masks only
    assert masks.shape == (2, 3, 70, 50) and labels.shape == (2, 10)
    masks, labels = net.train().forward_both(x)
    torch.nn.functional.cross_entropy(labels, torch.tensor([1, 7])).backward()
    head = [p for n, p in net.named_parameters() if "classif" in n]
    assert head and all(p.grad is not None and p.grad.abs().sum() > 0 for p in head)
    assert build_model(arch=arch, encoder=encoder, num_classes=3).forward_both(x)[1] is None


def test_a_head_on_torchvision_deeplab_is_one_line():
    with pytest.raises(ConfigError, match=r"head=classify needs a segmentation_models_pytorch network"):
        build_model(arch="tv_deeplabv3_mnv3", encoder="none", num_classes=3, craft_classes=10)
