"""Synthetic SPARK-like data: a 3-D scene renderer, a writer of the SPARK layout, and the data
set format that generates it on first use (``data=synthetic``)."""

from spark_lightning.data.synth.format import SyntheticSpark
from spark_lightning.data.synth.scene import render_scene
from spark_lightning.data.synth.writer import TEST_DIR, generate

__all__ = ["TEST_DIR", "SyntheticSpark", "generate", "render_scene"]
