"""Sweep overhead: wall time of a multirun (2 models x 2 losses) vs the same jobs run one by one.

    python bench/sweep_overhead.py                 # tiny jobs: start-up cost dominates
    python bench/sweep_overhead.py --epochs 1 --size 64

Each variant starts with an empty cache directory, so both pay one synthetic generation and
one decode pass; the checks are what start-up costs per job and that jobs after the first
reuse the cache (no cache entry is written after the second job started). Appends to
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, publish  # noqa: E402

MODELS = ["unet_mobilenet_v2", "fpn_resnet50"]


def run(args: list[str], cache: Path, cwd: Path) -> float:
    env = {**os.environ, "SPARK_LIGHTNING_CACHE": str(cache), "WANDB_MODE": "disabled"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "spark_lightning.train", *args], cwd=cwd, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--models", nargs="+", default=MODELS, help="x 2 losses = the jobs")
    parser.add_argument("--multirun-only", action="store_true", help="skip the single runs (smoke test)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    jobs = [f"model={m} loss={loss}" for m in args.models for loss in ("ce", "jaccard")]
    common = ["~experiment", f"data.size={args.size}", f"data.dataset.size={args.size}",
              f"data.dataset.num_images={args.images}", "data.num_workers=0", "data.batch_size=2", "trainer.max_epochs=1", "logger=csv",
              "callbacks.progress_bar=null", "trainer.enable_progress_bar=false"]  # an even batch and a whole epoch: job 1 reads every sample
    with tempfile.TemporaryDirectory(prefix="spark_bench_") as tmp_name:
        tmp = Path(tmp_name)
        single = float("nan") if args.multirun_only else sum(
            run([*job.split(), *common, f"hydra.run.dir={tmp / 'single' / str(i)}"], tmp / "cache1", tmp)
            for i, job in enumerate(jobs))
        multi = run(["-m", f"model={','.join(args.models)}", "loss=ce,jaccard", *common,
                     f"hydra.sweep.dir={tmp / 'multi'}"], tmp / "cache2", tmp)
        entries = list((tmp / "cache2" / "samples").rglob("*.npy"))
        # Each job writes config.yaml as it starts: no cache entry may be newer than job 2's start.
        second_job = sorted((tmp / "multi").glob("*/config.yaml"), key=lambda p: p.stat().st_mtime)[1]
        late = sum(p.stat().st_mtime > second_job.stat().st_mtime for p in entries)
        row = {"jobs": len(jobs), "sum_of_single_runs_s": f"{single:.1f}", "multirun_s": f"{multi:.1f}",
               "saved_per_job_s": f"{(single - multi) / len(jobs):.1f}", "cache_entries": len(entries),
               "cache_entries_written_after_job_1": late}
    publish(f"Sweep overhead ({len(jobs)}-job multirun vs {len(jobs)} single runs)", [row], args.out)
    return row


if __name__ == "__main__":
    main()
