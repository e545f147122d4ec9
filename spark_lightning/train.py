"""``python -m spark_lightning.train [overrides]``: train (see conf/train.yaml for what runs)."""

from spark_lightning.run.recipe import cli_args
from spark_lightning.run.runtime import command
from spark_lightning.tasks import run_train

main = command("train", run_train, rewrite=cli_args)

if __name__ == "__main__":
    main()
