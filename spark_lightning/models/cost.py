"""What a network costs at a stated input size: its parameters, and the FLOPs and multiply-adds
of one forward pass over one image. FLOPs are counted by ``torch.utils.flop_counter`` (2 per
multiply-add of convolutions and matrix products; normalisation, activations and resizing are
not counted), on a copy of the network built on the meta device: no memory, no compute, the
same count on a laptop as on a GPU. SPARK 2026 scores cost in "GFLOPs" without saying which
counter: ``cost.unit`` says whether limits and the plan mean FLOPs or multiply-adds."""

from __future__ import annotations

from typing import Any

import torch

from spark_lightning.errors import ConfigError

COUNTER = "torch.utils.flop_counter"


def network_cost(net: torch.nn.Module, size: int) -> dict[str, Any]:
    """{"params", "gflops", "gmacs", "size", "counter"} of ``net`` (on any device, or meta) for
    one ``size`` x ``size`` RGB image."""
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in net.parameters())
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    training = net.training
    net.eval()  # inference cost; BatchNorm would refuse one image of 1 x 1 features in training mode
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(torch.zeros(1, 3, size, size, device=device))
    finally:
        net.train(training)
    flops = counter.get_total_flops()
    return {"params": params, "gflops": flops / 1e9, "gmacs": flops / 2e9, "size": size, "counter": COUNTER}


def meta_network(model: dict[str, Any], num_classes: int) -> torch.nn.Module:
    """The network of a model config on the meta device, without loading any weights."""
    from hydra.utils import instantiate

    spec = {**model, "encoder_weights": None, "weights_path": None} if "encoder_weights" in model else dict(model)
    spec.pop("compile", None)
    try:
        with torch.device("meta"):
            return instantiate(spec, num_classes=num_classes)
    except Exception:  # some networks compute values while being built (SegFormer): build, then drop the data
        return instantiate(spec, num_classes=num_classes).to("meta")


def describe_cost(cost: dict[str, Any], unit: str = "flops") -> str:
    """One line: parameters and the compute per image, the unit the limits use first."""
    flops, macs = f"{cost['gflops']:.2f} GFLOPs", f"{cost['gmacs']:.2f} G multiply-adds"
    first, second = (macs, flops) if unit == "macs" else (flops, macs)
    return (f"{cost['params'] / 1e6:.2f} M parameters, {first} ({second}) per {cost['size']}x{cost['size']} image "
            f"({cost['counter']})")


def check_cost(cost: dict[str, Any], limits: dict[str, Any], what: str) -> None:
    """``cost.max_params`` / ``cost.max_gflops`` (in ``cost.unit``): one line when ``what`` exceeds one."""
    unit = limits.get("unit", "flops")
    if unit not in ("flops", "macs"):
        raise ConfigError(f"cost.unit={unit!r}: use flops (2 per multiply-add) or macs (multiply-adds).")
    giga = cost["gmacs"] if unit == "macs" else cost["gflops"]
    if limits.get("max_params") is not None and cost["params"] > float(limits["max_params"]):
        raise ConfigError(f"{what} has {cost['params'] / 1e6:.2f} M parameters, above cost.max_params="
                          f"{float(limits['max_params']) / 1e6:g} M: choose a smaller model or raise the limit.")
    if limits.get("max_gflops") is not None and giga > float(limits["max_gflops"]):
        label = "G multiply-adds" if unit == "macs" else "GFLOPs"
        raise ConfigError(f"{what} needs {giga:.2f} {label} per {cost['size']}x{cost['size']} image, above "
                          f"cost.max_gflops={limits['max_gflops']} (cost.unit={unit}): choose a smaller model or "
                          "input size, or raise the limit.")
