"""``python -m spark_lightning.export``: a checkpoint's network as ONNX, checked against PyTorch
with onnxruntime.

The graph takes float32 pixels (B, 3, H, W) in [0, 255] and returns logits (B, C, H, W):
normalisation, stride padding and cropping are inside it, as in ``SegmentationNet``. Models
below 2 GB are one self-contained ``.onnx`` (weights inside); larger ones get their weights in
``<name>.onnx.data`` next to it, under that stable name.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from spark_lightning.atomic import explain_os_error
from spark_lightning.errors import ConfigError, SparkDataError
from spark_lightning.run.plan_text import format_plan
from spark_lightning.run.runtime import task_wrapper

log = logging.getLogger(__name__)
INLINE_LIMIT = 1.8 * 1024**3  # protobuf's 2 GB file limit, with room for the graph
# The manifest inside every .onnx we write (its metadata_props): how a later export knows the
# file is ours to replace. Anything else at output= is never replaced without overwrite=true.
MANIFEST_KEY, MANIFEST_SCHEMA = "spark_lightning.export", 1


def read_manifest(path: Path) -> dict | None:
    """The manifest of an ONNX file this command wrote, else None (not ONNX, or not ours)."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        props = {p.key: p.value for p in model.metadata_props}
        manifest = json.loads(props[MANIFEST_KEY])
    except Exception:  # noqa: BLE001 - unreadable, foreign or other schema: not ours
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("schema") == MANIFEST_SCHEMA else None


def _stamp(path: Path, manifest: dict) -> None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    entry = model.metadata_props.add()
    entry.key, entry.value = MANIFEST_KEY, json.dumps({"schema": MANIFEST_SCHEMA, **manifest})
    onnx.save_model(model, str(path))


def check_output(out: Path, ckpt: Path, overwrite: bool) -> dict | None:
    """Refuse to replace the checkpoint itself, or a file export did not write (unless
    overwrite=true); returns the manifest of our earlier export at ``out``, if any."""
    if out.exists() and out.resolve() == ckpt.expanduser().resolve():
        raise ConfigError(f"output={out} is the checkpoint being exported: choose another output= (e.g. "
                          f"{ckpt.with_suffix('.onnx').name}).")
    if out.is_dir():
        raise ConfigError(f"output={out} is a folder: give a file name, e.g. output={out / 'model.onnx'}.")
    previous = read_manifest(out) if out.exists() else None
    if out.exists() and previous is None and not overwrite:
        raise SparkDataError(_foreign(out, out))
    return previous


def _foreign(out: Path, found: Path) -> str:
    return (f"output={out}: {found} exists and was not written by spark_lightning's export, so it is never replaced: "
            "choose another output=, or set overwrite=true to replace it.")


def _weights_bytes(net: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(net.parameters()) + list(net.buffers()))


def _export(net: nn.Module, sample: torch.Tensor, path: Path, opset: int, spatial: bool, inline: bool) -> None:
    batch = torch.export.Dim("batch", min=1, max=1024)
    dims = {0: batch, **({2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO} if spatial else {})}
    torch.onnx.export(net, (sample,), str(path), dynamo=True, opset_version=opset, input_names=["image"],
                      output_names=["logits"], dynamic_shapes={"x": dims}, verbose=False, external_data=not inline)


def export_onnx(net: nn.Module, path: Path, size: int, opset: int = 18, dynamic_spatial: bool = True,
                manifest: dict | None = None, replaces_weights: bool = False) -> bool:
    """Write ``path`` (and ``path.data`` for models over 2 GB) atomically, stamped with our
    manifest; return whether height/width are dynamic. The export runs in a temp folder beside
    ``path`` under the final name, so the weights file it refers to keeps that name when moved
    into place. A ``path.data`` left by an earlier export is removed only when
    ``replaces_weights`` (it was ours, or overwrite=true)."""
    net = net.eval().cpu()
    sample = torch.rand(2, 3, size, size) * 255
    inline = _weights_bytes(net) < INLINE_LIMIT
    try:
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
            staged = Path(tmp) / path.name
            spatial = dynamic_spatial
            try:
                _export(net, sample, staged, opset, spatial, inline)
            except Exception as err:  # some architectures only trace at a fixed size
                if not spatial:
                    raise
                log.warning("dynamic height/width export failed (%s); exporting at %d x %d", type(err).__name__,
                            size, size)
                spatial = False
                _export(net, sample, staged, opset, spatial, inline)
            _stamp(staged, {**(manifest or {}), "external": not inline, "dynamic_spatial": spatial})
            produced = sorted(Path(tmp).iterdir(), key=lambda p: p.suffix == ".onnx")  # weights first
            for extra in produced[:-1]:
                if (path.parent / extra.name).exists() and not replaces_weights:
                    raise SparkDataError(_foreign(path, path.parent / extra.name))
            for file in produced:
                os.replace(file, path.parent / file.name)
    except OSError as err:
        raise explain_os_error(err, path) from err
    if inline and replaces_weights:
        Path(f"{path}.data").unlink(missing_ok=True)  # from an earlier, external-data export
    return spatial


def onnx_parity(net: nn.Module, path: Path, inputs: list[torch.Tensor]) -> dict[str, float]:
    """Compare onnxruntime with torch on the given inputs: the largest logit difference, the
    same relative to the largest logit, and the share of pixels with the same argmax."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst, scale, agree, total = 0.0, 1.0, 0, 0
    for x in inputs:
        with torch.no_grad():
            ref = net.eval().cpu()(x.float()).numpy()
        out = session.run(None, {session.get_inputs()[0].name: x.float().numpy()})[0]
        if out.shape != ref.shape:
            raise RuntimeError(f"ONNX output shape {out.shape} != PyTorch {ref.shape} for input {tuple(x.shape)}")
        worst = max(worst, float(np.abs(out - ref).max()))
        scale = max(scale, float(np.abs(ref).max()))
        agree += int((out.argmax(1) == ref.argmax(1)).sum())
        total += ref.shape[0] * ref.shape[2] * ref.shape[3]
    return {"max_abs_diff": worst, "max_rel_diff": worst / scale, "argmax_agreement": agree / total}


@task_wrapper
def run_export(cfg: DictConfig) -> dict[str, Any]:
    """Export a checkpoint's network to ONNX and check it against PyTorch."""
    if cfg.format != "onnx":
        raise ConfigError(f"format={cfg.format!r}: only 'onnx' is supported.")
    from spark_lightning.checkpoints import load_network

    net, info = load_network(cfg.ckpt)
    size = info.get("size") or 512
    out = Path(cfg.output or Path(cfg.ckpt).with_suffix(".onnx")).expanduser()
    log.info("%s", format_plan([("checkpoint", f"{cfg.ckpt}: {info['model'].get('arch')}/{info['model'].get('encoder')}"),
                                ("output", f"{out} (ONNX opset {cfg.opset}, "
                                           f"{'dynamic' if cfg.dynamic_spatial else 'fixed'} height/width)"),
                                ("check", f"onnxruntime vs PyTorch at {size} px, tolerance {cfg.tolerance}")]))
    if not out.parent.is_dir():
        raise SparkDataError(f"output={out}: folder {out.parent} does not exist; create it or choose another output=.")
    overwrite = bool(cfg.get("overwrite"))
    previous = check_output(out, Path(cfg.ckpt), overwrite)
    replaces_weights = overwrite or bool(previous and previous.get("external"))
    dynamic = export_onnx(net, out, size, cfg.opset, cfg.dynamic_spatial,
                          manifest={"checkpoint": str(Path(cfg.ckpt).expanduser().resolve()), "opset": cfg.opset},
                          replaces_weights=replaces_weights)
    inputs = [torch.rand(1, 3, size, size) * 255, torch.rand(3, 3, size, size) * 255, _parity_image(cfg, size)]
    if dynamic:
        inputs.append(torch.rand(1, 3, size + 6, size - 10) * 255)
    parity = onnx_parity(net, out, inputs)
    print(f"exported {out} ({out.stat().st_size / 2**20:.1f} MiB, dynamic batch{', height, width' if dynamic else ''}); "
          f"vs PyTorch on {len(inputs)} inputs incl. a {size}x{size} image: max abs diff {parity['max_abs_diff']:.3g} "
          f"({parity['max_rel_diff']:.2g} of the largest logit), argmax agreement {parity['argmax_agreement']:.4%}")
    if parity["max_rel_diff"] > cfg.tolerance or parity["argmax_agreement"] < cfg.min_argmax_agreement:
        raise RuntimeError(f"ONNX output differs from PyTorch beyond tolerance ({parity}): {out}")
    return {"path": out, **parity, "dynamic_spatial": dynamic}


def _parity_image(cfg: DictConfig, size: int) -> torch.Tensor:
    """A real image at the network's working size (``image=PATH``), else a 1024 px synthetic render."""
    from spark_lightning.data.formats import read_rgb, resize_image

    if cfg.get("image"):
        rgb = read_rgb(Path(cfg.image).expanduser(), size)
    else:
        from spark_lightning.data.synth import render_scene

        rgb = resize_image(render_scene(np.random.default_rng(0), 1024, 0)[0], size)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float()
