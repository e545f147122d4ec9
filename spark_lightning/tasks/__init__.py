"""The tasks behind the ``python -m spark_lightning.<name>`` commands, as plain functions of a
composed config: ``spark_lightning.<name>`` is the command, ``spark_lightning.tasks.<name>``
its task. The commands call these; tests call them directly with configs composed in-process."""

from spark_lightning.tasks.evaluate import run_evaluate
from spark_lightning.tasks.export import run_export
from spark_lightning.tasks.predict import run_predict
from spark_lightning.tasks.pseudo import run_pseudo
from spark_lightning.tasks.report import run_report
from spark_lightning.tasks.synth import run_compare, run_generate
from spark_lightning.tasks.train import run_train

__all__ = ["run_compare", "run_evaluate", "run_export", "run_generate", "run_predict", "run_pseudo", "run_report",
           "run_train"]
