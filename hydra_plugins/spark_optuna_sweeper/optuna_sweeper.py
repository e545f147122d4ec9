"""``hydra/sweeper=optuna``: a Hydra sweeper on current Optuna (4.x/5.x).

Hydra loads sweepers from the ``hydra_plugins`` package, so the class lives here; the work is in
``spark_lightning.search``. Each process that runs the command is a worker: it counts the study's
trials, asks for the next one, launches it as a Hydra job (through whatever launcher is
configured: local, SLURM), and tells the study how it ended (COMPLETE with its value, PRUNED,
or FAIL with its one-line cause), until ``n_trials`` trials of the study have finished or are
running. Running the command again, or on more machines, continues the same study.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import signal
import warnings
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class OptunaSweeper(Sweeper):
    """The config surface of Hydra's Optuna sweeper (sampler, direction, study_name, storage,
    n_trials, n_jobs, max_failure_rate, params), plus ``pruner``, ``retries`` (of a killed
    worker's trial), ``heartbeat_interval`` and ``grace_period`` (seconds)."""

    def __init__(self, sampler: Any = None, direction: str = "maximize", study_name: str | None = None,
                 storage: str | None = None, n_trials: int = 20, n_jobs: int = 1, max_failure_rate: float = 1.0,
                 params: Any = None, pruner: Any = None, retries: int = 1, heartbeat_interval: float = 30.0,
                 grace_period: float = 300.0) -> None:
        self.sampler_cfg, self.pruner_cfg = sampler, pruner
        self.direction, self.study_name, self.storage_spec = str(direction), study_name, storage
        self.n_trials, self.n_jobs, self.max_failure_rate = int(n_trials), max(1, int(n_jobs)), float(max_failure_rate)
        self.params = params or {}
        self.retries, self.heartbeat_interval, self.grace_period = int(retries), float(heartbeat_interval), float(grace_period)
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context,
                                                                task_function=task_function)
        self.sweep_dir = Path(config.hydra.sweep.dir)
        self.metric = str(config.get("optimized_metric") or "value")

    def _study(self) -> Any:
        import optuna

        from spark_lightning.search.study import make_pruner, storage

        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        sampler, pruner = _built(self.sampler_cfg), make_pruner(self.pruner_cfg)  # Hydra may have built them
        study = optuna.create_study(study_name=self.study_name, storage=storage(self.storage_spec, self.sweep_dir),
                                    sampler=sampler, pruner=pruner, direction=self.direction, load_if_exists=True)
        with warnings.catch_warnings():  # "experimental" since Optuna 3.2, and what the dashboards show
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([self.metric])
        return study

    def sweep(self, arguments: list[str]) -> None:
        from spark_lightning.errors import ConfigError
        from spark_lightning.search import space
        from spark_lightning.search.study import Heartbeat, ask_lock, counts, fail_stale, join_as_worker

        if self.n_trials < 1:
            raise ConfigError(f"hydra.sweeper.n_trials={self.n_trials}: give a whole number >= 1.")
        entries = [f"{k}={v}" for k, v in OmegaConf.to_container(OmegaConf.create(dict(self.params))).items()]
        distributions, fixed = space.parse(entries + list(arguments))
        study = self._study()
        with ask_lock(self.storage_spec, self.sweep_dir):
            worker = join_as_worker(study)
        if worker and hasattr(study.sampler, "reseed_rng"):  # the same seed would propose the same parameters
            study.sampler.reseed_rng()
            log.info("worker %d of study %s: its sampler draws its own random stream", worker, study.study_name)
        log.info("study %s in %s: %d trials in all, %s %s, pruner %s", study.study_name,
                 self.storage_spec or f"journal:{self.sweep_dir / 'optuna.journal'}", self.n_trials, self.direction,
                 "" if not distributions else "over " + ", ".join(distributions), type(study.pruner).__name__)
        failures = launched = 0
        while True:
            with ask_lock(self.storage_spec, self.sweep_dir):
                fail_stale(study, self.grace_period, self.retries)
                state = counts(study)
                batch = min(self.n_jobs, self.n_trials - state["finished"] - state["in_flight"])
                trials = [study.ask(distributions) for _ in range(max(0, batch))]
            if not trials:
                break
            overrides = [tuple([*(f"{k}={v}" for k, v in fixed.items()), *(f"{k}={v}" for k, v in t.params.items()),
                                f"++optuna.trial_id={t._trial_id}", f"++optuna.trial_number={t.number}"]) for t in trials]
            with Heartbeat(study, [t._trial_id for t in trials], self.heartbeat_interval), _stopped(
                    study, trials, self.retries):
                returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            failures += sum(not self._tell(study, t, ret) for t, ret in zip(trials, returns))
            launched += len(trials)
            if failures / launched > self.max_failure_rate:
                raise RuntimeError(f"{failures} of {launched} trials failed, more than max_failure_rate="
                                   f"{self.max_failure_rate}: see the FAILED markers in {self.sweep_dir}.")
        self._summary(study, fixed)

    def _tell(self, study: Any, trial: Any, ret: Any) -> bool:
        """Record how a job ended; False for a failed one."""
        from optuna.trial import TrialState

        from spark_lightning.search.study import REASON
        from spark_lightning.search.trial import TrialResult

        try:
            result = ret.return_value  # re-raises the job's exception
        except BaseException as err:  # noqa: BLE001 - a failed trial is recorded, the search goes on
            reason = _failure_reason(ret, err)
            study._storage.set_trial_user_attr(trial._trial_id, REASON, reason)
            study.tell(trial, state=TrialState.FAIL)
            log.warning("trial %d failed: %s", trial.number, reason)
            return False
        if isinstance(result, TrialResult) and result.pruned_at is not None:
            study.tell(trial, state=TrialState.PRUNED)
            return True
        value = result.value if isinstance(result, TrialResult) else result
        if value is None or value != value:  # no score (NaN): a failed trial, not a winner
            study._storage.set_trial_user_attr(trial._trial_id, REASON, f"returned no value ({value})")
            study.tell(trial, state=TrialState.FAIL)
            return False
        study.tell(trial, float(value))
        return True

    def _summary(self, study: Any, fixed: dict[str, str]) -> None:
        """The best trial, a command that reruns it, and the sweep report."""
        from spark_lightning.search.study import counts

        state = counts(study)
        log.info("study %s: %d complete, %d pruned, %d failed, %d still running elsewhere", study.study_name,
                 state["complete"], state["pruned"], state["failed"], state["in_flight"])
        best = _best(study)
        results: dict[str, Any] = {"name": "optuna", "study": study.study_name, **state}
        if best is not None:
            args = [*(f"{k}={v}" for k, v in fixed.items() if k != "hparams_search"),  # a single run, not a search
                    *(f"{k}={v}" for k, v in best.params.items())]
            command = "python -m spark_lightning.train " + " ".join(shlex.quote(a) for a in args)
            results.update(best_value=best.value, best_params=dict(best.params), best_trial=best.number, rerun=command)
            log.info("best trial %d: %s = %.4f; rerun it with:\n  %s", best.number, self.metric, best.value, command)
        OmegaConf.save(OmegaConf.create(results), self.sweep_dir / "optimization_results.yaml")
        try:
            from spark_lightning.tasks.report import write_report

            write_report(self.sweep_dir)
            log.info("report: %s", self.sweep_dir / "report.md")
        except Exception as err:  # noqa: BLE001 - the study is the result; the report is a view of it
            log.warning("no sweep report: %s", err)


@contextlib.contextmanager
def _stopped(study: Any, trials: list, retries: int):
    """A worker stopped by SIGTERM (a scheduler's preemption or time limit) or Ctrl-C while its
    trials run: they are marked FAIL with that cause and queued again for the next worker, and
    the worker exits non-zero (143 for SIGTERM) so that the scheduler knows."""
    from spark_lightning.run.runtime import SIGTERM_EXIT
    from spark_lightning.search.study import fail_and_retry

    received: list[int] = []
    previous = signal.getsignal(signal.SIGTERM)

    def note(signum, frame):
        """Remember the signal. While a training runs, Lightning's handler is the installed one
        and calls this one too: the training then stops gracefully (last.ckpt saved) and we only
        take note. Outside a training this is the installed handler, and stops the worker."""
        received.append(signum)
        if callable(previous):
            previous(signum, frame)
        elif signal.getsignal(signal.SIGTERM) is note and previous != signal.SIG_IGN:
            raise SystemExit(SIGTERM_EXIT)

    signal.signal(signal.SIGTERM, note)
    try:
        yield
    except (SystemExit, KeyboardInterrupt) as err:
        what = "SIGTERM" if received or getattr(err, "code", None) == SIGTERM_EXIT else type(err).__name__
        for trial in trials:
            with contextlib.suppress(Exception):  # already told
                fail_and_retry(study, trial, f"its worker was stopped ({what})", retries)
        raise SystemExit(SIGTERM_EXIT if what == "SIGTERM" else 130) from err
    finally:
        signal.signal(signal.SIGTERM, previous)
    if received:  # the jobs ended on their own, but the worker was asked to stop: stop before the next ask
        raise SystemExit(SIGTERM_EXIT)


def _built(config: Any) -> Any:
    """A sampler or pruner from its config (or as Hydra already instantiated it)."""
    from hydra.utils import instantiate

    if config is None or not isinstance(config, (dict, DictConfig)):
        return config
    return instantiate(config)


def _best(study: Any) -> Any:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def _failure_reason(ret: Any, err: BaseException) -> str:
    """The job's FAILED marker (the root cause in one line), else the exception's first line."""
    hydra_cfg = getattr(ret, "hydra_cfg", None)  # None when the job failed before Hydra set it up
    folder = OmegaConf.select(hydra_cfg, "hydra.runtime.output_dir", default=None) if hydra_cfg is not None else None
    marker = Path(folder) / "FAILED" if folder else None
    if marker is not None and marker.is_file():
        return marker.read_text().strip().splitlines()[0][:300]
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300] if text else ''}"
