"""`--executor slurm`: comp's work as one Slurm job array through submitit, a task per fold (or per
tuning worker, or one for pretraining), each task calling in its Python the library function the
command calls on one machine: folds keep their locks, fingerprints, skipping and resuming.

- A task (`SlurmTask`: `FoldTask`, `PretrainTask`; comp.tune's worker) does in the task's
  Python what the command does on one machine. Its stop signals are comp's (`comp.interrupt`):
  SIGTERM (scancel, `scontrol requeue`, a preemption, the hard time limit) stops a fold at its
  next step with a fresh checkpoint; SIGUSR2, submitit's warning before the time limit, does the
  same and is then handed to submitit, which requeues the task (at most
  `launch.slurm.max_requeues` times). A requeued task runs again: the fold resumes from its
  checkpoint.
- Without Slurm accounting (sacct), submitit cannot tell a job's state; comp asks `squeue`
  (`task_states`), and a fold counts as finished only when its metrics.json says so.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from comp.config import Config
from comp.errors import CompError

SQUEUE_PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                  "RESIZING", "SUSPENDED", "PREEMPTED", "SPECIAL_EXIT"}  # fmt: skip
SQUEUE_RUNNING = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "STOPPED"}


class SlurmTask:
    """A picklable task submitit runs in a Slurm task's Python: `work()` with comp's stop
    signals (SIGUSR2 handed on to submitit), a failure the user can act on (comp.failures) as
    one line on stderr and its exit code, like the command line."""

    def __init__(self, config_path: Path, device: str | None, threads: int) -> None:
        self.config_path, self.device, self.threads = config_path, device, threads

    def work(self) -> None:
        """`run` with the resolved config saved at submission."""
        from comp.kinds import load_config
        from comp.progress import make_console

        self.run(load_config([self.config_path]), make_console())

    def run(self, config: Config, console) -> None:
        raise NotImplementedError

    def __call__(self) -> int:
        from comp.failures import describe_failure
        from comp.interrupt import Interrupted, stop_signals, stop_signals_here

        os.environ.setdefault("OMP_NUM_THREADS", str(self.threads))  # before torch is imported
        os.environ.setdefault("MKL_NUM_THREADS", str(self.threads))
        submitit_usr2 = signal.getsignal(signal.SIGUSR2)
        try:
            with stop_signals(stop_signals_here()):
                self.work()
        except BaseException as error:  # noqa: BLE001 - re-raised unless it has one line
            failure = describe_failure(error)
            if failure is None:
                raise
            print(f"{failure.label}: {failure.message}", file=sys.stderr, flush=True)
            usr2 = isinstance(error, Interrupted) and error.signum == signal.SIGUSR2
            if usr2 and callable(submitit_usr2):
                submitit_usr2(signal.SIGUSR2, None)  # checkpoint(), requeue, exit
            raise SystemExit(failure.exit_code) from None
        return 0

    def checkpoint(self, *args, **kwargs):
        """submitit's hook before a requeue: run the same task again (it resumes)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


class FoldTask(SlurmTask):
    """`comp train --fold K` with the resolved config at `config_path`."""

    def __init__(self, config_path: Path, fold: int, device: str | None, threads: int) -> None:
        super().__init__(config_path, device, threads)
        self.fold = fold

    def run(self, config: Config, console) -> None:
        from comp.runs.frame import train_folds

        train_folds(config, [self.fold], self.device, False, console)


class PretrainTask(SlurmTask):
    """`comp pretrain` with the resolved config at `config_path`."""

    def run(self, config: Config, console) -> None:
        from comp.pretrain.run import pretrain

        pretrain(config, self.device, False, console)


def slurm_available() -> bool:
    return shutil.which("sbatch") is not None and shutil.which("squeue") is not None


def executor(config: Config, folder: Path, name: str):
    """A submitit SlurmExecutor with launch.slurm's settings; its logs go to `folder`."""
    import submitit

    if not slurm_available():
        raise CompError(
            "--executor slurm: no Slurm here (sbatch and squeue are not on PATH); run on a "
            "cluster's login node, or use --executor local"
        )
    s = config.launch.slurm
    extra: dict = {"requeue": True}
    for flag in s.sbatch_extra:  # --key=value; --key= is a bare flag (--exclusive=)
        key, _, value = flag[2:].partition("=")
        extra[key.replace("-", "_")] = value or True
    params = {
        "job_name": name,
        "time": s.time_min,
        "cpus_per_task": s.cpus_per_task,
        "mem": f"{s.mem_gb}G",
        "array_parallelism": s.array_parallelism,
        "setup": list(s.setup),
        "stderr_to_stdout": True,
        "additional_parameters": extra,
    }
    optional = {"partition": s.partition, "account": s.account, "qos": s.qos,
                "constraint": s.constraint, "gpus_per_task": s.gpus_per_task}  # fmt: skip
    params.update({key: value for key, value in optional.items() if value})
    found = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=s.max_requeues)
    found.update_parameters(**params)
    return found


def submit(config: Config, folder: Path, name: str, tasks: list[SlurmTask]) -> list[str]:
    """One job array of the tasks; their job ids (`<array>_<i>`)."""
    slurm = executor(config, folder, name)
    try:
        with slurm.batch():
            jobs = [slurm.submit(task) for task in tasks]
    except Exception as error:  # sbatch refused (a partition, an account, resources)
        first = str(error).strip().splitlines()
        raise CompError(f"sbatch refused the job array: {first[-1] if first else error}") from None
    return [job.job_id for job in jobs]


def log_path(folder: Path, job_id: str) -> Path:
    """A task's log (stdout and stderr together): submitit's <id>_0_log.out."""
    return folder / f"{job_id}_0_log.out"


def task_states(job_ids: list[str]) -> dict[str, str]:
    """Slurm's state of each task (`<array>_<i>` or a plain job id), from one squeue call;
    a task squeue no longer knows (purged, or cancelled while pending) is absent."""
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids})
    if not arrays:
        return {}
    command = ["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T", "-j", ",".join(arrays)]
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0 and "Invalid job id" not in out.stderr:  # that: none is known
        errors = out.stderr.strip().splitlines()
        raise CompError(
            f"squeue did not answer ({errors[-1] if errors else f'exit {out.returncode}'}); "
            f"the tasks may still run (`squeue -j {','.join(arrays)}`): run the same command "
            "again once squeue answers"
        )
    states = {}
    for line in out.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        states[job_id] = state.split()[0] if state else "UNKNOWN"
    return {job_id: states[job_id] for job_id in job_ids if job_id in states}
