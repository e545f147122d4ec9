"""Callbacks and plugins of our own; everything else is stock Lightning, configured in conf/."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from spark_lightning.outputs import write_bytes_atomic


def write_json_atomic(path: str | Path, data: object) -> None:
    """Write JSON to a temp file and rename it, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _floats(metrics: dict[str, torch.Tensor], prefix: str) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k.startswith(prefix) and torch.as_tensor(v).numel() == 1}


class MetricsJson(L.Callback):
    """Keep every validation epoch's metrics; write ``final`` and ``best`` to a JSON file.

    Rewritten after each validation epoch, so a killed run still leaves its numbers.
    """

    def __init__(self, path: str, monitor: str = "val/spark_score", mode: str = "max") -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"MetricsJson mode={mode!r}: use 'max' or 'min'.")
        self.path, self.monitor, self.mode = Path(path), monitor, mode
        self.history: list[dict[str, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        values = _floats(trainer.callback_metrics, "val/")
        if self.monitor not in values:
            return
        values.update(epoch=trainer.current_epoch, step=trainer.global_step)
        self.history.append(values)
        self._write(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Epoch-level ``perf/`` values are logged after validation: add the last ones."""
        if self.history and trainer.is_global_zero:
            self.history[-1].update(_floats(trainer.callback_metrics, "perf/"))
            self._write(trainer)

    def _write(self, trainer: L.Trainer) -> None:
        sign = 1 if self.mode == "max" else -1
        scored = [h for h in self.history if not math.isnan(h[self.monitor])]
        best = max(scored, key=lambda h: sign * h[self.monitor]) if scored else self.history[-1]
        write_json_atomic(self.path, {"monitor": self.monitor, "final": self.history[-1], "best": best,
                                      "history": self.history})

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict.get("history", []))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temp file, fsync'ed and renamed over the old one.

    Lightning's own writer streams into the final path, so a kill while saving can leave a
    truncated ``last.ckpt``; with a rename the old checkpoint survives until the new one is whole.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


class LastCheckpoint(L.Callback):
    """``last.ckpt`` after every training epoch and, optionally, every N optimizer steps.

    What ``resume=auto`` continues from. Lightning's ``ModelCheckpoint(save_last=True)`` only
    refreshes last.ckpt when it also saved a top-k checkpoint at that step, so a run whose
    score stopped improving would resume from a stale epoch; this one always writes.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int | None = None, filename: str = "last.ckpt") -> None:
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps={every_n_train_steps} must be >= 1 (or null).")
        self.path = Path(dirpath) / filename
        self.every_n_train_steps = every_n_train_steps
        self._saved_step = -1

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.sanity_checking or trainer.global_step == self._saved_step:
            return
        trainer.save_checkpoint(self.path)
        self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        n = self.every_n_train_steps
        if n and trainer.global_step % n == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._saved_step = -1  # the end-of-epoch state differs from the mid-epoch one at the same step
        self._save(trainer)


def _peak_memory_gib(device: torch.device) -> float:
    """Peak allocated GPU memory, or on CPU the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1024**3
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


class Throughput(L.Callback):
    """Log ``perf/img_per_s`` (training images per second, validation time excluded) and
    ``perf/peak_mem_gib`` once per epoch. Host clocks only, one sync per epoch: no per-step cost."""

    def __init__(self) -> None:
        self._images = 0
        self._start = self._val_time = self._val_start = 0.0

    def _sync(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync(pl_module)
        self._images, self._val_time, self._start = 0, 0.0, time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += batch["image"].shape[0]

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._val_time += time.perf_counter() - self._val_start

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync(pl_module)
        elapsed = time.perf_counter() - self._start - self._val_time
        if self._images and elapsed > 0:
            pl_module.log("perf/img_per_s", self._images * trainer.world_size / elapsed)
            pl_module.log("perf/peak_mem_gib", _peak_memory_gib(pl_module.device))


class WandbOverlays(L.Callback):
    """Every N epochs, a W&B panel of image | truth | prediction for the first validation
    images (the same ones each time, so progress is visible). No-op without a W&B logger."""

    def __init__(self, every_n_epochs: int = 5, num_images: int = 4) -> None:
        self.every_n_epochs, self.num_images = every_n_epochs, num_images

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        from lightning.pytorch.loggers import WandbLogger

        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if batch_idx != 0 or trainer.sanity_checking or not loggers or trainer.current_epoch % self.every_n_epochs:
            return
        from spark_lightning.outputs import overlay

        n = self.num_images
        with torch.no_grad():
            preds = pl_module(batch["image"][:n]).argmax(1).cpu().numpy()
        images = batch["image"][:n].permute(0, 2, 3, 1).cpu().numpy()
        truths = batch["mask"][:n].cpu().numpy()
        panels = [overlay(im, t, p, height=min(256, im.shape[0])) for im, t, p in zip(images, truths, preds)]
        loggers[0].log_image("val/overlays", panels, step=trainer.global_step, caption=list(batch["name"][:n]))


class PreciseBatchNorm(L.Callback):
    """Recompute BatchNorm running statistics on recent training batches before validating.

    Running averages lag behind weights that move fast (early epochs, peak learning rate), and
    SPARK-like images, dark with the odd bright Earth limb, make batch statistics swing; in
    eval mode the lagging statistics can turn a model that segments well in train mode into
    one that predicts foreground everywhere. Re-estimating them from the last ``num_batches``
    training inputs ("precise BN", Wu & Johnson 2021) costs a few forward passes per epoch and
    does not change training, which uses batch statistics.
    """

    def __init__(self, num_batches: int = 8) -> None:
        self.num_batches = num_batches
        self._recent: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.num_batches:
            self._recent.append(batch["image"].detach().to("cpu", non_blocking=True))
            del self._recent[: -self.num_batches]

    @torch.no_grad()
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        norms = [m for m in pl_module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if trainer.sanity_checking or not norms or not self._recent:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
            m.train()
        with trainer.precision_plugin.forward_context():
            for images in self._recent:
                pl_module(images.to(pl_module.device, non_blocking=True))
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
            m.eval()
