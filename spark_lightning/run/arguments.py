"""Command-line arguments read before Hydra's override parser, so that the common mistakes
(an unquoted path with spaces or accents) are one line saying how to quote, not a lexer trace."""

from __future__ import annotations

# Hydra's flags that take the next word as their value (--cfg job, --config-name train, ...)
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
               "-cd", "--info", "-i", "--experimental-rerun"}


def unreadable_argument(args: list[str]) -> str | None:
    """One line for a command-line argument Hydra's override parser would answer with a lexer
    trace: a path with spaces left unquoted (it arrives as two words), accents or other
    characters its grammar does not take unquoted."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    skip = False
    for i, arg in enumerate(args):
        if skip or arg.startswith("-"):
            skip = arg in VALUE_FLAGS and i + 1 < len(args) and "=" not in args[i + 1]
            continue
        try:
            parser.parse_override(arg)
        except Exception:  # noqa: BLE001 - Hydra raises its own exception types for grammar errors
            key, _, value = (args[i - 1] if i and "=" not in arg and "=" in args[i - 1] else arg).partition("=")
            if "=" not in arg and i and "=" in args[i - 1]:
                return (f"the argument {arg!r} is not key=value: a value with spaces must be quoted, e.g. "
                        f"\"{key}='{value} {arg}'\" (the double quotes for the shell, the single ones for Hydra).")
            return (f"cannot read the argument {arg!r}: quote a value with spaces, accents or other special "
                    f"characters, e.g. \"{key}='{value}'\" (the double quotes for the shell, the single ones for Hydra).")
    return None
