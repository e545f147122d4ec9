"""Data: the SPARK layout, its synthetic twin, the sample cache and the DataModule."""
