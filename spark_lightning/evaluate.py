"""``python -m spark_lightning.evaluate ...``: see conf/evaluate.yaml for the options."""

from spark_lightning.run.runtime import command
from spark_lightning.tasks import run_evaluate

main = command("evaluate", run_evaluate)

if __name__ == "__main__":
    main()
