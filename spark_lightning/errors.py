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
