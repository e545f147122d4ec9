"""Shared bits of the benchmark scripts: config composition and the results file."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from spark_lightning.atomic import write_bytes_atomic

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"


def compose_cfg(overrides: list[str]):
    """The train config without the default experiment (cpu_default): benchmarks measure the
    framework with the plain group defaults, not the 10-minute CPU recipe's schedule and budget."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=["~experiment", *overrides])


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def append_results(title: str, table: str, out: Path = RESULTS) -> None:
    """Append a dated section (device, torch version, exact command) to the results file."""
    header = (
        f"\n## {title}\n\n"
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}\n"
        f"- device: {device_name()}\n"
        f"- torch {torch.__version__}, python {platform.python_version()}\n"
        f"- command: `{' '.join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])}`\n\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = out.read_text() if out.exists() else "# Benchmark results\n"
    write_bytes_atomic(out, (existing + header + table + "\n").encode())


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def publish(title: str, rows: list[dict], out: Path = RESULTS) -> str:
    """Print the rows as a table and append it to the results file."""
    table = markdown_table(rows, list(rows[0]))
    print(table)
    append_results(title, table, out)
    return table
