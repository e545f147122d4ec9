"""Multirun sweeps, W&B runs per job, failing jobs, experiments, launchers, and the report."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from spark_lightning.tasks.report import write_report

from .conftest import compose_train, run_main, smoke_args

TINY_ARGS = ["trainer.limit_train_batches=1", "trainer.limit_val_batches=1"]


def run_cli(args: list[str], cwd: Path, timeout: int = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    """The train command as a real process (for what needs one: DDP ranks, launchers)."""
    env = {**os.environ, "SPARK_LIGHTNING_CACHE": str(cwd / "cache"), "WANDB_MODE": "offline", **(env or {})}
    env.pop("WANDB_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "spark_lightning.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def offline_wandb(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")


@pytest.mark.slow
def test_two_by_two_multirun_with_wandb_and_report(tiny_root, tmp_path, monkeypatch, offline_wandb):
    sweep = tmp_path / "sweep"
    code = run_main("train", ["--multirun", "model.width=4,8", "loss=ce,jaccard", *smoke_args(tiny_root, tmp_path),
                              "logger=default", *TINY_ARGS, f"hydra.sweep.dir={sweep}"], monkeypatch)
    assert code == 0
    runs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert len(runs) == 4
    configs = [OmegaConf.load(r / "config.yaml") for r in runs]
    assert {(c.loss._target_.rsplit(".", 1)[1], c.model.width) for c in configs} == {
        (loss, width) for loss in ("CrossEntropy", "JaccardLoss") for width in (4, 8)}
    wandb_runs = [p for r in runs for p in (r / "wandb").glob("offline-run-*")]
    assert len(wandb_runs) == 4 and len({p.name.rsplit("-", 1)[1] for p in wandb_runs}) == 4
    assert {c.logger.wandb.group for c in configs} == {"sweep"}  # one group: the sweep
    for r, c in zip(runs, configs):  # tags = the job's overrides, without paths and derived values
        overrides = list(OmegaConf.load(r / ".hydra" / "overrides.yaml"))
        assert f"model.width={c.model.width}" in c.logger.wandb.tags and "debug=smoke" in c.logger.wandb.tags
        assert any(o.startswith("data.root=") for o in overrides) and "recipe.fallback_model=null" in overrides
        assert not [t for t in c.logger.wandb.tags if t.split("=")[0] in ("data.root", "data.cache_dir",
                                                                        "recipe.fallback_model", "hydra.sweep.dir")]
        assert set(c.logger.wandb.tags) <= set(overrides)
    rows = write_report(sweep)
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    table = list(csv.DictReader(open(sweep / "report.csv")))
    assert [t["run"] for t in table] == [r["run"] for r in rows]
    assert all(float(t["img_per_s"]) > 0 for t in table)
    assert (sweep / "best_score.png").stat().st_size > 1000 and (sweep / "val_curves.png").is_file()
    assert "| run | overrides |" in (sweep / "report.md").read_text()


@pytest.mark.slow
def test_failing_job_is_reported_and_others_finish(tiny_root, tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    code = run_main("train", ["-m", "model=unet_mobilenet_v2", "model.encoder=mobilenet_v2,no_such_encoder",
                              *smoke_args(tiny_root, tmp_path), *TINY_ARGS, f"hydra.sweep.dir={sweep}"], monkeypatch)
    assert code != 0
    assert "no_such_encoder" in capsys.readouterr().err
    by_encoder = {next(o for o in OmegaConf.load(r / ".hydra" / "overrides.yaml") if o.startswith("model.encoder")): r
                  for r in (p.parent.parent for p in sweep.glob("*/.hydra/overrides.yaml"))}
    good, bad = by_encoder["model.encoder=mobilenet_v2"], by_encoder["model.encoder=no_such_encoder"]
    assert (good / "metrics.json").is_file() and not (good / "FAILED").exists()
    assert "is not a known encoder" in (bad / "FAILED").read_text()
    assert run_main("report", [str(sweep), f"hydra.run.dir={tmp_path / 'report'}"], monkeypatch) == 0
    rows = list(csv.DictReader(open(sweep / "report.csv")))
    assert [r["status"] for r in rows][0] == "ok" and rows[1]["status"].startswith("failed: ConfigError")
    assert "wrote" in capsys.readouterr().out


def test_job_dirname_stays_short():
    from omegaconf import OmegaConf

    import spark_lightning  # noqa: F401  (registers the resolver)

    long = ",".join(f"key{i}=value{i}" for i in range(40))
    cfg = OmegaConf.create({"short": "loss=ce", "long": long, "a": "${job_dirname:3,${short}}",
                            "b": "${job_dirname:4,${long}}"})
    assert cfg.a == "3_loss=ce"
    assert len(cfg.b) <= 122 and cfg.b.startswith("4_key0=value0") and cfg.b != f"4_{long[:111]}"


def test_report_on_empty_dir_is_a_clear_error(tmp_path, capsys, monkeypatch):
    code = run_main("report", [str(tmp_path / "empty"), f"hydra.run.dir={tmp_path / 'r'}"], monkeypatch)
    assert code == 1 and "sweep directory" in (tmp_path / "r" / "FAILED").read_text()
    (tmp_path / "empty").mkdir()
    assert run_main("report", [str(tmp_path / "empty"), f"hydra.run.dir={tmp_path / 'r'}"], monkeypatch) == 1
    assert "no run directories" in (tmp_path / "r" / "FAILED").read_text()


@pytest.mark.parametrize("name", ["backbone_sweep", "loss_sweep", "optimizer_sweep"])
def test_sweep_experiments_set_sweeper_params(name):
    from hydra import compose, initialize_config_dir

    from .conftest import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={name}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    group = {"backbone_sweep": "model", "loss_sweep": "loss", "optimizer_sweep": "optimizer"}[name]
    options = params[group].split(",")
    assert len(options) >= 3
    for option in options:  # every swept option exists
        compose_train([f"{group}={option}"])
    assert name in cfg.hydra.sweep.dir


@pytest.mark.slow
def test_a_sweep_through_the_slurm_launcher_runs_every_job_as_a_task_of_one_array(tiny_root, tmp_path):
    """``hydra/launcher=slurm``: one sbatch job array carrying our settings (a GPU per job,
    the time limit, the signal that lets a job save and requeue, at most array_parallelism at once),
    each sweep job run as one of its tasks -- here by a fake SLURM that runs tasks on this machine
    (tests/fake_slurm.py) -- into its own run directory, and the sweep waits for all of them."""
    from .fake_slurm import install, submissions

    sweep, state = tmp_path / "sweep", tmp_path / "slurm"
    proc = run_cli(["-m", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                    "hydra.launcher.array_parallelism=1", "model.width=4,8", *smoke_args(tiny_root, tmp_path),
                    *TINY_ARGS, f"hydra.sweep.dir={sweep}"], tmp_path, env=install(tmp_path / "bin", state))
    assert proc.returncode == 0, proc.stderr[-3000:]
    [script] = submissions(state)  # one array, not one submission per job
    for line in ("--partition=gpu", "--gpus-per-node=1", "--array=0-1%1", "--time=720", "--signal=USR2@120",
                 "--job-name=train", "--cpus-per-task=8", "--mem=64GB"):
        assert f"#SBATCH {line}\n" in script, f"{line} missing from the sbatch script:\n{script}"
    runs = {OmegaConf.load(p).model.width: p.parent for p in sweep.glob("*/config.yaml")}
    assert sorted(runs) == [4, 8], sorted(sweep.iterdir())
    for run in runs.values():
        assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "metrics.json").is_file()
    assert sorted(p.name for p in state.glob("state_*")) == ["state_4200_0", "state_4200_1"]
    assert {p.read_text() for p in state.glob("state_*")} == {"COMPLETED"}


def test_ddp_trainer_config(tmp_path):
    """trainer=ddp builds a 2-process DDP Trainer with synchronised BatchNorm (on CPU here: gloo)."""
    from lightning.pytorch.strategies import DDPStrategy

    from spark_lightning.run.builders import build_trainer
    from spark_lightning.run.plan import resolve_train

    cfg = compose_train(["trainer=ddp", "trainer.accelerator=cpu", "logger=none"])
    cfg.paths.output_dir = str(tmp_path)
    plan = resolve_train(cfg)  # the builders build from the plan: 16-mixed becomes 32-true on CPU
    assert plan.trainer.precision == "32-true"
    trainer = build_trainer(plan)
    assert isinstance(trainer.strategy, DDPStrategy) and trainer.num_devices == 2
    assert trainer.strategy._get_process_group_backend() == "gloo"
    assert type(trainer.strategy._layer_sync).__name__ == "TorchSyncBatchNorm"  # no public accessor


@pytest.mark.slow
def test_ddp_two_gloo_processes_under_multirun(tiny_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(["-m", *smoke_args(tiny_root, tmp_path), "trainer=ddp", "trainer.accelerator=cpu",
                    "trainer.precision=32-true", "trainer.sync_batchnorm=false", *TINY_ARGS,
                    f"hydra.sweep.dir={sweep}"], tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [p.parent for p in sweep.glob("*/metrics.json")]
    assert len(runs) == 1, "DDP ranks must not re-launch the sweep"
    assert len([p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")]) == 1
    assert "world_size: 2" in proc.stderr or "distributed_backend=gloo" in proc.stderr


@pytest.mark.slow
def test_ddp_ranks_stop_together_under_a_time_budget(tiny_root, tmp_path):
    """Two gloo ranks under a time budget: rank 0 plans, every rank follows its plan, so both
    stop after the same whole epoch (a disagreement would hang the run)."""
    run_dir = tmp_path / "run"
    proc = run_cli([*smoke_args(tiny_root, tmp_path), "trainer=ddp", "trainer.accelerator=cpu", "trainer.precision=32-true",
                    "trainer.sync_batchnorm=false", "trainer.max_time=00:00:00:15", "trainer.max_epochs=1000",
                    "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", f"hydra.run.dir={run_dir}"],
                   tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ends = re.findall(r"stopped after epoch (\d+) of (\d+) planned, [\d.]+ min used \(rank (\d)\)",
                      proc.stdout + proc.stderr + (run_dir / "train.log").read_text())
    by_rank = {rank: (int(done), int(planned)) for done, planned, rank in ends}
    assert set(by_rank) == {"0", "1"} and by_rank["0"] == by_rank["1"] and by_rank["0"][0] == by_rank["0"][1] > 1
