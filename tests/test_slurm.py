"""`--executor slurm` against a real one-node Slurm on this machine (`make slurm-up`): a job array
of a task per fold, requeue and cancel mid-fold, a failing task, tuning workers and pretraining as
tasks. Run with `make test-slurm`; `make test` leaves them out."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rich.console import Console

from comp.layout import (
    JOB_RECORD,
    METRICS,
    OOF,
    fold_dir,
    launch_dir,
    pretrain_launch_dir,
    tune_dir,
)
from comp.runs.frame import train_folds
from comp.runs.jobs import recorded_tasks
from tests.conftest import demo_config, run_comp, wait_for, write_config_file


def slurm_is_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mixed", "alloc"))


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        not slurm_is_up(), reason="no Slurm here: `make slurm-up && make test-slurm`"
    ),
]
QUIET = Console(quiet=True)
SLURM = {
    "launch.slurm.gpus_per_task": 0,
    "launch.slurm.cpus_per_task": 1,
    "launch.slurm.mem_gb": 1,
    "launch.slurm.time_min": 10,
}


@pytest.fixture(scope="module")
def five_folds(tmp_path_factory) -> Path:
    """The demo with 5 folds and a tiny backbone (the demo's fold count; small rows)."""
    from comp.workspace import prepare_demo

    root = tmp_path_factory.mktemp("slurm")
    config = demo_config(root, **{"folds.k": 5})
    prepare_demo(config, root / "tiny-bert", vocab_size=1500, hidden_size=32, num_layers=1,
                 num_heads=2, max_len=128)  # fmt: skip
    return root


def slurm_config(root: Path, **settings):
    return demo_config(root, **{"folds.k": 5, **SLURM, **settings})


def val_scores(config) -> list[float]:
    return [
        json.loads((fold_dir(config, k) / METRICS).read_text())["val_macro_f1"]
        for k in range(config.folds.k)
    ]


def tasks_of(config) -> list:
    return [task for _, task in recorded_tasks(launch_dir(config) / JOB_RECORD)]


def squeue(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%T", "-j", job_id],
                         capture_output=True, text=True)  # fmt: skip
    return out.stdout.strip()


@pytest.mark.parametrize("kind", ["tfidf", "transformer"])
def test_every_fold_is_a_task_of_one_array_and_scores_as_it_does_here(five_folds, tmp_path, kind):
    settings = {"model.kind": kind, "train.steps": 40, "train.eval_every": 20}
    here = slurm_config(five_folds, **settings, **{"train.experiment": f"{kind}_here"})
    train_folds(here, list(range(5)), "cpu", False, QUIET)
    there = slurm_config(five_folds, **settings, **{"train.experiment": f"{kind}_slurm"})
    path = write_config_file(tmp_path / "c.yaml", there)
    result = run_comp("train", "--config", path, "--executor", "slurm", "--device", "cpu")
    assert result.exit_code == 0, result.output
    tasks = tasks_of(there)
    assert [t.label for t in tasks] == [f"fold {k}" for k in range(5)]
    arrays = {t.job_id.split("_")[0] for t in tasks}
    assert len(arrays) == 1 and [t.job_id.split("_")[1] for t in tasks] == list("01234")
    assert all(squeue(t.job_id) == "COMPLETED" for t in tasks)
    tolerance = 0.0 if kind == "tfidf" else 0.005
    np.testing.assert_allclose(val_scores(there), val_scores(here), atol=tolerance)
    listed = run_comp("jobs", "--config", path)  # every task, finished, with its log
    rows = [line for line in listed.output.splitlines() if f"{kind}_slurm " in line]
    assert listed.exit_code == 0 and len(rows) == 5, listed.output
    assert all("finished" in row and "_log.out" in row for row in rows), listed.output


LONG = {"model.kind": "transformer", "train.steps": 400, "train.eval_every": 100,
        "train.checkpoint_every": 10, "train.log_every": 10}  # fmt: skip


def test_a_requeued_task_resumes_its_fold_to_the_uninterrupted_outputs(five_folds, tmp_path):
    whole = slurm_config(five_folds, **LONG, **{"train.experiment": "requeue_whole"})
    reference = write_config_file(tmp_path / "whole.yaml", whole)  # as a task: the same threads
    assert run_comp("train", "--config", reference, "--fold", "0", "--executor", "slurm",
                    "--device", "cpu").exit_code == 0  # fmt: skip
    config = slurm_config(five_folds, **LONG, **{"train.experiment": "requeued"})
    path = write_config_file(tmp_path / "c.yaml", config)
    detached = run_comp("train", "--config", path, "--fold", "0", "--executor", "slurm",
                        "--detach", "--device", "cpu")  # fmt: skip
    assert detached.exit_code == 0 and "comp jobs" in detached.output, detached.output
    (task,) = tasks_of(config)
    checkpoint = fold_dir(config, 0) / "checkpoint.pt"
    wait_for(checkpoint.is_file, what="the fold's first checkpoint")
    subprocess.run(["scontrol", "requeue", task.job_id], check=True)
    result = run_comp("train", "--config", path, "--fold", "0", "--executor", "slurm")
    assert result.exit_code == 0, result.output
    assert "submitted" not in result.output  # it waited for the requeued task, no new one
    log = Path(task.log).read_text()
    resumed = re.findall(r"resuming from step (\d+)", log)
    assert resumed and int(resumed[-1]) > 0, log[-2000:]
    for name in (OOF, "test_logits.parquet"):
        a = pl.read_parquet(fold_dir(whole, 0) / name)["logits"].to_numpy()
        b = pl.read_parquet(fold_dir(config, 0) / name)["logits"].to_numpy()
        assert np.array_equal(a, b), name


def test_a_cancelled_task_is_resubmitted_alone_and_resumes(five_folds, tmp_path):
    config = slurm_config(five_folds, **LONG, **{"train.experiment": "cancelled"})
    train_folds(config, [0], "cpu", False, QUIET)  # fold 0 finished before: never submitted
    path = write_config_file(tmp_path / "c.yaml", config)
    first = run_comp("train", "--config", path, "--fold", "0,1", "--executor", "slurm",
                     "--detach", "--device", "cpu")  # fmt: skip
    assert first.exit_code == 0, first.output
    (task,) = tasks_of(config)
    assert task.label == "fold 1"
    wait_for((fold_dir(config, 1) / "checkpoint.pt").is_file, what="fold 1's first checkpoint")
    subprocess.run(["scancel", task.job_id], check=True)
    wait_for(lambda: squeue(task.job_id) in ("CANCELLED", ""), what="the cancel")
    again = run_comp("train", "--config", path, "--fold", "0,1", "--executor", "slurm")
    assert again.exit_code == 0, again.output
    tasks = tasks_of(config)
    assert [t.label for t in tasks] == ["fold 1", "fold 1"]  # only the unfinished fold again
    log = Path(tasks[-1].log).read_text()
    assert re.search(r"fold 1: resuming from step [1-9]", log), log[-2000:]
    assert (fold_dir(config, 1) / METRICS).is_file()


def test_a_failing_task_ends_the_command_with_exit_2_naming_its_fold_and_log(five_folds, tmp_path):
    config = slurm_config(five_folds, **{"train.experiment": "failing"})
    path = write_config_file(tmp_path / "c.yaml", config)
    result = run_comp("train", "--config", path, "--fold", "2", "--executor", "slurm",
                      "--set", f"model.backbone={tmp_path}/no-such-backbone")  # fmt: skip
    assert result.exit_code == 2
    (task,) = tasks_of(config)
    line = result.stderr.strip().splitlines()[-1]
    assert "did not finish: fold 2 failed" in line and task.log in line
    assert "no-such-backbone" in Path(task.log).read_text()


def test_tuning_workers_and_pretraining_run_as_tasks(five_folds, tmp_path):
    study = slurm_config(five_folds, **{"model.kind": "tfidf", "train.experiment": "tuned_base",
                                        "tune.study": "on_slurm", "tune.trials": 4,
                                        "tune.folds": "[0]", "tune.pruner": "none"})  # fmt: skip
    study.tune.space = {"tfidf.c": {"low": 0.1, "high": 4.0, "log": True}}
    path = write_config_file(tmp_path / "tune.yaml", study)
    result = run_comp("tune", "--config", path, "--workers", "2", "--executor", "slurm")
    assert result.exit_code == 0, result.output
    rows = (tune_dir(study) / "trials.csv").read_text().splitlines()[1:]
    assert len(rows) == 4 and all(",COMPLETE," in row for row in rows)
    workers = [t for _, t in recorded_tasks(tune_dir(study) / "launch" / JOB_RECORD)]
    assert [t.label for t in workers] == ["worker 0", "worker 1"]

    out = tmp_path / "tapt"
    pretraining = slurm_config(five_folds, **{"pretrain.backbone": five_folds / "tiny-bert",
                                              "pretrain.out_dir": out, "pretrain.steps": 4,
                                              "pretrain.batch_size": 16})  # fmt: skip
    path = write_config_file(tmp_path / "pretrain.yaml", pretraining)
    result = run_comp("pretrain", "--config", path, "--executor", "slurm", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert (out / "pretrain_metrics.json").is_file()
    result = run_comp("pretrain", "--config", path, "--executor", "slurm", "--device", "cpu")
    assert result.exit_code == 0 and "pretrained before with these settings" in result.output
    ((_, task),) = recorded_tasks(pretrain_launch_dir(pretraining) / JOB_RECORD)  # one: the
    jobs = run_comp("jobs", "--config", path)  # second command submitted nothing
    assert jobs.exit_code == 0 and task.job_id in jobs.output and workers[1].job_id in jobs.output


def test_a_controller_that_does_not_answer_is_an_error_not_ended_tasks(tmp_path, monkeypatch):
    from comp.errors import CompError
    from comp.runs.slurm import task_states

    assert task_states(["999999_0"]) == {}  # a job squeue does not know: absent, no error
    config = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")).read_text()
    unreachable = tmp_path / "slurm.conf"  # the same cluster, its controller on a closed port
    unreachable.write_text(config + "\nSlurmctldPort=6899\n")
    monkeypatch.setenv("SLURM_CONF", str(unreachable))
    with pytest.raises(CompError, match=r"squeue did not answer \(.*contact slurm controller"):
        task_states(["5_0", "5_1"])
