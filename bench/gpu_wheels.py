"""The wheels the GPU machine lacks, and a proof on CPU that they are all it lacks.

    python bench/gpu_wheels.py download --dest .whl     # CPython 3.12 manylinux x86_64 wheels (make gpu-wheels)
    python bench/gpu_wheels.py check                    # import every module gpu_check uses, with only
                                                        # the GPU machine's packages + these

The GPU machine (Python 3.12, torch 2.11, lightning, torchmetrics, timm, opencv, onnx,
onnxruntime, matplotlib, rich, safetensors, pyyaml...) cannot download. It lacks the packages
below; wandb and optuna stay behind (the check logs to CSV, nothing imports them at module
level). ``check`` builds a site-packages view of this machine without those packages, adds the
same set (from the installed copies, or from downloaded wheels), and imports everything the
check uses in a separate, isolated interpreter.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MISSING = ["segmentation-models-pytorch", "hydra-core", "omegaconf", "antlr4-python3-runtime", "albumentations",
           "albucore", "simsimd", "stringzilla", "pydantic", "pydantic-core", "annotated-types", "typing-inspection"]
LEFT_BEHIND = ["wandb", "optuna", "hydra-submitit-launcher", "submitit", "sqlalchemy", "alembic", "colorlog",
               "tensorboard", "mlflow", "mlflow-skinny", "optuna-dashboard"]  # the GPU check logs to CSV
SDIST_ONLY = ["antlr4-python3-runtime"]  # pure Python, published as a source archive: built into a wheel here
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
PROBE = """
import bench.gpu_check, bench.predict_speed, bench.train_overhead
import spark_lightning.tasks, spark_lightning.train, spark_lightning.predict, spark_lightning.evaluate
import spark_lightning.export, spark_lightning.data.synth, spark_lightning.run.plan
import segmentation_models_pytorch, hydra, omegaconf, albumentations
import sys
assert "wandb" not in sys.modules and "optuna" not in sys.modules, "wandb/optuna imported at module level"
print("imports ok")
"""


def pins() -> list[str]:
    """The missing packages at the versions this project is tested with."""
    return [f"{name}=={md.version(name)}" for name in MISSING]


def download(dest: Path, python: str = "3.12") -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    binary = [p for p in pins() if p.split("==")[0] not in SDIST_ONLY]
    source = [p for p in pins() if p.split("==")[0] in SDIST_ONLY]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
                    python, "--implementation", "cp", *platforms, "-d", str(dest), *binary], check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dest), *source], check=True)
    wheels = sorted(dest.glob("*.whl"))
    print(f"{len(wheels)} wheels, {sum(w.stat().st_size for w in wheels) / 2**20:.1f} MiB in {dest}")
    return wheels


def _dist_files(name: str) -> list[Path]:
    dist = md.distribution(name)
    return [Path(dist.locate_file(f)) for f in dist.files or []]


def _view_without(site: Path, dest: Path, excluded: list[str]) -> None:
    """Links to every top-level entry of ``site`` except the files of the excluded distributions."""
    hidden = {p.relative_to(site).parts[0] for name in excluded if _installed(name)
              for p in _dist_files(name) if site in p.parents}
    for entry in site.iterdir():
        if entry.name not in hidden and not entry.name.startswith("__editable__") and entry.suffix != ".pth":
            (dest / entry.name).symlink_to(entry)


def _installed(name: str) -> bool:
    try:
        md.distribution(name)
        return True
    except md.PackageNotFoundError:
        return False


def _copy_installed(target: Path, names: list[str]) -> None:
    """The missing set as this machine has it installed (stands for the wheels, offline)."""
    site = Path(sysconfig.get_paths()["purelib"])
    for name in names:
        for path in _dist_files(name):
            if site in path.parents and path.is_file():
                out = target / path.relative_to(site)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)


def check(source: str = "installed", names: list[str] | None = None) -> str:
    """Import everything gpu_check uses with the GPU machine's packages plus the wheel set only
    (``names``: a part of it, to show that a smaller set fails)."""
    site = Path(sysconfig.get_paths()["purelib"])
    with tempfile.TemporaryDirectory(prefix="gpu_wheels_") as tmp:
        view, target = Path(tmp) / "view", Path(tmp) / "target"
        view.mkdir()
        target.mkdir()
        _view_without(site, view, MISSING + LEFT_BEHIND)
        if source == "installed":
            _copy_installed(target, MISSING if names is None else names)
        else:
            wheels = download(Path(tmp) / "wheels", f"{sys.version_info.major}.{sys.version_info.minor}")
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target",
                            str(target), *map(str, wheels)], check=True)
        code = f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(target)!r}, {str(view)!r}]\n" + PROBE
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, cwd=tmp,
                              env={"HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1", "PATH": "/usr/bin:/bin"})
    if proc.returncode:
        raise SystemExit(f"the wheel set is incomplete:\n{proc.stderr[-2000:]}")
    return proc.stdout.strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    down = sub.add_parser("download", help="fetch the CPython 3.12 manylinux wheels")
    down.add_argument("--dest", type=Path, default=ROOT / ".whl")
    chk = sub.add_parser("check", help="prove the set complete on this machine")
    chk.add_argument("--source", choices=["installed", "download"], default="installed")
    args = parser.parse_args(argv)
    if args.command == "download":
        download(args.dest)
    else:
        print(check(args.source))


if __name__ == "__main__":
    main()
