"""A fake SLURM on this machine: ``sbatch``, ``srun`` and ``sacct`` scripts that run submitted
jobs (and job arrays) locally, so tests drive a real Hydra multirun through the submitit
launcher, the way it runs on a cluster, without a cluster or a mock of our code."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

SBATCH = r'''
import os, re, subprocess, sys, time
from pathlib import Path

script = Path(sys.argv[-1])
text = script.read_text()
state = Path(os.environ["FAKE_SLURM_STATE"])
state.mkdir(parents=True, exist_ok=True)
job = str(4200 + len(list(state.glob("submitted_*"))))
(state / f"submitted_{job}.sh").write_text(text)
array = re.search(r"^#SBATCH --array=0-(\d+)", text, re.M)
tasks = range(int(array.group(1)) + 1) if array else [None]
print(f"Submitted batch job {job}", flush=True)
if os.fork():  # sbatch returns at once; the job runs in the background
    sys.exit(0)
os.setsid()
log = os.open(state / f"job_{job}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
for fd in (1, 2):  # free the pipe submitit reads sbatch's answer from
    os.dup2(log, fd)
name_line = re.search(r"^#SBATCH --job-name=(\S+)", text, re.M)
command = text.split("export SUBMITIT_EXECUTOR=slurm", 1)[1].strip().splitlines()[0]
for task in tasks:
    name = job if task is None else f"{job}_{task}"
    env = {**os.environ, "SLURM_JOB_ID": job, "SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
           "SLURM_NODEID": "0", "SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_NODELIST": "localhost",
           "SLURM_JOB_NAME": name_line.group(1) if name_line else "job", "SUBMITIT_EXECUTOR": "slurm"}
    if task is not None:
        env.update(SLURM_ARRAY_JOB_ID=job, SLURM_ARRAY_TASK_ID=str(task))
    folder = re.search(r"_submit (\S+)$", command).group(1).replace("%j", name).strip("'")
    deadline = time.time() + 60  # submitit moves the job's pickle in place once sbatch has answered
    while not Path(folder, f"{name}_submitted.pkl").exists() and time.time() < deadline:
        time.sleep(0.1)
    (state / f"state_{name}").write_text("RUNNING")
    code = subprocess.call(command, shell=True, env=env)
    (state / f"state_{name}").write_text("COMPLETED" if code == 0 else "FAILED")
'''

SRUN = r'''
import os, sys
args = sys.argv[1:]
while args and args[0].startswith("--"):  # --unbuffered, --output FILE, --error FILE
    args = args[2:] if args[0] in ("--output", "--error") else args[1:]
os.execvp(args[0], args)
'''

SACCT = r'''
import os
from pathlib import Path

print("JobID|State|NodeList")
for path in sorted(Path(os.environ["FAKE_SLURM_STATE"]).glob("state_*")):
    print(f"{path.name[6:]}|{path.read_text()}|localhost")
'''


def install(bin_dir: Path, state_dir: Path) -> dict[str, str]:
    """Write the fake commands into ``bin_dir``; returns the environment that puts them first on PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, body in (("sbatch", SBATCH), ("srun", SRUN), ("sacct", SACCT)):
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{body}")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_STATE": str(state_dir)}


def submissions(state_dir: Path) -> list[str]:
    """The sbatch scripts submitted, in order."""
    return [p.read_text() for p in sorted(state_dir.glob("submitted_*.sh"))]
