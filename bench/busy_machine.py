"""Training speed on a busy machine: how torch's CPU threads share cores with other jobs.

    python bench/busy_machine.py                  # idle, then beside 2 busy processes
    python bench/busy_machine.py --hogs 2 --seconds 20

Each setting runs in a fresh interpreter (OpenMP reads its environment once, at import): the
demo's network (U-Net EfficientNet-Lite0, 192 px, batch 8) takes training steps for a fixed
time and reports images/s, on an idle machine and beside ``--hogs`` processes that spin on the
CPU (another user's jobs). Settings: torch's default (one thread per core; GNU OpenMP's
threads spin a while between parallel regions, then sleep), waiting threads that always spin
(``ACTIVE``) or always sleep (``PASSIVE``), a short spin (``GOMP_SPINCOUNT``), one thread. Prints the table and appends it to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, publish  # noqa: E402

SETTINGS = {
    "torch's default": {},
    "OMP_WAIT_POLICY=ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
}

WORKER = """
import json, sys, time, torch
from spark_lightning.models import build_model
torch.manual_seed(0)
net = build_model(arch="unet", encoder="tu-tf_efficientnet_lite0", encoder_weights=None,
                  decoder_channels=[128, 64, 32, 16, 8])
opt = torch.optim.AdamW(net.parameters(), 1e-3)
x = torch.randint(0, 255, (8, 3, SIZE, SIZE), dtype=torch.uint8)
y = torch.randint(0, 3, (8, SIZE, SIZE))
def step():
    loss = torch.nn.functional.cross_entropy(net(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
step()
start, n = time.perf_counter(), 0
while time.perf_counter() - start < SECONDS:
    step(); n += 1
print(json.dumps({"img_s": 8 * n / (time.perf_counter() - start), "threads": torch.get_num_threads()}))
"""


def _spin(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def measure(env: dict, seconds: float, size: int) -> dict:
    code = WORKER.replace("SECONDS", str(seconds)).replace("SIZE", str(size))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    out = subprocess.run([sys.executable, "-c", code], env={**full_env, **env}, cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hogs", type=int, default=2, help="busy processes beside the training")
    parser.add_argument("--seconds", type=float, default=20.0, help="training time per measurement")
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    rows = []
    for name, env in SETTINGS.items():
        idle = measure(env, args.seconds, args.size)
        stop = mp.Event()
        hogs = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.hogs)]
        for h in hogs:
            h.start()
        time.sleep(1.0)
        try:
            busy = measure(env, args.seconds, args.size)
        finally:
            stop.set()
            for h in hogs:
                h.join()
        rows.append({"setting": name, "threads": idle["threads"], "img/s idle": round(idle["img_s"], 1),
                     f"img/s beside {args.hogs} busy processes": round(busy["img_s"], 1),
                     "busy / idle": round(busy["img_s"] / idle["img_s"], 2)})
    publish(f"Training on a busy machine ({args.size} px, batch 8, U-Net EfficientNet-Lite0)", rows, args.results)
    return rows


if __name__ == "__main__":
    main()
