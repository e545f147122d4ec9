"""Segmentation networks: ``build_model`` is the one entry point configs target."""

from spark_lightning.models.factory import SegmentationNet, build_model

__all__ = ["SegmentationNet", "build_model"]
