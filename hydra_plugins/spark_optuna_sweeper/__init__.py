"""spark_lightning's Hydra sweeper on current Optuna (``hydra/sweeper=optuna``); see optuna_sweeper.py."""

from hydra_plugins.spark_optuna_sweeper.optuna_sweeper import OptunaSweeper

__all__ = ["OptunaSweeper"]
