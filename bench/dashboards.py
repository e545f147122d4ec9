"""The dashboards on this machine, checked in a real browser: MLflow's UI and optuna-dashboard.

    python bench/dashboards.py                     # a small search, then both dashboards -> docs/dashboards/
    python bench/dashboards.py --out /tmp/shots    # (what the test does)

Runs a 3-trial Optuna search on a generated set with every logger on (CSV, TensorBoard, MLflow),
starts ``mlflow ui`` and ``optuna-dashboard`` on localhost, loads their pages in headless Chromium
(Debian's ``chromium``), checks that the runs/trials and ``val/spark_score`` are on the page, and
saves a screenshot of each. Also reads the TensorBoard event files: scalars and the HParams entry.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1400,900"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(cmd: list[str], url: str, log: Path, timeout: float = 120):
    """Start a server, wait until ``url`` answers, stop it afterwards."""
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "WANDB_MODE": "disabled"})
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{cmd[0]} did not come up at {url}: see {log}") from None
                time.sleep(0.5)
        yield proc
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()


def page(url: str, work: Path, screenshot: Path | None = None, budget_ms: int = 20000) -> str:
    """The page's DOM after its scripts ran (and a screenshot), from headless Chromium."""
    browser = chromium()
    if browser is None:
        raise RuntimeError("no chromium here: apt-get install chromium (CI installs it)")
    base = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={work / 'chromium-profile'}", f"--virtual-time-budget={budget_ms}"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([*base, f"--screenshot={screenshot}", url], capture_output=True, timeout=180)
    return dom


def small_search(work: Path) -> Path:
    """A 3-trial search with every logger on; returns the sweep folder."""
    from spark_lightning.data.synth import generate

    root = generate(work / "data", num_images=24, size=64, seed=2, workers=1)
    sweep = work / "search"
    cmd = [sys.executable, "-m", "spark_lightning.train", "hparams_search=optuna", "debug=smoke", f"data.root={root}",
           f"data.cache_dir={work / 'cache'}", "trainer.max_epochs=2", "hydra.sweeper.n_trials=3",
           "hydra.sweeper.pruner=null", "logger=[csv,tensorboard,mlflow]",
           f"logger.mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
           f"logger.mlflow.artifact_location={work / 'mlflow-artifacts'}", f"hydra.sweep.dir={sweep}"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, env={**os.environ, "WANDB_MODE": "disabled"})
    return sweep


def mlflow_page(work: Path, out: Path) -> dict:
    port = free_port()
    db = f"sqlite:///{work / 'mlflow.db'}"
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", db, "--host", "127.0.0.1", "--port", str(port)]
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=db)
    experiment = client.get_experiment_by_name("search")
    runs = client.search_runs([experiment.experiment_id])
    with serve(cmd, url, work / "mlflow.log"):
        dom = page(f"{url}/#/experiments/{experiment.experiment_id}/runs/{runs[0].info.run_id}", work,
                   out / "mlflow_run.png")
        listing = page(f"{url}/#/experiments/{experiment.experiment_id}/runs", work, out / "mlflow_runs.png")
    names = [r.info.run_name for r in runs]
    return {"dashboard": "mlflow ui", "runs": len(runs), "runs_on_page": sum(n in listing for n in names),
            "val/spark_score_on_page": "val/spark_score" in dom}


def optuna_page(sweep: Path, work: Path, out: Path) -> dict:
    import optuna

    from spark_lightning.search.study import storage

    study_id = optuna.load_study(study_name="spark_search", storage=storage(None, sweep))._study_id
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(Path(sys.executable).with_name("optuna-dashboard")), str(sweep / "optuna.journal"),
           "--host", "127.0.0.1", "--port", str(port)]
    with serve(cmd, url, work / "optuna-dashboard.log"):
        dom = page(f"{url}/dashboard/studies/{study_id}", work, out / "optuna_dashboard.png")
        trials = page(f"{url}/dashboard/studies/{study_id}/trials", work, out / "optuna_trials.png")
    return {"dashboard": "optuna-dashboard", "study_on_page": "spark_search" in dom,
            "trials_on_page": sum(f"Trial {i}" in trials or f"#{i}" in trials for i in range(3)),
            "val/spark_score_on_page": "val/spark_score" in dom + trials}


def tensorboard_events(sweep: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folders = sorted(sweep.glob("trial_*/tensorboard"))
    tags = set()
    hparams = 0
    for folder in folders:
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
        hparams += any("hparams" in str(p) for p in acc.Tags().get("tensors", [])) or bool(acc.PluginTagToContent("hparams"))
    return {"dashboard": "tensorboard (event files)", "runs": len(folders), "runs_with_hparams": hparams,
            "val/spark_score_logged": "val/spark_score" in tags}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench" / "dashboards")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboards")
    args = parser.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    sweep = small_search(args.work)
    rows = [mlflow_page(args.work, args.out), optuna_page(sweep, args.work, args.out), tensorboard_events(sweep)]
    for row in rows:
        print(row)
    return rows


if __name__ == "__main__":
    main()
