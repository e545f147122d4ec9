"""Callbacks and plugins of our own; everything else is stock Lightning, configured in conf/callbacks/."""

from spark_lightning.callbacks.batchnorm import PreciseBatchNorm
from spark_lightning.callbacks.checkpointing import AtomicCheckpointIO, BestCheckpoint, LastCheckpoint
from spark_lightning.callbacks.guards import NanGuard, TrainingDiverged
from spark_lightning.callbacks.metrics_json import MetricsJson
from spark_lightning.callbacks.monitoring import EpochSummary, PerfMonitor, ProgressBar
from spark_lightning.callbacks.overlays import Overlays
from spark_lightning.callbacks.time_budget import TimeBudget

__all__ = ["AtomicCheckpointIO", "BestCheckpoint", "EpochSummary", "LastCheckpoint", "MetricsJson", "NanGuard",
           "Overlays", "PerfMonitor", "PreciseBatchNorm", "ProgressBar", "TimeBudget", "TrainingDiverged"]
