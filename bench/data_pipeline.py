"""Data pipeline throughput from the real JPEG layout: decoders, cache, workers.

    python bench/data_pipeline.py                        # 1024² synthetic JPEGs, sizes 1024 and 512
    python bench/data_pipeline.py --source-size 128 --sizes 64 --images 8   # smoke run

For each data.size: images/s of (a) decoding every epoch with PIL (draft mode) and with
OpenCV, (b) the on-disk cache after its first epoch; single process (per worker) and through
a DataLoader with --workers workers (total), with the `light` augmentation. Appends to
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, compose_cfg, publish  # noqa: E402

from spark_lightning.data.cache import SampleCache  # noqa: E402
from spark_lightning.data.datamodule import SparkDataModule  # noqa: E402
from spark_lightning.data.dataset import SegmentationDataset  # noqa: E402
from spark_lightning.data.formats import read_rgb  # noqa: E402
from spark_lightning.data.spark import SparkFormat  # noqa: E402
from spark_lightning.data.synth import generate  # noqa: E402

SPARK = SparkFormat()


def read_mask(path, size):
    return SPARK.read_mask(path, size)


def decode_cv2(sample, size):
    """The OpenCV alternative: IMREAD_REDUCED_COLOR_2/4/8 is OpenCV's counterpart of PIL draft."""
    flag = cv2.IMREAD_COLOR
    full = 1024
    if size:
        for factor, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                                (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if full // factor >= size:
                flag = reduced
                break
    image = cv2.imread(str(sample.image), flag)[..., ::-1]
    if size and image.shape[0] != size:
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image), read_mask(sample.mask, size)


def decode_pil(sample, size):
    return read_rgb(sample.image, size), read_mask(sample.mask, size)


def rate(fn, samples, size) -> float:
    start = time.perf_counter()
    for s in samples:
        fn(s, size)
    return len(samples) / (time.perf_counter() - start)


def loader_rate(dataset, workers: int, batch: int = 4) -> float:
    from torch.utils.data import DataLoader

    from spark_lightning.data.dataset import seed_worker_transform

    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, worker_init_fn=seed_worker_transform if workers else None)
    start = time.perf_counter()
    n = sum(b["image"].shape[0] for b in loader)
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-size", type=int, default=1024)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 512])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    from hydra.utils import instantiate

    aug = instantiate(compose_cfg(["aug=light"]).aug)
    rows = []
    with tempfile.TemporaryDirectory(prefix="spark_bench_") as tmp_name:
        tmp = Path(tmp_name)
        root = generate(tmp / "data", num_images=args.images + 1, size=args.source_size, val_fraction=0.02)
        fmt = SparkFormat(root)
        samples = fmt.samples("train")
        for size in args.sizes:
            size_arg = None if size == args.source_size else size
            pil, ocv = rate(decode_pil, samples, size_arg), rate(decode_cv2, samples, size_arg)
            cache = SampleCache(tmp / "cache", fmt, size_arg)
            transform = SparkDataModule(fmt, train_transform=aug).train_transform
            dataset = SegmentationDataset(samples, fmt, size_arg, cache, transform)
            first = loader_rate(dataset, 0)  # fills the cache
            entries = len(list(cache.dir.glob("*.npy")))
            cached_one = loader_rate(dataset, 0)
            nocache = SegmentationDataset(samples, fmt, size_arg, None, dataset.transform)
            nocache_one = loader_rate(nocache, 0)
            nocache_all = loader_rate(nocache, args.workers)
            cached_all = loader_rate(dataset, args.workers)
            rows.append({"size": size, "decode_pil_img_s": f"{pil:.1f}", "decode_cv2_img_s": f"{ocv:.1f}",
                         "first_epoch_1w": f"{first:.1f}", "nocache_1w": f"{nocache_one:.1f}",
                         "cached_1w": f"{cached_one:.1f}", "cache_speedup_1w": f"{cached_one / nocache_one:.1f}x",
                         f"nocache_{args.workers}w": f"{nocache_all:.1f}", f"cached_{args.workers}w": f"{cached_all:.1f}",
                         f"cache_speedup_{args.workers}w": f"{cached_all / nocache_all:.1f}x", "cache_entries": entries})
            print(rows[-1], flush=True)
    publish(f"Data pipeline ({args.source_size}² JPEG source, light aug, {args.images} images)", rows, args.out)
    return rows


if __name__ == "__main__":
    main()
