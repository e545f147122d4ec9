"""Synthetic data from the command line.

    python -m spark_lightning.synth out=DIR num_images=N size=S seed=K     # write a set (SPARK layout)
    python -m spark_lightning.synth compare real=DIR [synthetic=DIR]       # statistics side by side
"""

from spark_lightning.run.runtime import command, subcommands
from spark_lightning.tasks import run_compare, run_generate

main = subcommands(command("synth", run_generate), compare=command("synth_compare", run_compare))

if __name__ == "__main__":
    main()
