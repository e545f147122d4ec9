"""The Optuna search: our Hydra sweeper on current Optuna, pruning, shared studies, killed workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from .conftest import run_main, smoke_args

optuna = pytest.importorskip("optuna")


def test_hydra_sweep_syntax_becomes_optuna_distributions():
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from spark_lightning.search.space import parse

    space, fixed = parse(["loss=choice(ce,dice)", "data.batch_size=range(4,17,4)", "optimizer.lr=tag(log, interval(1e-4, 1e-2))",
                          "optimizer.weight_decay=interval(0.0, 0.1)", "trainer.max_epochs=3"])
    assert space["loss"] == CategoricalDistribution(["ce", "dice"])
    assert space["data.batch_size"] == IntDistribution(4, 16, step=4)
    assert space["optimizer.lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert space["optimizer.weight_decay"] == FloatDistribution(0.0, 0.1)
    assert fixed == {"trainer.max_epochs": "3"}


def test_the_pruning_callback_reports_each_epoch_and_stops_the_run_when_the_pruner_says_so():
    """After each validation the trial gets the monitored value at step = epoch (from 1); once the
    pruner prunes, the run stops after that epoch and the job returns as pruned there. Sanity checks
    and epochs without the value report nothing."""
    import torch

    from spark_lightning.search.trial import TrialLink, TrialResult

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.3))
    trial = study.ask()
    link = TrialLink(study, trial._trial_id, heartbeat=30)
    callback = link.callback("val/spark_score")

    class Strategy:
        def broadcast(self, value, src=0):
            return value

    def validate(epoch, value, sanity=False):
        trainer = SimpleNamespace(callback_metrics={} if value is None else {"val/spark_score": torch.tensor(value)},
                                  current_epoch=epoch, sanity_checking=sanity, is_global_zero=True,
                                  strategy=Strategy(), should_stop=False)
        callback.on_validation_end(trainer, None)
        return trainer.should_stop

    assert not validate(0, 0.9, sanity=True)
    assert not validate(0, 0.5) and not validate(1, None)
    assert link.pruned_at is None
    assert validate(2, 0.1)  # below the threshold: pruned after epoch 3
    stored = study.trials[0]
    assert stored.intermediate_values == {1: 0.5, 3: pytest.approx(0.1)}
    assert link.result(0.5) == TrialResult(0.5, pruned_at=3)


def test_the_sweeper_records_how_each_job_ended(tmp_path):
    """A job's return becomes its trial's state: a value COMPLETE, a pruned result PRUNED, no score
    (NaN) or an exception FAIL with the reason (the job's FAILED marker's first line, if written)."""
    from hydra.core.utils import JobReturn, JobStatus
    from optuna.trial import TrialState

    from hydra_plugins.spark_optuna_sweeper.optuna_sweeper import OptunaSweeper
    from spark_lightning.search.study import REASON
    from spark_lightning.search.trial import TrialResult

    (tmp_path / "FAILED").write_text("ConfigError: data.root=/x does not exist\ntraceback...\n")
    hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(tmp_path)}}})
    endings = [JobReturn(status=JobStatus.COMPLETED, _return_value=TrialResult(0.7)),
               JobReturn(status=JobStatus.COMPLETED, _return_value=0.4),
               JobReturn(status=JobStatus.COMPLETED, _return_value=TrialResult(0.2, pruned_at=2)),
               JobReturn(status=JobStatus.COMPLETED, _return_value=TrialResult(float("nan"))),
               JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("boom\nmore"), hydra_cfg=hydra_cfg),
               JobReturn(status=JobStatus.FAILED, _return_value=ValueError("bad value\nmore"))]
    study, sweeper = optuna.create_study(direction="maximize"), OptunaSweeper()
    told = [sweeper._tell(study, study.ask(), ret) for ret in endings]
    assert told == [True, True, True, False, False, False]
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED,
                                        TrialState.FAIL, TrialState.FAIL, TrialState.FAIL]
    assert [t.value for t in trials[:2]] == [0.7, 0.4] and study.best_trial.number == 0
    assert [t.user_attrs.get(REASON) for t in trials[3:]] == [
        "returned no value (nan)", "ConfigError: data.root=/x does not exist", "ValueError: bad value"]


def test_a_dead_workers_trial_is_failed_and_queued_again(tmp_path):
    from spark_lightning.search.study import (
        HEARTBEAT,
        REASON,
        RETRY_OF,
        counts,
        fail_stale,
        storage,
    )

    study = optuna.create_study(study_name="s", storage=storage(None, tmp_path), direction="maximize")
    alive, dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study._storage.set_trial_user_attr(alive._trial_id, HEARTBEAT, time.time())
    study._storage.set_trial_user_attr(dead._trial_id, HEARTBEAT, time.time() - 3600)
    assert fail_stale(study, grace=60, retries=1) == [dead.number]
    trials = study.get_trials()
    assert trials[dead.number].state.name == "FAIL" and "no heartbeat" in trials[dead.number].user_attrs[REASON]
    assert trials[alive.number].state.name == "RUNNING"
    retry = trials[-1]
    assert retry.state.name == "WAITING" and retry.user_attrs[RETRY_OF] == dead.number
    assert counts(study) == {"finished": 0, "in_flight": 1, "waiting": 1, "complete": 0, "pruned": 0,
                             "failed": 0}  # the retry replaces it, as work still to do
    study._storage.set_trial_user_attr(alive._trial_id, HEARTBEAT, time.time() - 3600)
    assert fail_stale(study, grace=60, retries=0) == [alive.number]  # no retries left: failed for good
    assert counts(study)["failed"] == 1


def _search_args(tiny_root, tmp_path, sweep, *extra):
    return ["hparams_search=optuna", *smoke_args(tiny_root, tmp_path), "data.batch_size=4",
            f"hydra.sweep.dir={sweep}", *extra]


@pytest.mark.slow
def test_search_records_complete_and_continues_the_study(tiny_root, tmp_path, monkeypatch):
    sweep = tmp_path / "search"
    args = _search_args(tiny_root, tmp_path, sweep, "hydra.sweeper.n_trials=3", "hydra.sweeper.pruner=null")
    assert run_main("train", args, monkeypatch) == 0
    from spark_lightning.search.study import storage

    study = optuna.load_study(study_name="spark_search", storage=storage(None, sweep))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert study.metric_names == ["val/spark_score"]
    for t in study.trials:  # each trial's value is its run's best epoch
        best = json.loads((sweep / f"trial_{t.number}" / "metrics.json").read_text())["best"]
        assert t.value == pytest.approx(best["val/spark_score"])
    assert sorted(p.name for p in sweep.glob("trial_*")) == ["trial_0", "trial_1", "trial_2"]
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.best_trial == study.best_trial.number and results.rerun.startswith("python -m spark_lightning.train")
    assert "optimizer.lr=" in results.rerun and (sweep / "report.md").is_file()
    assert run_main("train", [*args[:-2], "hydra.sweeper.n_trials=5", "hydra.sweeper.pruner=null"], monkeypatch) == 0
    assert len(optuna.load_study(study_name="spark_search", storage=storage(None, sweep)).trials) == 5  # continued


@pytest.mark.slow
def test_pruned_trials_stop_early_and_are_not_failures(tiny_root, tmp_path, monkeypatch):
    """A pruner that prunes every trial at its first report: each trial trains one epoch of its
    three, ends cleanly (checkpoints, metrics.json), is PRUNED in the study and in the report."""
    sweep = tmp_path / "search"
    pruner = "{_target_:optuna.pruners.ThresholdPruner,lower:2.0,n_warmup_steps:0}"
    args = _search_args(tiny_root, tmp_path, sweep, "hydra.sweeper.n_trials=2", f"hydra.sweeper.pruner={pruner}",
                        "trainer.max_epochs=3")
    assert run_main("train", args, monkeypatch) == 0
    from spark_lightning.search.study import storage
    from spark_lightning.tasks.report import read_run

    study = optuna.load_study(study_name="spark_search", storage=storage(None, sweep))
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]
    for run in sorted(sweep.glob("trial_*")):
        assert (run / "PRUNED").read_text().strip() == "pruned after epoch 1"
        assert read_run(run)["status"] == "pruned after epoch 1" and read_run(run)["epochs"] == 1
        assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / "FAILED").exists()


def _worker(tiny_root, tmp_path, sweep, *extra) -> subprocess.Popen:
    env = {**os.environ, "SPARK_LIGHTNING_CACHE": str(tmp_path / "cache"), "WANDB_MODE": "disabled"}
    return subprocess.Popen([sys.executable, "-m", "spark_lightning.train", *_search_args(tiny_root, tmp_path, sweep, *extra)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_two_workers_share_one_study_and_run_each_trial_once(tiny_root, tmp_path):
    sweep = tmp_path / "search"
    workers = [_worker(tiny_root, tmp_path, sweep, "hydra.sweeper.n_trials=4", "trainer.max_epochs=2") for _ in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    from spark_lightning.search.study import storage

    study = optuna.load_study(study_name="spark_search", storage=storage(None, sweep))
    assert len(study.trials) == 4 and all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    assert sorted(p.name for p in sweep.glob("trial_*")) == [f"trial_{i}" for i in range(4)]  # one run dir each
    launched = [line for out in outputs for line in out.splitlines() if "++optuna.trial_number=" in line]
    numbers = [line.split("++optuna.trial_number=")[1].split()[0] for line in launched]
    assert sorted(numbers) == ["0", "1", "2", "3"]  # each trial launched once, by one of the workers
    distinct = {tuple(sorted(t.params.items())) for t in study.trials}
    assert len(distinct) == 4  # each worker draws its own stream: no parameters evaluated twice


@pytest.mark.slow
def test_a_killed_worker_leaves_no_trial_running_forever(tiny_root, tmp_path):
    """SIGKILL a worker in the middle of its trial: the next worker finds that trial's heartbeat
    stale, marks it FAIL with the cause, runs it again, and completes the study."""
    sweep = tmp_path / "search"
    slow = ["trainer.max_epochs=100000", "hydra.sweeper.heartbeat_interval=1"]
    first = _worker(tiny_root, tmp_path, sweep, "hydra.sweeper.n_trials=2", *slow)
    deadline = time.monotonic() + 300
    while not list(sweep.glob("trial_0/metrics.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    time.sleep(4)  # the killed worker's last heartbeat is now older than the grace period below
    second = _worker(tiny_root, tmp_path, sweep, "hydra.sweeper.n_trials=2", "trainer.max_epochs=1",
                     "hydra.sweeper.grace_period=3", "hydra.sweeper.heartbeat_interval=1")
    out = second.communicate(timeout=600)[0]
    assert second.returncode == 0, out[-3000:]
    from spark_lightning.search.study import REASON, RETRY_OF, counts, storage

    study = optuna.load_study(study_name="spark_search", storage=storage(None, sweep))
    killed = study.trials[0]
    assert killed.state.name == "FAIL" and "no heartbeat" in killed.user_attrs[REASON]
    retry = next(t for t in study.trials if t.user_attrs.get(RETRY_OF) == 0)
    assert retry.state.name == "COMPLETE" and retry.params == killed.params
    assert counts(study)["finished"] == 2 and not any(t.state.name == "RUNNING" for t in study.trials)


def test_a_queued_retry_is_run_by_the_next_worker(tiny_root, tmp_path, monkeypatch):
    """A killed worker's trial queued again (WAITING) is work to do, not work in flight: with
    n_trials=1 the next worker runs it (it used to count it as running and exit having run nothing)."""
    from spark_lightning.search.study import HEARTBEAT, RETRY_OF, fail_stale, storage

    sweep = tmp_path / "search"
    study = optuna.create_study(study_name="spark_search", storage=storage(None, sweep), direction="maximize")
    dead = study.ask({"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
    study._storage.set_trial_user_attr(dead._trial_id, HEARTBEAT, time.time() - 3600)
    fail_stale(study, grace=60, retries=1)
    args = _search_args(tiny_root, tmp_path, sweep, "hydra.sweeper.n_trials=1", "hydra.sweeper.pruner=null")
    assert run_main("train", args, monkeypatch) == 0
    trials = optuna.load_study(study_name="spark_search", storage=storage(None, sweep)).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"] and trials[1].user_attrs[RETRY_OF] == 0
    assert trials[1].params["optimizer.lr"] == dead.params["optimizer.lr"]  # the same trial, run again


@pytest.mark.slow
def test_a_worker_stopped_by_sigterm_exits_non_zero_and_its_trial_is_run_again(tiny_root, tmp_path):
    sweep = tmp_path / "search"
    first = _worker(tiny_root, tmp_path, sweep, "hydra.sweeper.n_trials=2", "trainer.max_epochs=100000")
    deadline, metrics = time.monotonic() + 300, sweep / "trial_0" / "metrics.json"
    while time.monotonic() < deadline and not (metrics.is_file() and json.loads(metrics.read_text() or "{}").get("history")):
        time.sleep(0.2)  # a few epochs in: the training is running (under load this takes a while)
    first.send_signal(signal.SIGTERM)
    out = first.communicate(timeout=300)[0]
    assert first.returncode == 143, out[-3000:]
    from spark_lightning.search.study import REASON, RETRY_OF, storage

    study = optuna.load_study(study_name="spark_search", storage=storage(None, sweep))
    assert study.trials[0].state.name == "FAIL" and "stopped (SIGTERM)" in study.trials[0].user_attrs[REASON]
    assert not any(t.state.name == "RUNNING" for t in study.trials)
    second = _worker(tiny_root, tmp_path, sweep, "hydra.sweeper.n_trials=2", "trainer.max_epochs=1")
    out = second.communicate(timeout=600)[0]
    assert second.returncode == 0, out[-3000:]
    study = optuna.load_study(study_name="spark_search", storage=storage(None, sweep))
    effective = [t for t in study.trials if t.state.name != "FAIL"]
    assert [t.state.name for t in effective] == ["COMPLETE", "COMPLETE"]
    assert any(t.user_attrs.get(RETRY_OF) == 0 for t in effective)


def test_a_damaged_journal_is_one_line_and_never_written_to(tiny_root, tmp_path, monkeypatch, capsys):
    from spark_lightning.search.study import storage

    sweep = tmp_path / "search"
    study = optuna.create_study(study_name="spark_search", storage=storage(None, sweep), direction="maximize")
    study.enqueue_trial({"optimizer.lr": 1e-3})
    journal = sweep / "optuna.journal"
    journal.write_bytes(journal.read_bytes()[:-15])  # a writer killed mid-line
    before = journal.read_bytes()
    args = _search_args(tiny_root, tmp_path, sweep, "hydra.sweeper.n_trials=1")
    assert run_main("train", args, monkeypatch) != 0
    err = capsys.readouterr()
    text = err.out + err.err
    assert f"Optuna journal {journal}: line" in text and "is not a whole record" in text
    assert "JSONDecodeError" not in text and journal.read_bytes() == before


def test_n_trials_below_one_is_one_line(tiny_root, tmp_path, monkeypatch, capsys):
    args = _search_args(tiny_root, tmp_path, tmp_path / "search", "hydra.sweeper.n_trials=0")
    assert run_main("train", args, monkeypatch) != 0
    assert "hydra.sweeper.n_trials=0: give a whole number >= 1" in "".join(capsys.readouterr())


@pytest.mark.slow
def test_a_diverging_trial_fails_and_the_optuna_search_goes_on(tiny_root, tmp_path, monkeypatch):
    import optuna

    sweep = tmp_path / "optuna"
    args = ["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.sampler.n_startup_trials=4",
            "optimizer.lr=choice(0.001,1e12)", "optimizer=sgd",
            "scheduler=none", "callbacks.nan_guard.check_every_n_steps=1", "trainer.max_epochs=3",
            *smoke_args(tiny_root, tmp_path), f"hydra.sweep.dir={sweep}"]
    run_main("train", [*args, "hydra.sweeper.pruner=null"], monkeypatch)
    from spark_lightning.search.study import storage

    study = optuna.load_study(study_name="spark_search", storage=storage(None, sweep))
    states = {t.params["optimizer.lr"]: t.state.name for t in study.trials}
    assert len(study.trials) == 4 and states[1e12] == "FAIL" and states[0.001] == "COMPLETE"
    failed = [p for p in sweep.glob("*/FAILED")]
    assert failed and all("TrainingDiverged" in p.read_text() for p in failed)
    reasons = [t.user_attrs["fail_reason"] for t in study.trials if t.state.name == "FAIL"]
    assert reasons and all(r.startswith("TrainingDiverged: training loss became") for r in reasons)  # its one-line cause
