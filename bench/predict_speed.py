"""Prediction throughput at full resolution: resize / slide, with and without flip TTA,
each against a raw ``model(x)`` loop doing the same network work on the same images.

    python bench/predict_speed.py                          # 1024² images, working size 256, tile 128
    python bench/predict_speed.py --image-size 128 --size 64 --tile 32 --images 4   # smoke run

The raw loop reads the same files with the same reader, runs the same forward passes
(1 or 3 with TTA, 1 per window in slide mode) and an argmax; the framework side is
``spark_lightning.inference.probabilities.iter_predictions`` (softmax averaging, Hann blending, upsampling
of probabilities to full resolution). Appends to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, compose_cfg, publish  # noqa: E402

from spark_lightning.run.builders import build_module  # noqa: E402
from spark_lightning.data.formats import image_size, read_rgb  # noqa: E402
from spark_lightning.data.spark import SparkFormat  # noqa: E402
from spark_lightning.data.synth import generate  # noqa: E402
from spark_lightning.inference.probabilities import PredictOptions, Predictor, _starts, iter_predictions  # noqa: E402


def raw_rate(net, paths, cfg: PredictOptions, device: str) -> float:
    passes = 3 if cfg.tta == "flip" else 1
    start = time.perf_counter()
    with torch.inference_mode():
        for path in paths:
            width, height = image_size(path)
            x = torch.from_numpy(read_rgb(path, cfg.size).transpose(2, 0, 1).copy())[None].to(device)
            if cfg.mode == "slide":
                stride = max(1, int(cfg.tile * (1 - cfg.overlap)))
                for top in _starts(x.shape[-2], cfg.tile, stride):
                    for left in _starts(x.shape[-1], cfg.tile, stride):
                        for _ in range(passes):
                            out = net(x[..., top : top + cfg.tile, left : left + cfg.tile])
            else:
                for _ in range(passes):
                    out = net(x)
            F.interpolate(out.float(), size=(height, width), mode="bilinear").argmax(1).cpu()
    return len(paths) / (time.perf_counter() - start)


def framework_rate(net, paths, cfg: PredictOptions, device: str) -> float:
    start = time.perf_counter()
    for _ in iter_predictions([Predictor(net, cfg)], paths, SparkFormat(), batch_size=1, num_workers=0, device=device):
        pass
    return len(paths) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="unet_resnet34")
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--size", type=int, default=256, help="working scale (the training data.size)")
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    net = build_module(compose_cfg([f"model={args.model}"])).net.to(device).eval()
    rows = []
    with tempfile.TemporaryDirectory(prefix="spark_bench_") as tmp_name:
        tmp = Path(tmp_name)
        root = generate(tmp / "data", num_images=2, size=args.image_size, num_test=args.images)
        paths = SparkFormat().find_images(root / "stream-1-test")
        framework_rate(net, paths[:1], PredictOptions(size=args.size), device)  # warm-up
        for mode in ("resize", "slide"):
            for tta in ("none", "flip"):
                cfg = PredictOptions(mode=mode, size=args.size, tile=args.tile, tta=tta)
                raw, fw = raw_rate(net, paths, cfg, device), framework_rate(net, paths, cfg, device)
                rows.append({"mode": mode, "tta": tta, "image": args.image_size, "size": args.size,
                             "tile": args.tile if mode == "slide" else "", "raw_img_s": f"{raw:.2f}",
                             "framework_img_s": f"{fw:.2f}", "ratio": f"{fw / raw:.3f}"})
                print(rows[-1], flush=True)
    publish(f"Prediction ({args.model}, {args.images} images)", rows, args.out)
    return rows


if __name__ == "__main__":
    main()
