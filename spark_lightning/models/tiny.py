"""A tiny CNN (about 3k weights) for smoke tests and debugging the pipeline, not for results.

``model=tiny`` trains in milliseconds on a CPU, so tests of plumbing (configs, callbacks,
resume, prediction files) do not pay for a real network.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyNet(nn.Module):
    """Two strided conv blocks, a 1x1 head, bilinear upsampling back to the input size; with
    ``craft_classes`` also a pooled linear classifier, returning (mask, class) logits as smp's
    networks with ``aux_params`` do."""

    def __init__(self, num_classes: int = 3, width: int = 8, craft_classes: int = 0) -> None:
        super().__init__()
        self.encoder = nn.Sequential(_block(3, width, 2), _block(width, 2 * width, 2))
        self.head = nn.Conv2d(2 * width, num_classes, 1)
        self.classifier = nn.Linear(2 * width, craft_classes) if craft_classes else None

    def forward(self, x):
        features = self.encoder(x)
        masks = F.interpolate(self.head(features), size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.classifier is None:
            return masks
        return masks, self.classifier(features.mean((2, 3)))
