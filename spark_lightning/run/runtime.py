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

from spark_lightning import tracking
from spark_lightning.errors import is_user_error, root_cause
from spark_lightning.run.run_dir import RunDirTaken

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
    """Around every ``run_*`` task: say where the run directory is, write ``FAILED`` with the
    root cause when the task fails (the sweep report reads it), and finish the job's W&B run in
    any case. Markers of an earlier attempt are cleared by the training that continues it
    (``clear_markers``), never by another command writing into the same folder."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> dict[str, Any]:
        quiet_libraries()
        output_dir = Path(cfg.paths.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        log.info("run directory: %s", output_dir.resolve())
        name = task.__name__.removeprefix("run_")
        try:
            return task(cfg)
        except RunDirTaken as err:  # the run directory is another run's: leave no marker in it
            log.error("%s failed: %s", name, err)
            raise
        except Exception as err:
            cause = root_cause(err)
            (output_dir / "FAILED").write_text(f"{type(cause).__name__}: {one_line(cause)}\n")
            if is_user_error(cause):
                log.error("%s failed: %s", name, one_line(cause))
            else:
                log.exception("%s failed (run dir %s)", name, output_dir)
            raise
        except (KeyboardInterrupt, SystemExit) as err:  # Ctrl-C (Lightning turns it into sys.exit(1)), SIGTERM
            from lightning.pytorch.utilities.exceptions import SIGTERMException

            what = "stopped by SIGTERM (preemption or a time limit)" if isinstance(err, SIGTERMException) else \
                f"interrupted ({type(err).__name__})"
            (output_dir / "FAILED").write_text(f"{what} before the {name} finished; resume=auto continues a training "
                                               "run\n")
            log.error("%s %s (run dir %s)", name, what, output_dir)
            if isinstance(err, SIGTERMException):  # Lightning's exits 0: a scheduler would record COMPLETED
                raise SystemExit(SIGTERM_EXIT) from err
            raise
        finally:
            tracking.finish()

    return wrapped


SIGTERM_EXIT = 143  # 128 + SIGTERM, what a shell reports for a process ended by it


class ConsoleHandler(logging.StreamHandler):
    """A console log handler that writes to whatever ``sys.stdout`` is when it logs: the rich
    progress bar swaps in a proxy that prints above the bar, so log lines are not glued onto it."""

    def __init__(self, stream=None) -> None:  # ``stream`` is ignored: always the current sys.stdout
        super().__init__(sys.stdout)

    @property
    def stream(self):  # noqa: D102
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass


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
    return any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
               and getattr(h, "stream", None) in (sys.stdout, sys.stderr) for h in logging.getLogger().handlers)


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
    for pattern in (".*anonymous setting.*", ".*pytree.*deprecated.*",
                    ".*_register_pytree_node.*", ".*isinstance.*LeafSpec.*"):
        warnings.filterwarnings("ignore", message=pattern)
    # LitLogger ads; the notice that our rich model summary replaces Lightning's default one.
    drop = _DropMessages("litlogger", "LitLogger", "Trainer already configured with model summary callbacks")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.pytorch.trainer.connectors.checkpoint_connector"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(drop)
    for name in ("onnxscript", "onnx_ir", "torch.onnx", "torch._dynamo", "torch.export"):
        logging.getLogger(name).setLevel(logging.WARNING)


def command(config_name: str, task: Callable[[DictConfig], dict[str, Any]], *,
            rewrite: Callable[[list[str]], list[str]] | None = None,
            positional: str | None = None) -> Callable[[], Any]:
    """The ``main()`` of a ``python -m spark_lightning.<name>`` command, the one pattern all of
    them share: ``rewrite`` may add overrides to the command line (the train command's recipe
    rule, spark_lightning/run/recipe.py), Hydra composes ``conf/<config_name>.yaml`` with it once
    (what ``--cfg job`` shows is what runs), the task runs under
    ``run_cli`` (one-line errors), and its ``value`` (the train command's best metric) goes
    back to Hydra's sweepers. ``positional`` names the key a first bare argument sets
    (``report SWEEP_DIR`` = ``report sweep_dir=SWEEP_DIR``)."""
    import hydra

    from spark_lightning import CONF_DIR

    @hydra.main(version_base="1.3", config_path=CONF_DIR, config_name=config_name)
    def _main(cfg: DictConfig) -> Any:
        return run_cli(task, cfg).get("value")

    def main() -> Any:
        args = sys.argv[1:]
        if positional and args and "=" not in args[0] and not args[0].startswith("-"):
            sys.argv[1:] = [f"{positional}={args[0]}", *args[1:]]
        from spark_lightning.run.arguments import unreadable_argument

        problem = unreadable_argument(sys.argv[1:])
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            sys.exit(2)
        if rewrite:
            sys.argv[1:] = rewrite(sys.argv[1:])
        return _main()

    return main


def subcommands(default: Callable[[], Any], **others: Callable[[], Any]) -> Callable[[], Any]:
    """``main()`` choosing among commands by a first bare word (``synth compare ...``)."""
    def main() -> Any:
        if len(sys.argv) > 1 and sys.argv[1] in others:
            return others[sys.argv.pop(1)]()
        return default()

    return main
