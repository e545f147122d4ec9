"""What every task shares: the task wrapper (run directory, FAILED marker, W&B finish), one-line
errors at the command line, and silencing library chatter that is not the user's business."""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from spark_lightning import wandb_run
from spark_lightning.errors import is_user_error, root_cause

log = logging.getLogger(__name__)


def one_line(err: BaseException) -> str:
    """The message of an error as one line, also for errors re-raised from DataLoader workers
    (whose message is the worker's whole traceback)."""
    text = str(err).strip()
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = [ln for ln in text.splitlines() if ln.strip()][-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split())


def task_wrapper(task: Callable[[DictConfig], dict[str, Any]]) -> Callable[[DictConfig], dict[str, Any]]:
    """Around every ``run_*`` task: say where the run directory is, clear a stale FAILED marker,
    write ``FAILED`` with the root cause when the task fails (the sweep report reads it), and
    finish the job's W&B run in any case."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> dict[str, Any]:
        quiet_libraries()
        output_dir = Path(cfg.paths.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "FAILED").unlink(missing_ok=True)  # from an earlier attempt of a resumed run
        log.info("run directory: %s", output_dir.resolve())
        try:
            return task(cfg)
        except Exception as err:
            cause = root_cause(err)
            message = f"{type(cause).__name__}: {one_line(cause)}"
            (output_dir / "FAILED").write_text(message + "\n")
            if is_user_error(cause):
                log.error("%s failed: %s", task.__name__.removeprefix("run_"), one_line(cause))
            else:
                log.exception("%s failed (run dir %s)", task.__name__.removeprefix("run_"), output_dir)
            raise
        finally:
            wandb_run.finish()

    return wrapped


class TaskFailed(Exception):
    """Raised to Hydra for a user error under --multirun: printed as one line, other jobs go on."""


def _compact(message: str) -> Exception:
    from hydra.errors import CompactHydraException

    return type("TaskFailed", (TaskFailed, CompactHydraException), {})(message)


def run_cli(task: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any]:
    """Call a task from a ``@hydra.main`` shim. A user error ends the command with its one-line
    message and no traceback (``debug=true`` or ``HYDRA_FULL_ERROR=1`` show the traceback)."""
    try:
        return task(cfg)
    except Exception as err:
        cause = root_cause(err)
        if cfg.get("debug") or os.environ.get("HYDRA_FULL_ERROR") == "1" or not is_user_error(cause):
            raise
        message = f"error: {one_line(cause)}"
        if _multirun():
            raise _compact(message) from None
        if not _console_logging():  # else the task wrapper's log line already showed it
            print(message, file=sys.stderr)
        sys.exit(1)


def _console_logging() -> bool:
    return any(type(h) is logging.StreamHandler and getattr(h, "stream", None) in (sys.stdout, sys.stderr)
               for h in logging.getLogger().handlers)


def _multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


class _DropMessages(logging.Filter):
    def __init__(self, *needles: str) -> None:
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(n in record.getMessage() for n in self.needles)


def quiet_libraries() -> None:
    """Filter the specific messages a user cannot act on (not warnings in general)."""
    for pattern in (".*weights_only.*", ".*anonymous setting.*", ".*pytree.*deprecated.*",
                    ".*_register_pytree_node.*", ".*isinstance.*LeafSpec.*"):
        warnings.filterwarnings("ignore", message=pattern)
    drop = _DropMessages("litlogger", "LitLogger", "weights_only")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.pytorch.trainer.connectors.checkpoint_connector"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(drop)
    for name in ("onnxscript", "onnx_ir", "torch.onnx", "torch._dynamo", "torch.export"):
        logging.getLogger(name).setLevel(logging.WARNING)
