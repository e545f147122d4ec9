"""``python -m spark_lightning.train [overrides]``: train one model (or a sweep with --multirun)."""

from spark_lightning.recipe import for_cli
from spark_lightning.runtime import command
from spark_lightning.tasks import run_train

main = command("train", run_train, prepare=for_cli)

if __name__ == "__main__":
    main()
