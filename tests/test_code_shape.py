"""The house rules a newcomer relies on: no module over 250 lines, no function over 50, imports
that go down the layers."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "spark_lightning"
MAX_MODULE, MAX_FUNCTION = 250, 50


def test_modules_and_functions_stay_small():
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        name = path.relative_to(PACKAGE.parent)
        if len(text.splitlines()) > MAX_MODULE:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION:
                    too_long.append(f"{name}:{node.lineno} {node.name}(): {length} lines")
    assert not too_long, "\n".join(too_long)


# The package's layers, top down; a module may import from its own layer and the ones below.
LAYERS = [
    {"train", "predict", "evaluate", "export", "pseudo", "report", "synth"},  # python -m shims
    {"tasks"},
    {"run"},
    {"training", "inference", "scores", "tracking", "search"},
    {"callbacks", "models", "data", "checkpoints"},
    {"atomic", "errors", "targets"},
]
# The imports that climb back up, each with its reason. A new one fails this test; so does one that
# is gone (then strike it from here).
UPWARD = {
    ("checkpoints", "training"): "load_network rebuilds the LightningModule a checkpoint names",
    ("targets", "data"): "a checkpoint's data-format class is checked against data.formats",
}


def _layer(room: str) -> int:
    return next(i for i, rooms in enumerate(LAYERS) if room in rooms)


def test_imports_go_down_the_layers():
    """Walk every ``from spark_lightning... import`` (at the top or inside functions) of every module."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts == ("__init__",):
            continue
        room = parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("spark_lightning."):
                target = node.module.split(".")[1]
                if target != room and _layer(target) < _layer(room):
                    found[(room, target)] = f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {node.module}"
    assert set(found) == set(UPWARD), "\n".join(f"{v}" for k, v in found.items() if k not in UPWARD) or \
        f"no longer upward, strike from UPWARD: {sorted(set(UPWARD) - set(found))}"
