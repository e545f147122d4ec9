"""ONNX export of a trained network, checked against PyTorch with onnxruntime.

The graph takes float32 pixels (B, 3, H, W) in [0, 255] and returns logits (B, 3, H, W):
normalisation, stride padding and cropping are inside it, as in ``SegmentationNet``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


def export_onnx(net: nn.Module, path: Path, size: int, opset: int = 18, dynamic_spatial: bool = True) -> bool:
    """Write ``path`` atomically; return whether height/width are dynamic."""
    net = net.eval().cpu()
    sample = torch.rand(2, 3, size, size) * 255
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    batch = torch.export.Dim("batch", min=1, max=1024)
    attempts = [True, False] if dynamic_spatial else [False]
    for spatial in attempts:
        dims = {0: batch, **({2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO} if spatial else {})}
        try:
            torch.onnx.export(net, (sample,), str(tmp), dynamo=True, opset_version=opset, input_names=["image"],
                              output_names=["logits"], dynamic_shapes={"x": dims}, verbose=False)
        except Exception as err:  # some architectures only trace at a fixed size
            if not spatial or len(attempts) == 1:
                raise
            log.warning("dynamic height/width export failed (%s); exporting at %d x %d", type(err).__name__, size, size)
            continue
        os.replace(tmp, path)
        return spatial
    raise RuntimeError("unreachable")


def onnx_parity(net: nn.Module, path: Path, shapes: list[tuple[int, int, int, int]]) -> float:
    """Max |onnxruntime - torch| over random inputs of the given shapes."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for shape in shapes:
        x = torch.rand(*shape) * 255
        with torch.no_grad():
            ref = net.eval().cpu()(x).numpy()
        out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        if out.shape != ref.shape:
            raise RuntimeError(f"ONNX output shape {out.shape} != PyTorch {ref.shape} for input {shape}")
        worst = max(worst, float(np.abs(out - ref).max()))
    return worst
