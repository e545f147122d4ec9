"""Scores: the SPARK 2024 metric (metrics.py), SPARK 2026's (spark2026.py), evaluate's loop (evaluation.py)."""
