"""Read an offline W&B run's ``.wandb`` file (LevelDB-log framed protobuf records), so tests
check what W&B would upload -- the run's summary and config -- without a server or a mock."""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7  # checksum (4), length (2), type (1); the file starts with ":W&B", magic (2), version (1)
FULL, LAST = 1, 4


def records(run_dir: Path):
    from wandb.proto import wandb_internal_pb2

    data = next(run_dir.glob("*.wandb")).read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, buf = HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # block trailer padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:
            break
        buf += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            buf = b""
            yield record


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
