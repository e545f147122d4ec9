"""Read an offline W&B run's ``.wandb`` file (LevelDB-log framed protobuf records), so tests
check what W&B would upload -- the run's summary and config -- without a server or a mock.

W&B's service keeps the file's last 32 KiB block in memory until it closes the run's stream, which
it does after ``wandb.finish()`` has returned; a reader waits for the exit record."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

BLOCK = 32768
HEADER = 7  # checksum (4), length (2), type (1); the file starts with ":W&B", magic (2), version (1)
FULL, LAST = 1, 4


def _parse(data: bytes):
    """The records of a (possibly still growing) run file; a record cut short at the end is left out."""
    from wandb.proto import wandb_internal_pb2

    assert data[:4] == b":W&B", "not a W&B run file"
    pos, buf = HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # block trailer padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if (kind == 0 and length == 0) or pos + HEADER + length > len(data):
            break
        buf += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            buf = b""
            yield record


def records(run_dir: Path, timeout: float = 60) -> list:
    """Every record of the run, once W&B has written its exit record.

    ``wandb.finish()`` returns before the file is complete: it only tells W&B's service to close
    the run's stream (``inform_finish`` publishes and does not wait), and the service writes the
    rest a moment later -- on a busy machine after a caller has already read the file.
    """
    path = next(run_dir.glob("*.wandb"))
    deadline = time.monotonic() + timeout
    while True:
        found = list(_parse(path.read_bytes()))
        if any(r.WhichOneof("record_type") == "exit" for r in found):
            return found
        assert time.monotonic() < deadline, f"{path}: no exit record {timeout:.0f} s after the run finished"
        time.sleep(0.1)


def history(run_dir: Path) -> dict:
    """The last logged value of every history key (nested keys, such as a table's fields, as dicts)."""
    out: dict = {}
    for record in records(run_dir):
        if record.WhichOneof("record_type") != "history":
            continue
        for item in record.history.item:
            path = [item.key] if item.key else list(item.nested_key)
            node = out
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = json.loads(item.value_json)
    return out


def summary_and_config(run_dir: Path) -> tuple[dict, dict]:
    """The run's final summary (later updates win) and its config, as W&B would show them."""
    summary, config = {}, {}
    for record in records(run_dir):
        kind = record.WhichOneof("record_type")
        if kind == "summary":
            for item in record.summary.update:
                key = item.key or "/".join(item.nested_key)
                summary[key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                config[item.key] = json.loads(item.value_json)
    return summary, config
