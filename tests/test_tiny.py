"""The tiny network behind debug=smoke (spark_lightning/models/tiny.py): small, any input size,
and it can learn (so smoke tests of training exercise a real gradient)."""

from __future__ import annotations

import torch

from spark_lightning.models.tiny import TinyNet


def test_small_and_any_size():
    net = TinyNet(num_classes=3, width=8)
    assert 1_000 < sum(p.numel() for p in net.parameters()) < 5_000
    for h, w in ((64, 64), (37, 51), (16, 17)):
        assert net(torch.zeros(2, 3, h, w)).shape == (2, 3, h, w)


def test_it_learns_a_trivial_task():
    torch.manual_seed(0)
    net = TinyNet(num_classes=2, width=8)
    image = torch.rand(4, 3, 32, 32) * 0.2
    target = torch.zeros(4, 32, 32, dtype=torch.long)
    for i, (y, x) in enumerate(((0, 0), (8, 16), (16, 4), (12, 12))):  # a bright red square: class 1
        image[i, 0, y:y + 12, x:x + 12] = 1.0
        target[i, y:y + 12, x:x + 12] = 1
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(net(image), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
