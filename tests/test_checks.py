"""Value checks (spark_lightning/run/checks.py): a bad option is one line naming it and what
is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from spark_lightning.errors import ConfigError, SparkDataError
from spark_lightning.tasks import run_train

from .conftest import tiny_train_config

CLI_BAD_VALUES = [
    ("train", ["data.batch_size=abc"], "data.batch_size=abc: give a whole number >= 1"),
    ("train", ["trainer.precision=bf17"], "trainer.precision=bf17: give one of 32-true, 16-mixed"),
    ("train", ["optimizer.lr=-1"], "optimizer.lr=-1: give a number > 0"),
    ("train", ["optimizer.lr=abc"], "optimizer.lr=abc: give a number > 0"),
    ("train", ["trainer.max_epochs=-5"], "trainer.max_epochs=-5: give a whole number >= 1, or -1"),
    ("train", ["data.num_workers=-1"], "data.num_workers=-1: give a whole number >= 0"),
    ("train", ["trainer.max_time=banana"], 'trainer.max_time=banana: give a duration "DD:HH:MM:SS"'),
    ("train", ["seed=-3"], "seed=-3: give a whole number >= 0"),
    ("train", ["data.extra_val_roots={real:MISSING}"], "data.extra_val_roots.real: "),
    ("train", ["data.extra_val_roots=[MISSING,MISSING]"], "data.extra_val_roots: the name 'missing'"),
    ("train", ["model.encoder=resnet999"], "model.encoder=resnet999 has no effect: this run trains the tiny network"),
    ("predict", ["predict.size=abc"], "predict.size=abc: give a whole number of pixels >= 16"),
    ("predict", ["box=square"], "box=square: give union or largest, or null"),
    ("train", ["head=classify", "head.box=square"], "head.box=square: give union or largest"),
    ("synth", ["out=FILE"], "is a file: give a folder for the synthetic set"),
    ("synth", ["num_images=0"], "num_images=0: give a whole number >= 2"),
    ("synth", ["size=8"], "size=8: give a whole number of pixels >= 16"),
    ("synth", ["val_fraction=1.5"], "val_fraction=1.5: give a fraction strictly between 0 and 1"),
    ("synth", ["compare", "real=MISSING"], "real=MISSING does not exist"),
]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("data.size", 0, r"data.size=0: give a whole number of pixels >= 16, or null"),
    ("data.size", -64, r"data.size=-64: give a whole number"),
    ("data.crop", 80, r"data.crop=80 is larger than data.size=64"),
    ("data.root", "FILE", r"data root .*a_file is a file, not a folder"),
    ("loss", "[1.0,2.0]", r"loss.losses.ce.weight=\[1.0, 2.0\] has 2 values but there are 3 classes"),
    ("resume", "yes", r"resume='yes': use resume=auto"),
])
def test_bad_config_values(tiny_root, tmp_path, key, value, message):
    file = tmp_path / "a_file"
    file.write_text("")
    override = {"FILE": f"{key}={file}", "[1.0,2.0]": f"+loss.losses.ce.weight={value}"}.get(value, f"{key}={value}")
    cfg = tiny_train_config(tiny_root, tmp_path, [override])
    with pytest.raises((ConfigError, SparkDataError), match=message):
        run_train(cfg)
    assert (Path(cfg.paths.output_dir) / "FAILED").read_text().count("\n") == 1  # the cause, one line


@pytest.mark.parametrize(("entry", "args", "message"), CLI_BAD_VALUES, ids=[" ".join(a) for _, a, _ in CLI_BAD_VALUES])
def test_bad_values_stop_with_one_line(entry, args, message, tiny_root, trained_ckpt, tmp_path, monkeypatch, capsys):
    """Every bad value at the command line: exit 1 and one line naming the key, the value and what
    is allowed; no traceback."""
    from .conftest import run_main, smoke_args

    (tmp_path / "FILE").write_text("not a folder")
    args = [a.replace("FILE", str(tmp_path / "FILE")).replace("MISSING", str(tmp_path / "missing")) for a in args]
    message = message.replace("MISSING", str(tmp_path / "missing"))
    extra = {"train": smoke_args(tiny_root, tmp_path),
             "predict": [f"ckpt={trained_ckpt}", f"input={tiny_root / 'stream-1-test'}", f"output={tmp_path / 'p'}"],
             "synth": [] if "compare" in args else [f"out={tmp_path / 'set'}"]}[entry]
    if entry == "synth" and any(a.startswith("out=") for a in args):
        extra = []
    head = args[:1] if args[0] == "compare" else []
    code = run_main(entry, [*head, *extra, *args[len(head):], f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch)
    out = capsys.readouterr()
    assert code == 1
    assert message in out.out + out.err and "Traceback" not in out.out + out.err
    lines = [ln for ln in (out.out + out.err).splitlines() if message in ln]
    assert len(lines) == 1 and ("error" in lines[0].lower() or "failed" in lines[0])
