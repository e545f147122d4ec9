"""Synthetic generation speed: images/s of the SPARK 2024 renderer at 1024 px on all cores.

    python bench/synth_speed.py                      # 100 images of 1024 px (the target: >= 5 images/s on 2 cores)
    python bench/synth_speed.py --images 4 --size 64 # (the smoke test)

Writes a whole set through the real writer (render, JPEG image and mask, CSVs), timed from the
call to the finished set, and appends the table to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, publish  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from spark_lightning.data.synth import generate
    from spark_lightning.data.synth.scene import RENDER_VERSION

    with tempfile.TemporaryDirectory(prefix="synth_speed_") as tmp:
        start = time.perf_counter()
        root = generate(Path(tmp) / "set", num_images=args.images, size=args.size, seed=0, num_test=0,
                        workers=args.workers)
        seconds = time.perf_counter() - start
        written = len(list(root.glob("images/*/*/*_img.jpg")))
    row = {"renderer": f"v{RENDER_VERSION}", "images": written, "size": args.size, "workers": args.workers,
           "seconds": round(seconds, 1), "images_per_s": round(written / seconds, 2)}
    publish(f"Synthetic generation speed ({args.size} px)", [row], args.out)
    return row


if __name__ == "__main__":
    main()
