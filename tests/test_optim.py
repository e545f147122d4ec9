"""Schedules (LR values at known steps), encoder/decoder LR split, and the VRAM budget search."""

from __future__ import annotations

import math

import pytest
import torch

from spark_lightning.models import build_model
from spark_lightning.training.optim import (
    build_optimizer,
    cosine,
    onecycle,
    param_groups,
    poly,
)
from spark_lightning.training.vram import (
    apply_budget,
    largest_fitting_batch,
    split_batch,
)

from .conftest import compose_train


def lrs(make, steps: int, lr: float = 1.0) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_poly_with_warmup():
    values = lrs(lambda o: poly(o, total_steps=12, power=1.0, warmup_steps=2), 12)
    assert values[:2] == pytest.approx([0.5, 1.0])
    assert values[2] == pytest.approx(1.0) and values[7] == pytest.approx(0.5) and values[11] == pytest.approx(0.1)


def test_cosine_and_warmup_epochs():
    values = lrs(lambda o: cosine(o, total_steps=20, warmup_epochs=1, steps_per_epoch=4, min_lr_ratio=0.1), 20)
    assert values[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert values[4] == pytest.approx(1.0)
    assert values[12] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_onecycle_peaks_at_configured_lr():
    values = lrs(lambda o: onecycle(o, total_steps=10, warmup_steps=3), 10, lr=0.4)
    assert max(values) == pytest.approx(0.4) and values.index(max(values)) == 2  # like poly: peak at warmup-1
    assert values[0] == pytest.approx(0.4 / 25)


def test_warmup_longer_than_run_is_cut_with_a_warning(caplog):
    values = lrs(lambda o: poly(o, total_steps=4, power=1.0, warmup_epochs=1, steps_per_epoch=4), 4)
    assert values[:2] == pytest.approx([0.5, 1.0])  # warmup cut to 2 steps
    assert "warming up for 2" in caplog.text
    with pytest.raises(ValueError, match="must be >= 0"):
        lrs(lambda o: poly(o, total_steps=5, warmup_steps=-1), 1)


@pytest.mark.parametrize("option", ["none", "poly", "cosine", "onecycle"])
def test_scheduler_configs_through_module(option, cfg_tiny):
    from spark_lightning.tasks import run_train

    cfg_tiny.scheduler = compose_train([f"scheduler={option}"]).scheduler
    cfg_tiny.model = compose_train(["model=unet_mobilenet_v2"]).model
    trainer = run_train(cfg_tiny)["trainer"]
    schedulers = trainer.lr_scheduler_configs
    assert len(schedulers) == (0 if option == "none" else 1)
    if schedulers:
        assert schedulers[0].interval == "step"


def test_encoder_lr_mult_splits_groups():
    net = build_model(encoder="resnet18")
    groups = param_groups(net, lr=0.01, encoder_lr_mult=0.1)
    optimizer = torch.optim.SGD(groups, lr=0.01)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.001, 0.01])
    n_enc = sum(p.numel() for p in net.model.encoder.parameters())
    assert sum(p.numel() for p in optimizer.param_groups[0]["params"]) == n_enc
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == sum(p.numel() for p in net.parameters())
    cfg = {**compose_train(["optimizer=sgd"]).optimizer, "encoder_lr_mult": 0.1, "lr": 0.02}
    assert [g["lr"] for g in build_optimizer(cfg, net).param_groups] == pytest.approx([0.002, 0.02])


def fake_memory(per_image: float, fixed: float = 1.0):
    """Peak GiB of a pretend train step: fixed + per_image * batch; OOM beyond 80 GiB."""
    calls = []

    def probe(batch: int):
        calls.append(batch)
        gib = fixed + per_image * batch
        return None if gib > 80 else gib * 1024**3

    return probe, calls


def test_budget_search_finds_largest_fitting_batch():
    probe, calls = fake_memory(per_image=2.5)  # the seed model: ~2.5 GiB per image
    assert largest_fitting_batch(probe, 16 * 1024**3 * 0.9, max_batch=64) == 5  # 1 + 2.5*5 = 13.5 <= 14.4
    assert len(calls) <= 8  # doubling + bisection, not a linear scan
    probe, _ = fake_memory(per_image=0.1)
    assert largest_fitting_batch(probe, 16 * 1024**3, max_batch=64) == 64
    probe, _ = fake_memory(per_image=0.7)
    assert largest_fitting_batch(probe, 16 * 1024**3, max_batch=64) == 21  # 1 + 0.7*21 = 15.7


def test_budget_search_treats_oom_as_not_fitting():
    probe, _ = fake_memory(per_image=1.0)
    assert largest_fitting_batch(probe, 1000 * 1024**3, max_batch=200) == 79


def test_budget_too_small_is_a_clear_error():
    probe, _ = fake_memory(per_image=20.0)
    with pytest.raises(ValueError, match="micro-batch of 1 does not fit 16.0 GiB"):
        largest_fitting_batch(probe, 16 * 1024**3, max_batch=8)


def test_split_batch_product_is_effective():
    assert split_batch(32, 5) == (4, 8)
    assert split_batch(32, 64) == (32, 1)
    assert split_batch(12, 5) == (4, 3)
    assert split_batch(7, 3) == (1, 7)
    for eff in range(1, 40):
        micro, acc = split_batch(eff, 6)
        assert micro * acc == eff and micro <= 6


def test_budget_on_cpu_only_says_so(caplog):
    cfg = compose_train(["budget.effective_batch_size=32", "budget.vram_gb=16"])
    caplog.set_level("INFO")
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the CPU path is not taken")
    assert apply_budget(cfg, lambda c: None) is None
    assert "budget: no CUDA GPU" in caplog.text
    assert cfg.data.batch_size == 8 and cfg.trainer.accumulate_grad_batches == 1


def test_schedules_follow_the_time_budget_when_it_runs_ahead_of_the_steps():
    """With trainer.max_time the module passes clock (share of the budget used): a slow machine
    that does fewer steps than planned still walks the whole schedule, ending on its final LR."""
    now = [0.0]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = poly(opt, total_steps=100, power=1.0, clock=lambda: now[0])
    now[0] = 0.5
    sched.step()  # step 1 of 100 by count, half-way by the clock
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = onecycle(opt, total_steps=100, clock=lambda: now[0])  # warmup: the first 30 % of the run
    for share, want in [(0.15, 1 / 25 + (1 - 1 / 25) * 0.5), (0.3, 1.0), (1.0, 1 / (25 * 1e4))]:
        now[0] = share
        sched.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(want), share
