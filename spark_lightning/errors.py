"""Errors whose message is the whole story: which file or option, and what to do.

The ``python -m`` entry points print these as one line (no traceback; ``debug=true`` or
``HYDRA_FULL_ERROR=1`` shows it); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno


class SparkError(Exception):
    """A problem with the user's data, config, checkpoint or machine, explained in the message."""


class SparkDataError(SparkError, ValueError):
    """Bad or missing data; the message names the path and what to do."""


class ConfigError(SparkError, ValueError):
    """A config value that cannot work; the message names the key and the valid values."""


class CheckpointError(SparkError, ValueError):
    """A checkpoint that cannot be read or does not fit the requested model."""


# errnos whose message says it all: a full, read-only or missing place to write or read
USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.EISDIR,
               errno.ENOTDIR}


def is_user_error(err: BaseException) -> bool:
    """Errors whose message says it all (bad data, config, checkpoint, full or read-only disk)."""
    from omegaconf.errors import OmegaConfBaseException

    return isinstance(err, (SparkError, OmegaConfBaseException)) or (
        isinstance(err, OSError) and err.errno in USER_ERRNOS)


def root_cause(err: BaseException) -> BaseException:
    """The error to report: the outermost user error along the ``raise ... from`` chain (Hydra
    wraps errors raised in instantiated targets; ours wrap the library or OS error they explain),
    else the innermost cause."""
    chain = [err]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    return next((e for e in chain if is_user_error(e)), chain[-1])


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
