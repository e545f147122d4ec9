"""One Optuna study shared by any number of workers: storage, heartbeats, stale trials.

``journal:PATH`` (the default) is Optuna's journal file, safe on NFS: workers on several
machines (SLURM array jobs) append to one log. Anything else is an RDB URL (sqlite://,
postgresql://...). A trial is kept alive by a heartbeat (a time stamp in its user attributes,
refreshed by the worker waiting for it and by the job running it); a RUNNING trial whose
heartbeat is older than the grace period belonged to a worker that was killed: it is marked
FAIL with that cause and, up to ``retries`` times, queued again with the same parameters.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

from spark_lightning.atomic import file_lock

log = logging.getLogger(__name__)
HEARTBEAT, REASON, RETRY_OF = "heartbeat", "fail_reason", "retry_of"


def storage(spec: str | None, sweep_dir: str | Path) -> Any:
    """An Optuna storage from ``journal:PATH``, an RDB URL, or None (the sweep dir's journal).
    A journal that does not read cleanly is refused before Optuna opens it, so nothing is ever
    appended to a damaged one."""
    import optuna

    spec = spec or f"journal:{Path(sweep_dir) / 'optuna.journal'}"
    if spec.startswith("journal:"):
        path = Path(spec[len("journal:"):]).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        check_journal(path)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    return spec


def check_journal(path: Path) -> None:
    """One line naming the journal and its first bad record (a killed writer's truncated last
    line, or garbage), instead of Optuna's page of JSONDecodeError."""
    import json

    from spark_lightning.errors import ConfigError

    if not path.is_file():
        return
    data = path.read_bytes()
    lines = data.split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            json.loads(line)
            complete = number < len(lines)  # a record must end with a newline
        except ValueError:
            complete = False
        if not complete:
            raise ConfigError(
                f"Optuna journal {path}: line {number} of {len(lines) - (not lines[-1])} is not a whole record "
                f"({line[:60]!r}...; a writer was killed mid-line, or the file was edited). It was not opened and "
                "nothing was written to it: keep a copy, then remove that line (e.g. `head -n "
                f"{number - 1} {path} > fixed && mv fixed {path}`), or choose another hydra.sweeper.storage.")


@contextlib.contextmanager
def ask_lock(spec: str | None, sweep_dir: str | Path):
    """Workers sharing a journal file take turns counting and asking, so together they ask for
    no more than ``n_trials`` (an RDB study relies on its database)."""
    spec = spec or f"journal:{Path(sweep_dir) / 'optuna.journal'}"
    if not spec.startswith("journal:"):
        yield
        return
    with file_lock(Path(spec[len("journal:"):] + ".ask.lock").expanduser()):
        yield


class Heartbeat:
    """Refresh the heartbeat of some trials every ``interval`` seconds, in a thread, while the
    block runs."""

    def __init__(self, study: Any, trial_ids: list[int], interval: float) -> None:
        self.study, self.trial_ids, self.interval = study, trial_ids, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="optuna-heartbeat", daemon=True)

    def beat(self) -> None:
        from optuna.trial import TrialState

        for trial_id in self.trial_ids:
            with contextlib.suppress(Exception):  # finished meanwhile: nothing to keep alive
                if self.study._storage.get_trial(trial_id).state == TrialState.RUNNING:
                    self.study._storage.set_trial_user_attr(trial_id, HEARTBEAT, time.time())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def fail_and_retry(study: Any, trial: Any, reason: str, retries: int) -> None:
    """Mark a trial FAIL with its reason and, while it has retries left, queue it again with
    the same parameters (a WAITING trial the next ``ask`` of any worker takes)."""
    from optuna.trial import TrialState

    study._storage.set_trial_user_attr(trial._trial_id, REASON, reason)
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    origin = study._storage.get_trial(trial._trial_id).user_attrs.get(RETRY_OF, trial.number)
    tries = sum(1 for t in trials if t.user_attrs.get(RETRY_OF) == origin)
    if tries < retries:
        study.enqueue_trial(trial.params, user_attrs={RETRY_OF: origin})
        log.warning("trial %d: %s; queued again (retry %d of %d)", trial.number, reason, tries + 1, retries)
    else:
        log.warning("trial %d: %s", trial.number, reason)


def fail_stale(study: Any, grace: float, retries: int) -> list[int]:
    """Mark RUNNING trials without a recent heartbeat FAIL (their worker is gone), and queue each
    again with its parameters while it has retries left; returns the failed trial numbers."""
    from optuna.trial import TrialState

    now, failed = time.time(), []
    for trial in study.get_trials(deepcopy=False):
        if trial.state != TrialState.RUNNING:
            continue
        last = trial.user_attrs.get(HEARTBEAT) or (trial.datetime_start.timestamp() if trial.datetime_start else now)
        if now - last < grace:
            continue
        with contextlib.suppress(Exception):  # another worker got there first
            fail_and_retry(study, trial, f"no heartbeat for {now - last:.0f} s: its worker was killed or lost", retries)
            failed.append(trial.number)
    return failed


def effective_trials(study: Any) -> list[Any]:
    """The trials that count: of a trial and its retries, the latest."""
    groups: dict[int, list] = {}
    for t in study.get_trials(deepcopy=False):
        groups.setdefault(t.user_attrs.get(RETRY_OF, t.number), []).append(t)
    return [max(g, key=lambda t: t.number) for g in groups.values()]


def counts(study: Any) -> dict[str, int]:
    """Effective trials by state: finished (complete, pruned, failed), in flight (RUNNING on
    some worker) and waiting (queued, e.g. a killed worker's retry: the next ``ask`` takes it,
    so it is work still to do, not work in flight)."""
    from optuna.trial import TrialState

    out = {"finished": 0, "in_flight": 0, "waiting": 0, "complete": 0, "pruned": 0, "failed": 0}
    names = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}
    for t in effective_trials(study):
        if t.state in names:
            out["finished"] += 1
            out[names[t.state]] += 1
        elif t.state == TrialState.WAITING:
            out["waiting"] += 1
        else:
            out["in_flight"] += 1
    return out


def join_as_worker(study: Any) -> int:
    """This worker's number in the study (0 for the first), counted in the study itself; call
    under ``ask_lock`` so that workers starting together get different numbers."""
    number = int(study.user_attrs.get("workers", 0))
    study.set_user_attr("workers", number + 1)
    return number


PRUNERS = {  # hydra.sweeper.pruner by name; a {_target_: ...} config works too
    "median": ("MedianPruner", {"n_startup_trials": 3, "n_warmup_steps": 1}),
    "successive_halving": ("SuccessiveHalvingPruner", {}),
    "hyperband": ("HyperbandPruner", {"min_resource": 1}),
}


def make_pruner(spec: Any) -> Any:
    """The pruner of ``hydra.sweeper.pruner``: a name (median, successive_halving, hyperband),
    a ``_target_`` config, an already built pruner, or none."""
    import optuna

    if spec is None or spec in ("none", "null"):
        return optuna.pruners.NopPruner()
    if isinstance(spec, str):
        if spec not in PRUNERS:
            from spark_lightning.errors import ConfigError

            raise ConfigError(f"hydra.sweeper.pruner={spec}: use one of {', '.join(PRUNERS)}, none, or a "
                              "{_target_: optuna.pruners....} config.")
        name, kwargs = PRUNERS[spec]
        return getattr(optuna.pruners, name)(**kwargs)
    if isinstance(spec, optuna.pruners.BasePruner):
        return spec
    from hydra.utils import instantiate

    return instantiate(spec)
