"""What a network costs (spark_lightning/models/cost.py), checked against a second count, and
the limits that stop a run before it starts."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from spark_lightning import CONF_DIR
from spark_lightning.errors import ConfigError
from spark_lightning.models.cost import check_cost, meta_network, network_cost


def _hook_count(net: torch.nn.Module, size: int) -> int:
    """A second, independent count: 2 x multiply-adds of every convolution and linear layer,
    from the shapes their forward hooks see (what U-Nets on CNN encoders are made of)."""
    total = 0

    def conv(module, inputs, output):
        nonlocal total
        kh, kw = module.kernel_size
        total += 2 * output.numel() * (module.in_channels // module.groups) * kh * kw

    def linear(module, inputs, output):
        nonlocal total
        total += 2 * output.numel() * module.in_features

    hooks = [m.register_forward_hook(conv if isinstance(m, torch.nn.Conv2d) else linear)
             for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        net.eval()(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return total


@pytest.mark.parametrize("name", ["tiny", "unet_efficientnet_lite0"])
def test_flops_agree_with_a_second_count_and_meta_counts_like_cpu(name):
    model = {**OmegaConf.to_container(OmegaConf.load(f"{CONF_DIR}/model/{name}.yaml")), "channels_last": False}
    meta = network_cost(meta_network(model, 3), 96)
    model["encoder_weights"] = None
    net = meta_network(model, 3).to_empty(device="cpu")  # the same network with real (uninitialised) tensors
    cpu = network_cost(net, 96)
    assert meta == cpu  # the meta device counts what a real forward does
    assert meta["gflops"] * 1e9 == pytest.approx(_hook_count(net, 96), rel=1e-6)
    assert meta["gmacs"] == pytest.approx(meta["gflops"] / 2)
    assert meta["params"] == sum(p.numel() for p in net.parameters()) > 0


def test_flops_grow_with_the_square_of_the_side():
    model = {**OmegaConf.to_container(OmegaConf.load(f"{CONF_DIR}/model/tiny.yaml")), "channels_last": False}
    small, large = (network_cost(meta_network(model, 3), s)["gflops"] for s in (64, 128))
    assert large == pytest.approx(4 * small, rel=0.02)


def test_limits_stop_with_one_line():
    cost = {"params": 3_850_000, "gflops": 45.2, "gmacs": 22.6, "size": 1024, "counter": "x"}
    check_cost(cost, {"max_params": 30e6, "max_gflops": 100}, "model unet/x")  # within both
    with pytest.raises(ConfigError, match=r"model unet/x has 3.85 M parameters, above cost.max_params=1 M"):
        check_cost(cost, {"max_params": 1e6}, "model unet/x")
    with pytest.raises(ConfigError, match=r"needs 45.20 GFLOPs per 1024x1024 image, above cost.max_gflops=40"):
        check_cost(cost, {"max_gflops": 40}, "model unet/x")
    check_cost(cost, {"max_gflops": 40, "unit": "macs"}, "model unet/x")  # 22.6 G multiply-adds: within
    with pytest.raises(ConfigError, match="cost.unit='gops'"):
        check_cost(cost, {"unit": "gops"}, "model unet/x")


def test_the_plan_prints_the_cost_and_a_limit_stops_the_run(tiny_root, tmp_path, caplog):
    from spark_lightning.run.plan import resolve_train

    from .conftest import tiny_train_config

    caplog.set_level("INFO")
    resolve_train(tiny_train_config(tiny_root, tmp_path, ["cost.size=256"]))
    assert "M parameters" in caplog.text and "per 256x256 image (torch.utils.flop_counter)" in caplog.text
    with pytest.raises(ConfigError, match=r"model tiny/none has 0.00 M parameters, above cost.max_params"):
        resolve_train(tiny_train_config(tiny_root, tmp_path / "b", ["cost.max_params=10"]))
