"""Errors whose message is the whole story: which file or option, and what to do.

The ``python -m`` entry points print these as one line (no traceback; ``debug=true`` or
``HYDRA_FULL_ERROR=1`` shows it); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SparkError(Exception):
    """A problem with the user's data, config, checkpoint or machine, explained in the message."""


class SparkDataError(SparkError, ValueError):
    """Bad or missing data; the message names the path and what to do."""


class ConfigError(SparkError, ValueError):
    """A config value that cannot work; the message names the key and the valid values."""


class CheckpointError(SparkError, ValueError):
    """A checkpoint that cannot be read or does not fit the requested model."""


def root_cause(err: BaseException) -> BaseException:
    """The innermost ``raise ... from`` cause (Hydra wraps errors raised in instantiated targets)."""
    while err.__cause__ is not None:
        err = err.__cause__
    return err


class plain_errors:  # noqa: N801 - used as a context manager
    """``with plain_errors(): instantiate(...)`` -- our own errors come out as themselves, not
    wrapped in Hydra's InstantiationException, so callers (and tests) see the one-line error."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, err, tb) -> bool:
        if err is not None and type(err).__name__ == "InstantiationException":
            cause = root_cause(err)
            if isinstance(cause, SparkError):
                raise cause from None
        return False
