"""Inference: probabilities from checkpoints (probabilities.py), which checkpoints predict where
(predictors.py), and the files predictions are written to (writers.py)."""
