"""``python -m spark_lightning.pseudo ckpt=... input=DIR output=DIR threshold=0.9``: see conf/pseudo.yaml."""

from spark_lightning.run.runtime import command
from spark_lightning.tasks import run_pseudo

main = command("pseudo", run_pseudo)

if __name__ == "__main__":
    main()
