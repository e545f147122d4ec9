"""Sim-to-real: train on synthetic data only, then score on real frames with masks.

    python bench/sim_to_real.py --real /data/spark2024_val_frames            # the default command, twice
    python bench/sim_to_real.py --real DIR --runs 1 -- model=unet_resnet34    # any train overrides after --

Each run is the README's default command (``python -m spark_lightning.train`` plus the
overrides) with the real frames as an extra validation set (``data.extra_val_roots={real:DIR}``,
logged as ``val_real/...`` every epoch, never trained on). The checkpoint chosen by the
*synthetic* validation score is then scored on the real frames by ``evaluate``, which writes an
overlay (image | truth | prediction) of every frame into ``<out>/run<i>/eval_real/worst/``.
Prints one row per run and the median, and appends them to bench/RESULTS.md. The real frames
must be in the SPARK layout with masks (``images/<craft>/val/*_img.*`` and ``mask/...``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, publish  # noqa: E402

KEYS = ("spark_score", "iou", "iou_background", "iou_body", "iou_panel")
MULTITASK = ("cls_accuracy", "detection", "accuracy", "final")  # SPARK 2026, with head=classify


def _run(module: str, args: list[str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, "-m", f"spark_lightning.{module}", *args], cwd=ROOT, stdout=f,
                              stderr=subprocess.STDOUT, env={**os.environ, "WANDB_MODE": "disabled"})
    if proc.returncode:
        raise SystemExit(f"{module} failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - start


def one_run(real: Path, out: Path, seed: int, overrides: list[str]) -> dict:
    """Train (synthetic only, real frames as an extra validation set), then evaluate on the real frames."""
    out.mkdir(parents=True, exist_ok=True)
    wall = _run("train", [f"hydra.run.dir={out}", f"seed={seed}", f"data.extra_val_roots={{real:{real}}}",
                          "logger=csv", *overrides], out / "bench_train.log")
    metrics = json.loads((out / "metrics.json").read_text())
    best = metrics["best"]
    ckpt = (out / "checkpoints" / "best.ckpt").resolve()
    n_real = len(list(real.glob("images/*/*/*_img.*")))
    _run("evaluate", [f"ckpt={ckpt}", "data=spark", f"data.root={real}", f"worst={n_real}", "predict.num_workers=0",
                      f"hydra.run.dir={out / 'eval_real'}"], out / "bench_eval.log")
    real_eval = json.loads((out / "eval_real" / "eval.json").read_text())
    row = {"run": out.name, "seed": seed, "best_epoch": best["epoch"], "epochs": len(metrics["history"])}
    row.update({f"synth {k}": round(best[f"val/{k}"], 3) for k in ("spark_score", "iou")})
    row.update({f"real {k}": round(real_eval[k], 3) for k in (*KEYS, *MULTITASK) if k in real_eval})
    row["wall_min"] = round(wall / 60, 1)
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    overrides = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, required=True, help="real frames with masks (SPARK layout)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "sim_to_real")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    real = args.real.expanduser().resolve()
    rows = [one_run(real, args.out / f"run{i}", seed, overrides) for i, seed in enumerate(range(42, 42 + args.runs))]
    if len(rows) > 1:
        median = {"run": "median", "seed": "", "best_epoch": "", "epochs": ""}
        median.update({k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0] if k.startswith(("synth", "real", "wall"))})
        rows.append(median)
    title = f"Sim-to-real: the default command ({' '.join(overrides) or 'no overrides'}), real frames {real.name}"
    publish(title, rows, args.results)
    print(f"overlays of every real frame: {args.out}/run*/eval_real/worst/")
    return rows


if __name__ == "__main__":
    main()
