"""Training overhead: a raw PyTorch loop vs the spark_lightning Trainer, side by side.

    python bench/train_overhead.py                      # CPU: Unet-ResNet34, 160², batch 4
    python bench/train_overhead.py --size 1024 --batch 8 --precision 16-mixed   # GPU

Both use the same network, the same DataLoader (cached synthetic SPARK data, already warm),
the same batch and precision (plain autocast in the raw loop), and are timed over the same
number of steady-state optimizer steps after a warm-up. The framework side is the real
training configuration (metrics, logging, LR monitor, throughput callback, rich progress bar),
with validation off. Repeated --repeats times, alternating, so drift hits both. Appends to
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import open_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, compose_cfg, publish  # noqa: E402

from spark_lightning.training.losses import float32_loss  # noqa: E402
from spark_lightning.run.builders import build_module, build_trainer  # noqa: E402


class StepTimer(L.Callback):
    """Wall time between the start of optimizer step `warmup` and the end of the last one."""

    def __init__(self, warmup: int, device: str) -> None:
        self.warmup, self.device, self.start, self.end, self.images = warmup, device, None, None, 0

    def _now(self) -> float:
        if self.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup and self.start is None:
            self.start = self._now()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.start is not None:
            self.images += batch["image"].shape[0]
            self.end = self._now()


def raw_loop(net, loss_fn, loader, device: str, precision: str, lr: float, warmup: int, steps: int) -> tuple[float, int]:
    """Images/s of a plain loop (and the images timed): the same loader, network, loss and
    optimizer as the framework."""
    dtype = {"16": torch.float16, "bf16": torch.bfloat16}.get(precision.split("-")[0])
    use_amp = device == "cuda" and dtype is not None
    scaler = torch.amp.GradScaler(enabled=use_amp and dtype == torch.float16)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    net.train()
    done, images, start = 0, 0, None
    while done < warmup + steps:
        for batch in loader:
            if done == warmup:
                if device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
            x = batch["image"].to(device, non_blocking=True)
            y = batch["mask"].to(device, non_blocking=True).long()
            with torch.autocast(device, dtype=dtype or torch.float32, enabled=use_amp):
                logits = net(x)
            loss = float32_loss(loss_fn, logits, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            done += 1
            if done > warmup:
                images += x.shape[0]
            if done == warmup + steps:
                break
    if device == "cuda":
        torch.cuda.synchronize()
    return images / (time.perf_counter() - start), images


def framework(cfg, datamodule, device: str, warmup: int, steps: int) -> tuple[float, int]:
    module = build_module(cfg)
    timer = StepTimer(warmup, device)
    trainer = build_trainer(cfg, max_steps=warmup + steps, limit_val_batches=0, num_sanity_val_steps=0,
                            enable_checkpointing=False)
    trainer.callbacks.append(timer)
    trainer.fit(module, datamodule=datamodule)
    return timer.images / (timer.end - timer.start), timer.images


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="unet_resnet34")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--num-images", type=int, default=64, help="synthetic images to generate (cached)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = compose_cfg([
        f"model={args.model}", f"data.size={args.size}", f"data.batch_size={args.batch}",
        f"data.num_workers={args.workers}", f"data.dataset.num_images={args.num_images}",
        f"data.dataset.size={max(args.size, 64)}", f"trainer.precision={args.precision}", "logger=csv",
        "callbacks.best_checkpoint=null", "callbacks.checkpoint=null", "callbacks.metrics_json=null",
    ])
    out_dir = ROOT / "outputs" / "bench" / "train_overhead"  # run files, git-ignored like every run's
    with open_dict(cfg):
        cfg.paths.output_dir = str(out_dir)
        cfg.trainer.max_epochs = -1
    L.seed_everything(0)
    datamodule = compose_datamodule(cfg)
    raw, fw, timed = [], [], {"raw": 0, "framework": 0}
    for _ in range(args.repeats):
        net = build_module(cfg).net.to(device)
        rate, images = raw_loop(net, build_module(cfg).criterion, datamodule.train_dataloader(), device,
                                args.precision, cfg.optimizer.lr, args.warmup, args.steps)
        raw.append(rate)
        timed["raw"] += images
        rate, images = framework(cfg, datamodule, device, args.warmup, args.steps)
        fw.append(rate)
        timed["framework"] += images
        print(f"raw {raw[-1]:.2f} img/s, spark_lightning {fw[-1]:.2f} img/s", flush=True)
    row = {"model": args.model, "size": args.size, "batch": args.batch, "precision": args.precision,
           "steps": args.steps, "raw_img_s": f"{statistics.median(raw):.2f}",
           "framework_img_s": f"{statistics.median(fw):.2f}",
           "ratio": f"{statistics.median(fw) / statistics.median(raw):.3f}",
           "images_timed": f"{timed['raw']}/{timed['framework']}"}  # raw/framework: like for like
    publish("Training overhead (framework vs raw loop)", [row], args.out)
    return row


def compose_datamodule(cfg):
    """The run's DataModule, set up and iterated once so the cache is warm for both sides."""
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data, train_transform=instantiate(cfg.aug))
    datamodule.prepare_data()
    datamodule.setup("fit")
    for _ in datamodule.train_dataloader():
        pass
    return datamodule


if __name__ == "__main__":
    main()
