"""GPU proof: every CUDA path of the framework in one command, a Markdown table and a JSON.

    make gpu-check OUT=gpu_out                      # on a GPU machine (installs .whl/ first)
    python bench/gpu_check.py --out gpu_out         # the same, packages already there
    python bench/gpu_check.py --out /tmp/x --dry    # CPU, tiny sizes, one step per case (tests)

Checks, each a row that passes or fails (exit status 1 if any fails):
  1. every model config at 1024 px: a few train steps in 32-true, 16-mixed and bf16-mixed,
     channels_last on/off for the CNNs, plus torch.compile for U-Net-ResNet34: img/s, peak GiB,
     finite loss; 16-mixed or bf16 + channels_last >= 2.5x fp32 (U-Net-ResNet34);
  2. the VRAM budget helper at 16 GiB, effective batch 32, for every model config: its choice,
     then 3 real optimizer steps at that setting whose peak stays under 16 GiB;
  3. 16-mixed stability: 100 steps of U-Net-ResNet34 with Jaccard and with Dice at 1024 px on
     synthetic data, through the Trainer: no NaN/inf, loss going down;
  4. prediction at 1024 px (resize, slide, flip TTA) vs a raw model(x) loop: ratio;
  5. training overhead vs a raw loop at 512 px bf16 + channels_last: ratio >= 0.90.
With --dry, everything runs once on the CPU with the tiny network (every model config is built and
stepped by tests/test_configs.py), and speed targets are not judged.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, compose_cfg, device_name, markdown_table  # noqa: E402

from spark_lightning.atomic import write_json_atomic, write_text_atomic  # noqa: E402
from spark_lightning.training.vram import GiB, apply_budget  # noqa: E402
from spark_lightning.run.builders import build_module  # noqa: E402
from spark_lightning.training.losses import float32_loss  # noqa: E402

PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")
TRANSFORMERS = ("segformer", "upernet")  # channels_last does not apply
REFERENCE = "unet_resnet34"


class Setting:
    """Sizes and step counts of a full (GPU) or --dry (CPU: the tiny network, every path once)."""

    def __init__(self, dry: bool) -> None:
        self.dry, self.device = dry, "cpu" if dry else "cuda"
        self.size, self.steps, self.batch = (32, 1, 2) if dry else (1024, 3, 4)
        self.stability_steps, self.stability_size = (2, 32) if dry else (100, 1024)
        self.reference = "tiny" if dry else REFERENCE


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def train_steps(net, loss_fn, batch: int, size: int, precision: str, device: str, steps: int,
                accumulation: int = 1) -> dict:
    """Real optimizer steps (AdamW, GradScaler for fp16) on random data: img/s, peak GiB, loss."""
    dtype = {"16": torch.float16, "bf16": torch.bfloat16}.get(precision.split("-")[0])
    scaler = torch.amp.GradScaler(device, enabled=dtype == torch.float16 and device == "cuda")
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.randint(0, 255, (batch, 3, size, size), dtype=torch.uint8, device=device)
    y = torch.randint(0, 3, (batch, size, size), device=device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses, start = [], None
    for step in range(steps + 1):  # the first step warms up (cudnn autotuning, compile)
        if step == 1:
            _sync(device)
            start = time.perf_counter()
        for _ in range(accumulation):
            with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = float32_loss(loss_fn, net(x), y)
            scaler.scale(loss / accumulation).backward()
            losses.append(float(loss.detach()))
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
    _sync(device)
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / GiB if device == "cuda" else float("nan")
    return {"img_s": batch * accumulation * steps / elapsed, "peak_gib": peak,
            "loss_finite": all(math.isfinite(v) for v in losses)}


def _fitting(net, loss_fn, s: Setting, precision: str) -> tuple[int, dict]:
    """The largest micro-batch <= s.batch that runs (halving on out-of-memory), and its result."""
    batch = s.batch
    while True:
        try:
            return batch, train_steps(net, loss_fn, batch, s.size, precision, s.device, s.steps)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if batch == 1:
                raise
            batch //= 2


def _module(name: str, s: Setting, *extra: str):
    cfg = compose_cfg([f"model={name}", "logger=none", *extra])
    return cfg, build_module(cfg).to(s.device)


def model_rows(s: Setting, names: list[str]) -> list[dict]:
    rows = []
    for name in names:
        cnn = not any(t in name for t in TRANSFORMERS)
        cases = [(p, cl, False) for p in PRECISIONS for cl in ((False, True) if cnn else (False,))]
        if name == s.reference and not s.dry:  # compile takes minutes on a CPU: GPU only
            cases.append(("bf16-mixed", True, True))
        for precision, channels_last, compiled in cases:
            _, module = _module(name, s, f"model.channels_last={channels_last}", f"model.compile={compiled}")
            try:
                batch, result = _fitting(module.net, module.criterion, s, precision)
                ok, note = result["loss_finite"], ""
            except Exception as err:  # noqa: BLE001 - a failing case is a row, not the end of the check
                batch, result, ok, note = 0, {}, False, f"{type(err).__name__}: {str(err)[:80]}"
            rows.append({"check": "train steps", "model": name, "precision": precision, "channels_last": channels_last,
                         "compile": compiled, "size": s.size, "batch": batch, **result, "ok": ok, "note": note})
            print(rows[-1], flush=True)
            del module
            if s.device == "cuda":
                torch.cuda.empty_cache()
    return rows


def speedup_row(rows: list[dict], s: Setting) -> dict:
    """Mixed precision + channels_last vs fp32 for the reference model (target >= 2.5x)."""
    ref = {(r["precision"], r["channels_last"], r["compile"]): r.get("img_s", 0) for r in rows
           if r["model"] == s.reference}
    fp32 = ref.get(("32-true", False, False), 0) or float("nan")
    best = max(ref.get(("16-mixed", True, False), 0), ref.get(("bf16-mixed", True, False), 0))
    ratio = best / fp32
    measured = math.isfinite(ratio) and ratio > 0  # the dry run times tiny CPU steps: no target, but real numbers
    return {"check": "mixed precision speed-up", "model": s.reference, "ratio": ratio, "target": ">= 2.5",
            "ok": measured and (s.dry or ratio >= 2.5)}


def budget_rows(s: Setting, names: list[str]) -> list[dict]:
    """The helper's choice at 16 GiB / effective 32, then 3 real steps whose peak must fit."""
    rows = []
    for name in names:
        cfg, module = _module(name, s, "budget.vram_gb=16", "budget.effective_batch_size=32", f"data.size={s.size}",
                              "trainer.precision=16-mixed", "model.channels_last=auto")
        try:
            # On the CPU (--dry) a stand-in memory model (1 GiB per image, an 80 GiB card) replaces the GPU
            # probe; the helper's search, split and config update are the real ones.
            stand_in = {"probe": lambda b: b * GiB, "total_bytes": 80 * GiB} if s.dry else {}
            choice = apply_budget(cfg, lambda c: build_module(c), **stand_in)
            micro, accumulation = choice["micro_batch"], choice["accumulate_grad_batches"]
            assert (cfg.data.batch_size, cfg.trainer.accumulate_grad_batches) == (micro, accumulation)
            result = train_steps(module.net, module.criterion, micro, s.size, "16-mixed", s.device, s.steps,
                                 accumulation)
            ok = result["loss_finite"] and (s.dry or result["peak_gib"] < 16)
            rows.append({"check": "16 GiB budget", "model": name, "micro_batch": micro, "accumulation": accumulation,
                         **result, "ok": ok})
        except Exception as err:  # noqa: BLE001
            rows.append({"check": "16 GiB budget", "model": name, "ok": False, "note": f"{type(err).__name__}: {err}"})
        print(rows[-1], flush=True)
        del module
        if s.device == "cuda":
            torch.cuda.empty_cache()
    return rows


def stability_rows(s: Setting, tmp: Path) -> list[dict]:
    """100 Trainer steps of U-Net-ResNet34 in 16-mixed with soft Jaccard / Dice (fp16 sums
    overflow in other libraries): every step's loss finite, the last 10 below the first 10."""
    import csv

    from spark_lightning.tasks import run_train

    rows = []
    for loss in ("jaccard", "dice"):
        cfg = compose_cfg([f"model={s.reference}", f"loss={loss}", "trainer.precision=16-mixed", "logger=csv",
                           f"data.size={s.stability_size}", f"data.dataset.size={s.stability_size}",
                           "data.dataset.num_images=40", "data.batch_size=4", "data.num_workers=4",
                           f"data.cache_dir={tmp / 'cache'}", f"+data.dataset.folder={tmp}", "trainer.max_epochs=-1",
                           f"+trainer.max_steps={s.stability_steps}", "trainer.log_every_n_steps=1",
                           "+trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0",
                           "callbacks.progress_bar=null", "trainer.enable_progress_bar=false",
                           "callbacks.best_checkpoint=null", "callbacks.metrics_json=null", "callbacks.time_budget=null",
                           f"trainer.accelerator={'cpu' if s.dry else 'gpu'}"])
        cfg.paths.output_dir = str(tmp / f"stability_{loss}")
        try:
            run_train(cfg)
            with open(next(Path(cfg.paths.output_dir).glob("csv/*/metrics.csv")), newline="") as f:
                losses = [float(r["train/loss_step"]) for r in csv.DictReader(f) if r.get("train/loss_step")]
            first, last = sum(losses[:10]) / len(losses[:10]), sum(losses[-10:]) / len(losses[-10:])
            finite = all(math.isfinite(v) for v in losses)
            ok = finite and (s.dry or last < first)
            rows.append({"check": "16-mixed stability", "model": s.reference, "loss": loss, "steps": len(losses),
                         "first10": first, "last10": last, "loss_finite": finite, "ok": ok})
        except Exception as err:  # noqa: BLE001
            rows.append({"check": "16-mixed stability", "loss": loss, "ok": False, "note": f"{type(err).__name__}: {err}"})
        print(rows[-1], flush=True)
    return rows


def predict_rows(s: Setting, out: Path) -> list[dict]:
    import predict_speed

    size = "64" if s.dry else "1024"
    args = ["--model", s.reference, "--image-size", size, "--size", size, "--tile", "32" if s.dry else "512",
            "--images", "2" if s.dry else "8", "--out", str(out / "predict.md")]
    rows = predict_speed.main(args)
    return [{"check": "predict vs raw", "model": s.reference, "mode": r["mode"], "tta": r["tta"],
             "img_s": float(r["framework_img_s"]), "ratio": float(r["ratio"]), "target": ">= 0.90",
             "ok": float(r["framework_img_s"]) > 0 and (s.dry or float(r["ratio"]) >= 0.9)} for r in rows]


def overhead_row(s: Setting, out: Path) -> dict:
    import train_overhead

    args = (["--model", "tiny", "--size", "32", "--batch", "2", "--warmup", "1", "--steps", "2", "--repeats", "1",
             "--workers", "0", "--num-images", "12"] if s.dry else
            ["--model", REFERENCE, "--size", "512", "--batch", "32", "--precision", "bf16-mixed", "--warmup", "5",
             "--steps", "30", "--repeats", "2", "--workers", "8", "--num-images", "320"])
    row = train_overhead.main([*args, "--out", str(out / "overhead.md")])
    ratio = float(row["ratio"])
    return {"check": "training overhead vs raw", "model": row["model"], "img_s": float(row["framework_img_s"]),
            "raw_img_s": float(row["raw_img_s"]), "ratio": ratio, "target": ">= 0.90",
            "ok": math.isfinite(ratio) and ratio > 0 and (s.dry or ratio >= 0.9)}


COLUMNS = ["check", "model", "precision", "channels_last", "compile", "loss", "mode", "tta", "batch", "micro_batch",
           "accumulation", "img_s", "peak_gib", "ratio", "first10", "last10", "ok", "note"]


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.2f}"
    return "" if value is None else str(value)


def report(rows: list[dict], s: Setting, out: Path, seconds: float) -> str:
    header = (f"# GPU check{' (dry run: CPU, tiny sizes, no timing claims)' if s.dry else ''}\n\n"
              f"- device: {device_name()}\n- torch {torch.__version__}\n- date: {time.strftime('%Y-%m-%d %H:%M')}\n"
              f"- {sum(not r['ok'] for r in rows)} of {len(rows)} checks failed; {seconds / 60:.1f} min\n\n")
    table = markdown_table([{c: _fmt(r.get(c)) for c in COLUMNS} for r in rows], COLUMNS)
    write_text_atomic(out / "gpu_check.md", header + table + "\n")
    write_json_atomic(out / "gpu_check.json", {"device": device_name(), "torch": torch.__version__, "dry": s.dry,
                                               "rows": rows})
    return header + table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.md and gpu_check.json")
    parser.add_argument("--dry", action="store_true", help="CPU, tiny sizes, one step per case (for tests)")
    parser.add_argument("--models", nargs="*", help="model configs (default: every one in conf/model but tiny)")
    args = parser.parse_args(argv)
    s = Setting(args.dry)
    if not s.dry and not torch.cuda.is_available():
        parser.error("no CUDA GPU here: run with --dry for the CPU smoke run")
    args.out.mkdir(parents=True, exist_ok=True)
    every = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml") if p.stem != "tiny")
    names = args.models or (["tiny"] if s.dry else every)
    start = time.perf_counter()
    rows = model_rows(s, names)
    rows.append(speedup_row(rows, s))
    rows += budget_rows(s, names)
    rows += stability_rows(s, args.out / "runs")
    rows += predict_rows(s, args.out)
    rows.append(overhead_row(s, args.out))
    print(report(rows, s, args.out, time.perf_counter() - start))
    return 1 if any(not r["ok"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
