"""``python -m spark_lightning.export ckpt=... format=onnx``: see conf/export.yaml."""

from spark_lightning.run.runtime import command
from spark_lightning.tasks import run_export

main = command("export", run_export)

if __name__ == "__main__":
    main()
