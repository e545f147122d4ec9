"""``python -m spark_lightning.report SWEEP_DIR``: compare the runs of a sweep, no W&B needed.

Reads every run directory under SWEEP_DIR (``metrics.json``, ``csv/version_*/metrics.csv``,
``.hydra/overrides.yaml``, a ``FAILED`` marker) and writes, into SWEEP_DIR:
``report.md`` and ``report.csv`` (one row per run, best SPARK score first, failed runs last),
``best_score.png`` and ``val_curves.png``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from spark_lightning.atomic import write_bytes_atomic
from spark_lightning.errors import SparkDataError
from spark_lightning.run.runtime import task_wrapper
from spark_lightning.tasks.report_plots import by_spacecraft_map, cost_plot, score_plots
from spark_lightning.tracking import job_identity

log = logging.getLogger(__name__)

DEFAULT_MONITOR = "val/spark_score"  # runs written before metrics.json named its monitor
COLUMNS = ["run", "overrides", "status", "score", "iou", "iou_body", "iou_panel", "best_epoch", "epochs",
           "img_per_s", "peak_mem_gib", "params_m", "gflops", "final"]
# img_per_s: mean training images/s over the run's epochs; peak_mem_gib: the largest epoch peak;
# params_m, gflops: the network's cost (cost.size); final: SPARK 2026's final score (head=classify).


def _overrides(run: Path) -> str:
    """The run's overrides that tell it apart (tracking.job_identity, with the run's own list)."""
    path, hydra = run / ".hydra" / "overrides.yaml", run / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return ""
    exclude = OmegaConf.select(OmegaConf.load(hydra), "hydra.job.config.override_dirname.exclude_keys",
                               default=[]) if hydra.is_file() else []
    return " ".join(job_identity(list(OmegaConf.load(path)), list(exclude)))


def _curves(run: Path, monitor: str) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch validation values from the CSV logs (all versions, i.e. across resumes)."""
    curves: dict[str, dict[int, float]] = {}
    for path in sorted(run.glob("csv/**/metrics.csv")):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                for key in (monitor, "val/iou"):
                    if row.get(key) and row.get("epoch"):
                        curves.setdefault(key, {})[int(float(row["epoch"])) + 1] = float(row[key])  # from 1
    return {k: sorted(v.items()) for k, v in curves.items()}


def read_run(run: Path) -> dict:
    """One report row (plus curves) for a run directory."""
    row: dict = {"run": run.name, "overrides": _overrides(run), "path": run}
    metrics_file = run / "metrics.json"
    if (run / "FAILED").exists():
        row["status"] = "failed: " + (run / "FAILED").read_text().strip().splitlines()[0][:160]
    elif (run / "PRUNED").exists():  # an Optuna trial stopped early by its pruner: not a failure
        row["status"] = (run / "PRUNED").read_text().strip() or "pruned"
    elif metrics_file.is_file():
        row["status"] = "ok"
    else:
        row["status"] = "incomplete"
    monitor = DEFAULT_MONITOR
    if metrics_file.is_file():
        data = json.loads(metrics_file.read_text())
        best, history, monitor = data["best"], data.get("history", []), data.get("monitor", DEFAULT_MONITOR)
        row.update(
            monitor=monitor,
            score=best.get(monitor),
            iou=best.get("val/iou"),
            iou_body=best.get("val/iou_body"),
            iou_panel=best.get("val/iou_panel"),
            best_epoch=best.get("epoch", -1) + (0 if data.get("first_epoch") == 1 else 1),
            epochs=(history[-1]["epoch"] + (0 if data.get("first_epoch") == 1 else 1)) if history else None,
        )
        for prefix in extra_sets(best):  # extra validation sets (val_<name>/): their score and IoU
            row[f"{prefix} score"], row[f"{prefix} iou"] = best.get(f"{prefix}/spark_score"), best.get(f"{prefix}/iou")
        if "cost/params" in best:
            row["params_m"], row["gflops"] = best["cost/params"] / 1e6, best.get("cost/gflops")
        row["final"] = best.get("val/final")
        row["by_spacecraft"] = {k.split("/")[2]: v for k, v in best.items()
                                if k.startswith("val/by_spacecraft/") and k.endswith("/spark_score")}
        perf = [h for h in history if "perf/img_per_s" in h]
        if perf:
            row["img_per_s"] = sum(h["perf/img_per_s"] for h in perf) / len(perf)
            row["peak_mem_gib"] = max(h.get("perf/peak_mem_gib", 0.0) for h in perf)
    row["curves"] = _curves(run, monitor)
    return row


def _label_by_difference(rows: list[dict]) -> list[str]:
    """Each row's ``overrides`` cut to what tells it apart, and ``label`` for plots (the run's
    name when nothing does); returns the overrides all runs share."""
    tokens = [r["overrides"].split() for r in rows]
    shared = [t for t in tokens[0] if all(t in other for other in tokens[1:])] if len(rows) > 1 else []
    for row, own in zip(rows, tokens):
        row["overrides"] = " ".join(t for t in own if t not in shared)
        row["label"] = row["overrides"] or row["run"]
    return shared


def extra_sets(metrics: dict) -> list[str]:
    """Prefixes of the extra validation sets in a run's metrics (``val_real`` of ``val_real/iou``)."""
    return sorted({k.split("/")[0] for k in metrics if k.startswith("val_") and k.endswith("/spark_score")})


def find_runs(sweep_dir: Path) -> list[Path]:
    """Run directories: those Hydra made (``.hydra/``) or that hold a metrics.json."""
    runs = {p.parent for p in sweep_dir.glob("**/.hydra")} | {p.parent for p in sweep_dir.glob("**/metrics.json")}
    return sorted(r for r in runs if r != sweep_dir or (r / "metrics.json").exists())


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def write_report(sweep_dir: str | Path) -> list[dict]:
    """Write report.md, report.csv and the plots into sweep_dir; return the rows in order."""
    sweep_dir = Path(sweep_dir).expanduser()
    if not sweep_dir.is_dir():
        raise SparkDataError(f"sweep directory {sweep_dir} does not exist: give a multirun folder "
                             "(outputs/train/multiruns/<date>) or any folder of run directories.")
    runs = find_runs(sweep_dir)
    if not runs:
        raise SparkDataError(f"no run directories (with .hydra/ or metrics.json) under {sweep_dir}.")
    rows = [read_run(r) for r in runs]
    shared = _label_by_difference(rows)
    rows.sort(key=lambda r: (not r["status"].startswith(("ok", "pruned")),
                             -(r["score"] if r.get("score") is not None else -1.0), r["run"]))
    extra = sorted({k for r in rows for k in r if k.startswith("val_") and k.endswith((" score", " iou"))})
    columns = COLUMNS[:7] + extra + COLUMNS[7:]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: _fmt(r.get(k)) for k in columns} for r in rows)
    write_bytes_atomic(sweep_dir / "report.csv", buf.getvalue().encode())
    monitor = next((r["monitor"] for r in rows if r.get("monitor")), DEFAULT_MONITOR)
    lines = [f"# Sweep report: {sweep_dir.name}", "",
             f"{len(rows)} runs, best first. score: best {monitor}; img_per_s: mean training images/s over the "
             "run's epochs; peak_mem_gib: the largest peak (GPU memory on CUDA, process RSS on CPU).", "",
             f"Overrides every run shares (left out below): `{' '.join(shared) or 'none'}`.", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(k)).replace("|", "/") for k in columns) + " |" for r in rows]
    lines += ["", "![best score](best_score.png)", "", "![validation curves](val_curves.png)", ""]
    if cost_plot(rows, sweep_dir):
        lines += ["## Score against cost", "", "Best score of each run against its network's GFLOPs per image "
                  "(cost.size); the Pareto front (no other run both cheaper and better) is marked.", "",
                  "![score against GFLOPs](score_vs_gflops.png)", ""]
    lines += _by_spacecraft(rows, sweep_dir)
    write_bytes_atomic(sweep_dir / "report.md", "\n".join(lines).encode())
    score_plots(rows, sweep_dir, DEFAULT_MONITOR)
    return rows


def _by_spacecraft(rows: list[dict], out: Path) -> list[str]:
    """The best epoch's SPARK score per spacecraft type, one row per run (and a heat map)."""
    runs = [r for r in rows if r.get("by_spacecraft")]
    if not runs:
        return []
    names = sorted({k for r in runs for k in r["by_spacecraft"]})
    lines = ["## SPARK score by spacecraft (best epoch)", "", "| run | " + " | ".join(names) + " |",
             "|" + "---|" * (len(names) + 1)]
    lines += [f"| {r['run']} | " + " | ".join(_fmt(r["by_spacecraft"].get(n)) for n in names) + " |" for r in runs]
    by_spacecraft_map(runs, names, out / "by_spacecraft.png")
    return lines + ["", "![by spacecraft](by_spacecraft.png)", ""]


@task_wrapper
def run_report(cfg: DictConfig) -> dict:
    """Write the report of ``cfg.sweep_dir`` and print it."""
    sweep_dir = Path(str(cfg.sweep_dir)).expanduser()
    log.info("plan: report of the runs under %s", sweep_dir)
    rows = write_report(sweep_dir)
    print((sweep_dir / "report.md").read_text())
    print(f"wrote {sweep_dir / 'report.md'}, report.csv, best_score.png, val_curves.png ({len(rows)} runs)")
    return {"rows": rows}
