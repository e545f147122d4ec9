"""Optuna search with and without pruning, and two workers sharing one study.

    python bench/search_pruning.py                  # 12 trials each way, then 2 workers x 8 trials
    python bench/search_pruning.py --trials 6 --epochs 4 --images 24    # (the smoke test)

Same search space, sampler seed and budget per trial (``--epochs`` whole epochs of the tiny network
on a generated set): each pruned search (the median rule, which is gentle, and successive halving,
the default of ``hparams_search=optuna``, which stops most trials after their first epochs) should
find a best score within noise of the unpruned one while training far fewer epochs in all. Then
two worker processes start together on one journal study and must finish exactly ``n_trials``
trials between them, each trial run once. Appends both tables to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, publish  # noqa: E402

PRUNERS = ("median", "successive_halving")  # the pruned searches; hparams_search=optuna uses the second


def _args(root: Path, sweep: Path, trials: int, epochs: int, pruner: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "spark_lightning.train", "hparams_search=optuna", "debug=smoke", f"data.root={root}",
            f"data.cache_dir={sweep.parent / 'cache'}", "model.width=16", f"trainer.max_epochs={epochs}",
            "trainer.limit_train_batches=null", "trainer.limit_val_batches=null", "optimized_metric=val/iou",
            f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.pruner={pruner}", "hydra.sweeper.sampler.seed=7",
            "loss=choice(ce,ce_dice)", f"hydra.sweep.dir={sweep}", *extra]


def _env() -> dict:
    return {**os.environ, "WANDB_MODE": "disabled"}


def _study(sweep: Path, name: str = "spark_search"):
    import optuna

    from spark_lightning.search.study import storage

    return optuna.load_study(study_name=name, storage=storage(None, sweep))


def search(root: Path, sweep: Path, trials: int, epochs: int, pruner: str) -> dict:
    start = time.perf_counter()
    subprocess.run(_args(root, sweep, trials, epochs, pruner, []), cwd=ROOT, env=_env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    study = _study(sweep)
    states = [t.state.name for t in study.trials]
    epochs_run = sum(len(json.loads(p.read_text())["history"]) for p in sweep.glob("trial_*/metrics.json"))
    best = max(t.value for t in study.trials if t.value is not None and t.state.name == "COMPLETE")
    return {"search": f"{pruner} pruner" if pruner != "null" else "no pruning", "trials": len(states),
            "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"), "failed": states.count("FAIL"),
            "epochs_trained": epochs_run, "best_val_iou": round(best, 4), "wall_s": round(time.perf_counter() - start, 1)}


def two_workers(root: Path, sweep: Path, trials: int, epochs: int, pruner: str) -> dict:
    args = _args(root, sweep, trials, epochs, pruner, [])
    start = time.perf_counter()
    procs = [subprocess.Popen(args, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(2)]
    codes = [p.wait() for p in procs]
    study = _study(sweep)
    numbers = [t.number for t in study.trials]
    run_dirs = sorted(p.name for p in sweep.glob("trial_*") if (p / "metrics.json").exists() or (p / "FAILED").exists())
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED", "FAIL")]
    return {"workers": 2, "exit_codes": "/".join(map(str, codes)), "n_trials": trials, "trials_in_study": len(numbers),
            "finished": len(finished), "distinct_trials": len(set(numbers)), "run_dirs": len(run_dirs),
            "each_trial_once": len(run_dirs) == len(set(run_dirs)) == len(finished) == trials,
            "wall_s": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> tuple[list[dict], dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--pruners", default=",".join(PRUNERS), help="hydra.sweeper.pruner of each pruned search")
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench" / "search_pruning")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    import shutil

    from spark_lightning.data.synth import generate

    shutil.rmtree(args.work, ignore_errors=True)
    root = generate(args.work / "data", num_images=args.images, size=64, seed=11, workers=1)
    rows = [search(root, args.work / name, args.trials, args.epochs, pruner)
            for name, pruner in (("plain", "null"), *((p, p) for p in args.pruners.split(",")))]
    publish(f"Optuna search, {args.trials} trials of up to {args.epochs} epochs: pruning vs none", rows, args.out)
    shared = two_workers(root, args.work / "shared", max(4, 2 * args.trials // 3), args.epochs, PRUNERS[-1])
    publish("Two workers on one journal study", [shared], args.out)
    return rows, shared


if __name__ == "__main__":
    main()
