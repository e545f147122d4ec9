"""Our callbacks: speed/memory logging, the per-epoch log line, metrics.json in memory."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import spark_lightning.callbacks.monitoring as callbacks_mod
from spark_lightning.callbacks import EpochSummary, PerfMonitor, TrainingDiverged
from spark_lightning.errors import ConfigError
from spark_lightning.tasks import run_train

from .conftest import tiny_train_config


def test_perf_monitor_counts_training_time_only(monkeypatch):
    """img/s = training images / (epoch time - validation time); peak memory logged beside it."""
    clock = iter([0.0, 10.0, 15.0, 20.0])  # epoch start, validation start, validation end, epoch end
    monkeypatch.setattr(callbacks_mod.time, "perf_counter", lambda: next(clock))
    logged = {}
    module = SimpleNamespace(device=torch.device("cpu"), log=lambda k, v: logged.__setitem__(k, v))
    trainer = SimpleNamespace(sanity_checking=False, world_size=1)
    perf = PerfMonitor()
    perf.on_train_epoch_start(trainer, module)
    for _ in range(2):
        perf.on_train_batch_end(trainer, module, None, {"image": torch.zeros(4, 3, 8, 8)}, 0)
    perf.on_validation_start(trainer, module)
    perf.on_validation_end(trainer, module)
    perf.on_train_epoch_end(trainer, module)
    assert logged["perf/img_per_s"] == pytest.approx(8 / 15)
    assert logged["perf/peak_mem_gib"] > 0.01  # this process's peak RSS on CPU


def test_epoch_summary_and_metrics_json_in_a_run(tiny_root, tmp_path, caplog):
    from .conftest import tiny_train_config

    caplog.set_level("INFO", logger="spark_lightning.callbacks.monitoring")
    cfg = tiny_train_config(tiny_root, tmp_path, ["trainer.max_epochs=3"])
    result = run_train(cfg)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [ln.split(" |")[0] for ln in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "val/spark_score" in lines[0] and "img/s" in lines[0] and "ETA" in lines[0] and "ETA" not in lines[2]
    data = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert [h["epoch"] for h in data["history"]] == [1, 2, 3]  # counted from 1, as in the log line
    assert all(h["perf/img_per_s"] > 0 for h in data["history"])  # each epoch's own speed
    assert result["metrics"] == data["best"] and data["monitor"] == "val/spark_score"


def test_optimising_a_metric_never_logged_fails_naming_it(tiny_root, tmp_path):
    from .conftest import tiny_train_config

    cfg = tiny_train_config(tiny_root, tmp_path, ["optimized_metric=val/dice"])
    with pytest.raises(ConfigError, match=r"optimized_metric=val/dice is not logged; .*val/spark_score"):
        run_train(cfg)
    assert "optimized_metric=val/dice" in (Path(cfg.paths.output_dir) / "FAILED").read_text()


def test_epoch_summary_without_epochs_says_nothing(caplog):
    caplog.set_level("DEBUG")  # any line it wrote would be caught
    summary = EpochSummary()
    summary.on_fit_end(SimpleNamespace(), None)
    assert not caplog.records


class FakeTrainer:
    """What TimeBudget reads of a Trainer: the epoch limit lives in the fit loop."""

    def __init__(self, batches: int = 10) -> None:
        self.fit_loop = SimpleNamespace(max_epochs=1000)
        self.current_epoch = self.global_step = 0
        self.num_training_batches, self.accumulate_grad_batches = batches, 1
        self.strategy = SimpleNamespace(broadcast=lambda value, src=0: value)
        self.callbacks: list = []

    @property
    def max_epochs(self) -> int:
        return self.fit_loop.max_epochs


def _epochs(budget, trainer, now, count, seconds=10.0):
    for _ in range(count):
        budget.on_train_epoch_start(trainer, None)
        now[0] += seconds
        trainer.global_step += trainer.num_training_batches
        budget.on_train_epoch_end(trainer, None)
        trainer.current_epoch += 1


def test_time_budget_plans_whole_epochs_and_reports_progress(monkeypatch):
    """100 s budget, 10 s epochs: 9 epochs fit (2 % margin); the plan becomes the trainer's epoch
    limit (the run ends after a whole epoch, the bar and log say "/9"), the schedule's progress
    is the share of the plan's steps done."""
    import spark_lightning.callbacks.time_budget as tb

    now = [0.0]
    monkeypatch.setattr(tb.time, "monotonic", lambda: now[0])
    trainer = FakeTrainer()
    budget = tb.TimeBudget(max_time="00:00:01:40")
    budget.on_train_start(trainer, None)
    assert budget.progress(trainer) == 0.0  # nothing measured yet
    for epoch in range(1, 10):
        _epochs(budget, trainer, now, 1)
        assert budget.planned_epochs == 9 == trainer.max_epochs
        assert budget.progress(trainer) == pytest.approx(epoch / 9)
    assert tb.TimeBudget().budget_s is None  # no max_time: a no-op
    assert EpochSummary()._planned_epochs(trainer) == 9  # the epoch log line says "epoch k/9", not "/1000"


def test_time_budget_resumes_with_the_time_left_and_its_schedule(monkeypatch):
    """Killed after 4 of 9 planned epochs: the resumed run plans the remaining time (not the
    whole budget again) and its schedule continues from where it was."""
    import spark_lightning.callbacks.time_budget as tb

    now = [0.0]
    monkeypatch.setattr(tb.time, "monotonic", lambda: now[0])
    first, trainer = tb.TimeBudget(max_time=100), FakeTrainer()
    first.on_train_start(trainer, None)
    _epochs(first, trainer, now, 4)
    state, progress = first.state_dict(), first.progress(trainer)
    assert state["used"] == pytest.approx(40.0) and progress == pytest.approx(4 / 9)
    now[0] += 500.0  # the machine was down for a while: not part of the budget
    resumed, again = tb.TimeBudget(max_time=100), FakeTrainer()
    resumed.load_state_dict(state)
    again.current_epoch, again.global_step = 4, trainer.global_step
    resumed.on_train_start(again, None)
    assert resumed.planned_epochs == 9 == again.max_epochs and resumed.remaining() == pytest.approx(60.0)
    assert resumed.progress(again) == pytest.approx(progress)  # the LR schedule does not restart its warm-up
    _epochs(resumed, again, now, 5)
    assert again.current_epoch == 9 and resumed.used() == pytest.approx(90.0)


@pytest.mark.parametrize(("slow", "fast"), [(10.0, 20.0), (10.0, 5.0)], ids=["slows_down", "speeds_up"])
def test_time_budget_schedule_ends_on_the_last_step_when_the_plan_changes(monkeypatch, slow, fast):
    """Epochs of 10 s plan 9 epochs of a 100 s budget; after 3 the machine slows down (or speeds
    up) and the plan is revised. The schedule's share stays continuous and non-decreasing, and
    reaches 1 on the revised plan's last step (a shrinking plan used to end the run with the
    learning rate still near its peak)."""
    import spark_lightning.callbacks.time_budget as tb

    now = [0.0]
    monkeypatch.setattr(tb.time, "monotonic", lambda: now[0])
    trainer, budget = FakeTrainer(), tb.TimeBudget(max_time=100)
    budget.on_train_start(trainer, None)
    _epochs(budget, trainer, now, 3, seconds=slow)
    before = budget.progress(trainer)
    assert budget.planned_epochs == 9 and before == pytest.approx(3 / 9)
    shares = [before]
    while trainer.current_epoch < budget.planned_epochs:
        budget.on_train_epoch_start(trainer, None)
        for _ in range(trainer.num_training_batches):
            now[0] += fast / trainer.num_training_batches
            trainer.global_step += 1
            shares.append(budget.progress(trainer))
        budget.on_train_epoch_end(trainer, None)
        trainer.current_epoch += 1
    assert budget.planned_epochs != 9  # the plan was revised
    assert shares == sorted(shares) and max(b - a for a, b in zip(shares, shares[1:])) < 0.1  # no jump
    assert shares[-1] == pytest.approx(1.0) and shares[-2] > 0.9  # ends on the last step
    assert budget.used() <= 100


def test_time_budget_says_at_once_when_one_epoch_does_not_fit(monkeypatch, caplog):
    import spark_lightning.callbacks.time_budget as tb

    now = [0.0]
    monkeypatch.setattr(tb.time, "monotonic", lambda: now[0])
    trainer, budget = FakeTrainer(batches=100), tb.TimeBudget(max_time=60, probe_batches=5)
    budget.on_train_start(trainer, None)
    budget.on_train_epoch_start(trainer, None)
    for i in range(5):
        now[0] += 2.0  # 2 s per batch: the epoch takes ~200 s
        budget.on_train_batch_end(trainer, None, None, None, i)
    assert "one epoch takes about 3.7 min" in caplog.text and budget.planned_epochs == 1 == trainer.max_epochs


@pytest.mark.slow
def test_a_run_slowed_down_midway_ends_its_schedule_and_says_what_happened(cfg_tiny, monkeypatch, caplog):
    """A real training under an artificial slowdown: a 60 s budget, epochs that cost 1 s of the
    budget's clock, then 10 s from the third epoch on (another job took the machine). The plan
    shrinks, the run still ends on the one-cycle schedule's final learning rate (not in its
    warm-up), leaves no whole epoch unused, and its last line says what it planned, what
    happened and what to do."""
    import lightning as L
    from omegaconf import open_dict

    import spark_lightning.callbacks.time_budget as tb
    from spark_lightning.tasks.train import _fit

    clock = [0.0]
    monkeypatch.setattr(tb.time, "monotonic", lambda: clock[0])

    class Slowdown(L.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            clock[0] += (1.0 if trainer.current_epoch < 2 else 10.0) / trainer.num_training_batches

    with open_dict(cfg_tiny):
        cfg_tiny.trainer.max_time = 60
        cfg_tiny.trainer.max_epochs = 1000
        cfg_tiny.scheduler = {"_target_": "spark_lightning.training.optim.onecycle", "_partial_": True}
        cfg_tiny.optimizer.lr = 1e-2
    from spark_lightning.run.plan import resolve_train

    with caplog.at_level("INFO", logger="spark_lightning"):
        result = _fit(resolve_train(cfg_tiny), [Slowdown()])
    trainer = result["trainer"]
    budget = tb.find_callback(trainer, tb.TimeBudget)
    assert budget.first_plan[0] == 58  # 1 s epochs: 58 fit the budget (2 % margin)
    assert 2 < trainer.current_epoch < 10 and trainer.current_epoch == budget.planned_epochs
    assert budget.used() <= 60 and budget.remaining() < 10 + 1.2  # no whole 10 s epoch left unused
    final_lr = trainer.optimizers[0].param_groups[0]["lr"]
    assert final_lr == pytest.approx(1e-2 / (25 * 1e4), rel=0.05)  # one-cycle's floor, not its warm-up
    warning = next(r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "time budget" in r.getMessage())
    assert f"trained {trainer.current_epoch} epochs where its plan after the first epoch was 58" in warning
    assert "10.0x slower" in warning and "trainer.max_time" in warning


def test_progress_bar_shows_the_planned_epochs_from_the_first_batches(tiny_root, tmp_path, monkeypatch):
    """Under a time budget the bar says "Epoch 1/<planned>" as soon as the budget has planned
    (after the first batches), not "Epoch 1/1000" for the whole first epoch."""
    from spark_lightning.callbacks import ProgressBar
    from spark_lightning.tasks import run_train

    from .conftest import tiny_train_config

    seen = []
    original = ProgressBar.on_train_batch_end

    def spy(self, trainer, *args, **kwargs):
        original(self, trainer, *args, **kwargs)
        if trainer.current_epoch == 0:
            seen.append(self.progress.tasks[self.train_progress_bar_id].description.strip())

    monkeypatch.setattr(ProgressBar, "on_train_batch_end", spy)
    cfg = tiny_train_config(tiny_root, tmp_path, ["trainer.enable_progress_bar=true", "trainer.max_epochs=1000",
                                                  "trainer.max_time=00:00:00:02", "trainer.limit_train_batches=4",
                                                  "callbacks.progress_bar={_target_:spark_lightning.callbacks.ProgressBar}"])
    run_train(cfg)
    assert len(seen) == 4 and seen[0].startswith("Epoch 1/")
    assert all(not d.endswith("/1000") for d in seen[1:]), seen


def test_a_diverged_run_saves_no_best_checkpoint(tiny_root, tmp_path):
    """Weights turned NaN by the optimizer in the first epoch: neither a best checkpoint nor
    last.ckpt takes them, and the run fails (the NaN guard) at the next loss it looks at."""
    cfg = tiny_train_config(tiny_root, tmp_path, ["optimizer=sgd", "optimizer.lr=1e30", "scheduler=none",
                                                  "callbacks.nan_guard.check_every_n_steps=1000", "trainer.max_epochs=3"])
    with pytest.raises(TrainingDiverged):  # at the first loss it looks at after the weights became NaN
        run_train(cfg)
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    assert not list(folder.glob("epoch*.ckpt")) and not (folder / "best.ckpt").exists()
    for path in folder.glob("*.ckpt"):
        state = torch.load(path, weights_only=False)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), path.name


def test_progress_bar_null_removes_every_bar(tiny_root, tmp_path):
    cfg = tiny_train_config(tiny_root, tmp_path, ["trainer.enable_progress_bar=true", "callbacks.progress_bar=null"])
    trainer = run_train(cfg)["trainer"]
    assert trainer.progress_bar_callback is None


def _recompute_bn(module, batches):
    """Precise BN by hand: cumulative BatchNorm statistics of ``batches`` on the module's weights."""
    norms = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    with torch.no_grad():
        for images in batches:
            module(images)
    return {n: b.clone() for n, b in module.named_buffers() if "running_mean" in n}


def test_ema_validates_and_checkpoints_averaged_weights_with_their_bn_statistics(tiny_root, tmp_path):
    cfg = tiny_train_config(tiny_root, tmp_path, ["callbacks=[default,ema]", "callbacks.ema.decay=0.5",
                                                  "trainer.max_epochs=2"])
    result = run_train(cfg)
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    averaged, current = ckpt["state_dict"], ckpt["current_model_state"]
    assert any(not torch.equal(averaged[k], current[k]) for k in averaged if "weight" in k)
    precise = next(c for c in result["trainer"].callbacks if type(c).__name__ == "PreciseBatchNorm")
    module = result["module"]
    module.load_state_dict(averaged)
    expected = _recompute_bn(module, precise._recent)
    for name, mean in expected.items():  # BN statistics re-estimated for the averaged weights
        assert torch.allclose(averaged[name], mean, atol=1e-4), name
    cfg.trainer.max_epochs, cfg.resume = 3, "auto"  # resumes with the averaging state
    assert run_train(cfg)["trainer"].current_epoch == 3


def test_early_stopping_reports_its_best_epoch(tiny_root, tmp_path):
    """Monitoring the validation loss for a *maximum*: training lowers it, so the first epoch is
    the best and early stopping ends the run soon after; the run must report that first epoch,
    not the last one."""
    cfg = tiny_train_config(tiny_root, tmp_path, ["callbacks=[default,early_stopping]", "callbacks.early_stopping.patience=1",
                                                  "optimized_metric=val/loss", "optimized_mode=max", "optimizer.lr=1e-2",
                                                  "scheduler=none", "trainer.max_epochs=8"])
    result = run_train(cfg)
    history = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["history"]
    assert 2 <= len(history) < 8  # stopped early
    best = max(history, key=lambda h: h["val/loss"])
    assert best["epoch"] != history[-1]["epoch"] and best["val/loss"] != history[-1]["val/loss"]
    assert result["metrics"]["epoch"] == best["epoch"] and result["metrics"]["val/loss"] == best["val/loss"]


def test_nan_guard_names_the_step(tiny_root, tmp_path):
    cfg = tiny_train_config(tiny_root, tmp_path, ["optimizer=sgd", "optimizer.lr=1e12", "scheduler=none",
                                                  "callbacks.nan_guard.check_every_n_steps=1", "trainer.max_epochs=5"])
    with pytest.raises(TrainingDiverged, match=r"training loss became (nan|inf) at step \d+ \(epoch \d"):
        run_train(cfg)
    assert "TrainingDiverged" in (Path(cfg.paths.output_dir) / "FAILED").read_text()


class _LeftHalfPanel(torch.nn.Module):
    """A network that says "panel" on the left half of every frame and "background" on the right."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        logits = torch.zeros(x.shape[0], 3, *x.shape[2:])
        logits[:, 2, :, : x.shape[3] // 2] = 1
        logits[:, 0, :, x.shape[3] // 2 :] = 1
        return logits


def test_overlays_show_frame_truth_and_prediction_every_n_epochs(tmp_path):
    """Each logged panel is image | truth | the network's prediction for the same frame, under
    ``val/overlays/<frame>``, at epochs 0, N, 2N...; without a picture logger the network is not run."""
    import io

    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from spark_lightning.callbacks import Overlays
    from spark_lightning.data.formats import PALETTE

    net, overlays = _LeftHalfPanel(), Overlays(every_n_epochs=2, num_images=2)
    mask = torch.zeros(3, 32, 64, dtype=torch.uint8)
    mask[:, :8] = 1  # body along the top
    batch = {"image": torch.full((3, 3, 32, 64), 100, dtype=torch.uint8), "mask": mask, "name": ["a", "b", "c"]}
    tb = TensorBoardLogger(tmp_path, name="tb", version=0)
    for epoch in range(3):
        trainer = SimpleNamespace(loggers=[tb], sanity_checking=False, current_epoch=epoch, global_step=10 * epoch)
        overlays.on_validation_batch_end(trainer, net, None, batch, 0)
        overlays.on_validation_batch_end(trainer, net, None, batch, 1)  # only a set's first batch
    tb.experiment.flush()
    events = EventAccumulator(str(tmp_path / "tb" / "version_0"), size_guidance={"images": 0})
    events.Reload()
    assert sorted(events.Tags()["images"]) == ["val/overlays/a", "val/overlays/b"]  # num_images=2
    shots = events.Images("val/overlays/a")
    assert [s.step for s in shots] == [0, 20]  # every 2nd epoch
    panel = np.asarray(Image.open(io.BytesIO(shots[-1].encoded_image_string)).convert("RGB")).astype(int)
    assert panel.shape == (32 + 16, 3 * 64, 3)  # a 16 px label strip over three 64 px columns
    row_top, row_low = 16 + 4, 16 + 24
    blend = lambda label: np.round(0.4 * 100 + 0.6 * PALETTE[label]).astype(int)  # noqa: E731
    assert np.abs(panel[row_low, 32] - 100).max() <= 1  # the frame itself
    assert np.abs(panel[row_top, 64 + 32] - blend(1)).max() <= 1 and np.abs(panel[row_low, 64 + 32] - 100).max() <= 1
    assert np.abs(panel[row_low, 128 + 16] - blend(2)).max() <= 1  # prediction: panel on the left half
    assert np.abs(panel[row_low, 128 + 48] - 100).max() <= 1  # background on the right

    calls = net.calls
    csv_only = SimpleNamespace(loggers=[CSVLogger(tmp_path)], sanity_checking=False, current_epoch=0, global_step=0)
    overlays.on_validation_batch_end(csv_only, net, None, batch, 0)
    assert net.calls == calls
