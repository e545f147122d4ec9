"""``python -m spark_lightning.predict ckpt=... input=DIR output=DIR``: see conf/predict.yaml."""

from spark_lightning.run.runtime import command
from spark_lightning.tasks import run_predict

main = command("predict", run_predict)

if __name__ == "__main__":
    main()
