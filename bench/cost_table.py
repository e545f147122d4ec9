"""The cost of every model config: parameters, FLOPs and multiply-adds per image, and the
SPARK 2026 cost terms (1 - params / 30 M, 1 - GFLOPs / 200), counted on the meta device by
spark_lightning.models.cost (torch.utils.flop_counter); and the images/s one forward pass
(batch 1, eval mode, no grad) measures on this machine's device.

    python bench/cost_table.py                 # at 1024 x 1024, every conf/model/*.yaml
    python bench/cost_table.py --size 512 --repeats 0    # counts only, no timing
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, publish  # noqa: E402

from spark_lightning.models.cost import meta_network, network_cost  # noqa: E402


def images_per_s(model: dict, size: int, repeats: int, device: str) -> float | None:
    """Forward passes of one random size x size image per second (after one warm-up pass)."""
    from hydra.utils import instantiate

    if repeats <= 0:
        return None
    spec = {**model, "encoder_weights": None} if "encoder_weights" in model else model
    net = instantiate(spec, num_classes=3).to(device).eval()
    x = torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8, device=device)
    with torch.inference_mode():
        net(x)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            net(x)
        if device == "cuda":
            torch.cuda.synchronize()
    return repeats / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--models", nargs="*", help="model config names (default: all)")
    parser.add_argument("--repeats", type=int, default=2, help="timed forward passes per model (0: no timing)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    names = args.models or sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))
    rows = []
    for name in names:
        model = {**OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml")),
                 "channels_last": False}
        cost = network_cost(meta_network(model, 3), args.size)
        rows.append({"model": name, "params_M": round(cost["params"] / 1e6, 2), "GFLOPs": round(cost["gflops"], 1),
                     "G_multiply_adds": round(cost["gmacs"], 1),
                     "S_params (1 - params/30M)": round(1 - cost["params"] / 30e6, 3),
                     "S_flops (1 - GFLOPs/200)": round(1 - cost["gflops"] / 200, 3),
                     "S_flops (1 - GMACs/200)": round(1 - cost["gmacs"] / 200, 3)})
        rate = images_per_s(model, args.size, args.repeats, device)
        if rate is not None:
            rows[-1][f"img/s ({device}, batch 1)"] = round(rate, 3)
    rows.sort(key=lambda r: r["GFLOPs"])
    publish(f"Cost of every model config at {args.size} x {args.size} (torch.utils.flop_counter, meta device; "
            f"speed measured on {device}, {torch.get_num_threads()} threads)", rows, args.results)
    return rows


if __name__ == "__main__":
    main()
