"""Memory table: for every model config, the micro-batch a VRAM budget allows and its speed.

    python bench/memory_table.py                       # GPU: 1024², 16-mixed, channels_last, 16 GiB
    python bench/memory_table.py --size 64 --models unet_resnet34   # CPU smoke run

On a GPU each model goes through the budget helper (real train steps, peak
``torch.cuda.max_memory_allocated``, safety margin) with an effective batch of --effective;
on CPU there is no device memory to probe, so the table reports speed at --cpu-batch only.
Appends a dated section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, compose_cfg, publish  # noqa: E402

from spark_lightning.training.vram import GiB, cuda_train_probe, largest_fitting_batch, split_batch  # noqa: E402
from spark_lightning.training.losses import float32_loss  # noqa: E402
from spark_lightning.run.builders import build_module  # noqa: E402


def train_speed(net, loss_fn, optimizer, batch: int, size: int, precision: str, device: str, steps: int) -> float:
    """Images/s over ``steps`` timed train steps after 2 warm-up steps."""
    dtype = {"16": torch.float16, "bf16": torch.bfloat16}.get(precision.split("-")[0]) if device == "cuda" else None
    x = torch.randint(0, 255, (batch, 3, size, size), dtype=torch.uint8, device=device)
    y = torch.randint(0, 3, (batch, size, size), device=device)
    for i in range(steps + 2):
        if i == 2:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = net(x)
        float32_loss(loss_fn, logits, y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--budget-gb", type=float, default=16.0)
    parser.add_argument("--margin", type=float, default=0.1)
    parser.add_argument("--effective", type=int, default=32, help="effective batch size to reach by accumulation")
    parser.add_argument("--precision", default="16-mixed")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--models", nargs="*", help="model config names (default: all of conf/model)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--cpu-batch", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    names = args.models or sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    for name in names:
        cfg = compose_cfg([f"model={name}", f"model.channels_last={not args.no_channels_last}", "logger=none"])
        module = build_module(cfg).to(device)
        optimizer = torch.optim.AdamW(module.parameters())
        row = {"model": name, "size": args.size, "precision": args.precision if device == "cuda" else "32-true"}
        if device == "cuda":
            limit = min(args.budget_gb * GiB, torch.cuda.get_device_properties(0).total_memory) * (1 - args.margin)
            probe = cuda_train_probe(module.net, args.size, args.precision, optimizer, module.criterion)
            try:
                fit = largest_fitting_batch(probe, limit, args.effective)
            except ValueError as err:
                rows.append({**row, "micro_batch": 0, "note": str(err).split(":")[0]})
                continue
            micro, accumulation = split_batch(args.effective, fit)
            peak = probe(micro) / GiB
        else:
            micro, accumulation, peak = args.cpu_batch, max(1, args.effective // args.cpu_batch), float("nan")
        ips = train_speed(module.net, module.criterion, optimizer, micro, args.size, args.precision, device, args.steps)
        rows.append({**row, "micro_batch": micro, "accumulation": accumulation, "peak_gib": f"{peak:.2f}",
                     "train_img_s": f"{ips:.2f}"})
        print(rows[-1], flush=True)
        del module, optimizer
        if device == "cuda":
            torch.cuda.empty_cache()
    columns = ["model", "size", "precision", "micro_batch", "accumulation", "peak_gib", "train_img_s", "note"]
    rows = [{c: r.get(c, "") for c in columns} for r in rows]
    publish(f"Memory table ({args.budget_gb:g} GiB budget, effective batch {args.effective})", rows, args.out)
    return rows


if __name__ == "__main__":
    main()
