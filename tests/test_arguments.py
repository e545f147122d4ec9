"""Command-line arguments read before Hydra's parser (spark_lightning/run/arguments.py)."""

from __future__ import annotations

import pytest

from spark_lightning.run.arguments import unreadable_argument

from .conftest import run_main


@pytest.mark.parametrize(("args", "message"), [
    (["data.root=/my", "data/frames"], r"'data/frames' is not key=value: a value with spaces must be quoted, e.g. "
                                       r"\"data.root='/my data/frames'\""),
    (["data.root=/données"], r"cannot read the argument 'data.root=/données': quote a value with spaces, accents .*"
                             r"\"data.root='/données'\""),
])
def test_an_unquoted_path_is_one_line_saying_how_to_quote(args, message, monkeypatch, capsys):
    assert run_main("train", args, monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    import re

    assert re.search(message, err)


def test_flags_and_their_values_and_quoted_paths_pass():
    assert unreadable_argument(["--cfg", "job", "-m", "model=unet_resnet34,deeplabv3_mnv3", "data.root='/my data/é'",
                                "--config-name", "train", "+trainer.limit_train_batches=2", "~experiment"]) is None
