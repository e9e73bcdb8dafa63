"""The states comp gives the Slurm tasks it submitted (no Slurm needed: squeue's answers are
given), and their records."""

import time

from comp.runs.jobs import Task, record, recorded_tasks, state_of


def test_a_task_is_finished_only_by_its_own_file_or_slurms_completed(tmp_path):
    done = tmp_path / "metrics.json"
    fold = Task("fold 0", "7_0", "log", str(done), time.time())
    assert state_of(fold, "PENDING") == "pending" and state_of(fold, "REQUEUED") == "pending"
    assert state_of(fold, "RUNNING") == "running" and state_of(fold, "COMPLETING") == "running"
    assert state_of(fold, "COMPLETED") == "failed (COMPLETED)"  # ended without its metrics
    assert state_of(fold, "CANCELLED") == "failed (CANCELLED)"
    assert state_of(fold, None) == "gone"
    done.write_text("{}")
    assert state_of(fold, "COMPLETED") == "finished" and state_of(fold, None) == "finished"
    stale = Task("fold 0", "7_0", "log", str(done), time.time() + 60)  # written before it
    assert state_of(stale, None) == "gone"
    worker = Task("worker 0", "8_0", "log", "", time.time())
    assert state_of(worker, "COMPLETED") == "finished" and state_of(worker, "FAILED") != "finished"


def test_submissions_are_recorded_newest_last(tmp_path):
    first = [Task("fold 0", "1_0", "a.log", "m0"), Task("fold 1", "1_1", "b.log", "m1")]
    record(tmp_path, "train", "exp", first, tmp_path / "config.yaml")
    record(tmp_path, "train", "exp", [Task("fold 1", "2_0", "c.log", "m1")], tmp_path / "c")
    assert [(name, t.job_id) for name, t in recorded_tasks(tmp_path / "job.json")] == [
        ("exp", "1_0"),
        ("exp", "1_1"),
        ("exp", "2_0"),
    ]
