"""Hyperparameter search on current Optuna, as a Hydra sweeper of our own
(``hydra/sweeper=optuna``, the class in ``hydra_plugins/spark_optuna_sweeper``): the search space
in Hydra's sweep syntax, pruning from each validation, studies shared by several workers in a
journal file (or any RDB URL), killed workers' trials failed and retried, failures recorded with
their one-line cause. Optuna is imported only when a search runs."""
