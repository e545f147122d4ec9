"""``python -m spark_lightning.report SWEEP_DIR``: report.md, report.csv and plots of a sweep's runs."""

from spark_lightning.run.runtime import command
from spark_lightning.tasks import run_report

main = command("report", run_report, positional="sweep_dir")

if __name__ == "__main__":
    main()
