"""Callbacks and plugins of our own; everything else is stock Lightning, configured in conf/callbacks/."""

from spark_lightning.callbacks.batchnorm import PreciseBatchNorm
from spark_lightning.callbacks.checkpointing import AtomicCheckpointIO, LastCheckpoint
from spark_lightning.callbacks.metrics_json import MetricsJson
from spark_lightning.callbacks.monitoring import EpochSummary, PerfMonitor
from spark_lightning.callbacks.overlays import WandbOverlays

__all__ = ["AtomicCheckpointIO", "EpochSummary", "LastCheckpoint", "MetricsJson", "PerfMonitor", "PreciseBatchNorm",
           "WandbOverlays"]
