"""A run directory belongs to one training. The lock keeps a second training out while one
runs, a fresh training never starts over a finished one, and ``RunDirGuard`` (a Hydra
callback) checks both, and that the folder is writable, *before* Hydra writes its ``.hydra/``
files and log into it: a refused command leaves the other run's folder as it was."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from spark_lightning.atomic import LockHeld, file_lock, lock_holder
from spark_lightning.errors import SparkError

# What a training leaves in its run directory; a fresh run into a folder holding one of these
# would replace it.
RUN_FILES = ("checkpoints/last.ckpt", "checkpoints/best.ckpt", "metrics.json")


class RunDirTaken(SparkError):
    """The run directory belongs to another run: nothing of ours may be written into it."""


class RunDirBusy(RunDirTaken):
    """Another process is training into this run directory."""


class RunDirFinished(RunDirTaken):
    """The run directory holds an earlier training, and this one neither resumes nor replaces it."""


class RunDirUnwritable(RunDirTaken):
    """The run directory cannot be created or written."""


def is_rank_zero() -> bool:
    """Whether this is the first process of a (possibly distributed) run, as the launcher's
    environment says (Lightning, torchrun and SLURM set these for the other ranks)."""
    return all(int(os.environ.get(k, 0) or 0) == 0 for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def slurm_requeued() -> int:
    """How many times SLURM has requeued this job (0: a first start, or not under SLURM)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", 0) or 0)


def effective_resume(cfg: DictConfig) -> str | None:
    """``resume``, where a job SLURM requeued (after a preemption or a time limit) continues its
    run directory as with resume=auto: the requeued command is the same one, without the flag."""
    resume = cfg.get("resume")
    return "auto" if resume is None and slurm_requeued() and cfg.get("ckpt_path") is None else resume


def clear_markers(output_dir: Path) -> None:
    """Remove ``FAILED`` / ``PRUNED`` of an earlier attempt: only a training that continues or
    replaces the run in ``output_dir`` calls this."""
    for marker in ("FAILED", "PRUNED"):
        (output_dir / marker).unlink(missing_ok=True)


def _busy(output_dir: Path, owner: str) -> RunDirBusy:
    return RunDirBusy(f"run directory {output_dir} is in use by another training ({owner or 'another process'}): "
                      "choose another hydra.run.dir, or wait for that run to end.")


@contextlib.contextmanager
def run_dir_lock(output_dir: Path):
    """Hold ``<run dir>/.lock`` for the block: a second training into the same directory stops
    at once with one line, instead of overwriting the first one's files. Only rank 0 locks (the
    other DDP ranks share the directory by design). The file is removed while still held, so a
    finished run leaves none behind and no one can take a lock on a file about to vanish."""
    if not is_rank_zero():
        yield
        return
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(output_dir / ".lock", wait=False, owner=f"pid {os.getpid()}"))
        except LockHeld as held:
            raise _busy(output_dir, held.owner) from None
        yield


def check_not_busy(output_dir: Path) -> None:
    """Raise ``RunDirBusy`` if a training holds the directory's lock now (the lock is not kept)."""
    owner = lock_holder(output_dir / ".lock")
    if owner is not None:
        raise _busy(output_dir, owner)


def refuse_finished_run(output_dir: Path, resume: str | None) -> None:
    """A fresh training never replaces an earlier one's checkpoints and metrics silently (a
    requeued job that forgot resume=auto would): one line saying how to continue or replace it."""
    found = [name for name in RUN_FILES if (output_dir / name).is_file()]
    if not found:
        return
    hint = ("resume=auto found no checkpoints/last.ckpt to continue; " if resume == "auto" else
            "resume=auto continues it; ")
    raise RunDirFinished(f"run directory {output_dir} already holds a training ({', '.join(found)}): {hint}choose "
                         "another hydra.run.dir for a new run, or set overwrite=true to replace it.")


def start_point(output_dir: Path, cfg: DictConfig) -> str | None:
    """The checkpoint the training ``cfg`` continues in ``output_dir`` (``ckpt_path``, or
    ``last.ckpt`` under resume=auto or a SLURM requeue), or None for a fresh start, which is
    refused over a finished run unless ``overwrite=true``."""
    resume = effective_resume(cfg)
    ckpt = cfg.get("ckpt_path")
    last = output_dir / "checkpoints" / "last.ckpt"
    if ckpt is None and resume == "auto" and last.is_file():
        ckpt = str(last)
    if ckpt is None and not cfg.get("overwrite"):
        refuse_finished_run(output_dir, resume)
    return ckpt


def check_writable(folder: Path, option: str) -> None:
    """Create ``folder`` and write a file into it, or raise one line naming ``option``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise RunDirUnwritable(f"{option}={folder} cannot be written ({reason}): choose a writable folder, e.g. "
                               f"{option}=outputs/my_run, or make it writable.") from None


class RunDirGuard(Callback):
    """Hydra callback (``hydra.callbacks.run_dir_guard`` in conf/hydra/default.yaml): before Hydra
    sets up the job's folder, refuse an unwritable one, and for a training one another training
    holds or a finished training it would start over. One line on stderr, exit 1."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._guard(lambda: self._check_run(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        self._guard(lambda: check_writable(folder, "hydra.sweep.dir"))

    @staticmethod
    def _check_run(config: DictConfig) -> None:
        if not is_rank_zero():  # DDP ranks > 0 join rank 0's run directory by design
            return
        folder = Path(str(OmegaConf.select(config, "hydra.run.dir")))
        if config.get("task_name") == "train" and folder.is_dir():
            check_not_busy(folder)
            start_point(folder, config)
        check_writable(folder, "hydra.run.dir")

    @staticmethod
    def _guard(check) -> None:
        try:
            check()
        except RunDirTaken as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(1)
