"""The states comp gives the Slurm tasks it submitted (no Slurm needed: squeue's answers are
given), and their records."""

import errno
import time
from pathlib import Path

import pytest

from comp.errors import CompError
from comp.runs.jobs import Task, record, recorded_tasks, state_of
from comp.runs.slurm import SlurmTask


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


def test_comp_jobs_finds_every_kind_of_record(tmp_path):
    from comp.layout import LAUNCH, PRETRAIN, TUNE
    from comp.runs.jobs import job_records
    from tests.conftest import demo_config

    config = demo_config(tmp_path, **{"train.runs_dir": str(tmp_path / "runs")})
    runs = tmp_path / "runs"
    folders = [runs / "exp" / LAUNCH, runs / TUNE / "study" / LAUNCH,
               runs / PRETRAIN / "arabic_mlm" / LAUNCH, runs / "ensembles" / LAUNCH]  # fmt: skip
    for i, folder in enumerate(folders):
        record(folder, "train", f"work{i}", [Task("fold 0", f"{i}_0", "log", "m")], tmp_path)
    assert job_records(config) == [p / "job.json" for p in folders[:3]]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "unreadable"),
        ('{"submissions": 3}', "no list of submissions"),
        ('{"submissions": [{"name": "exp", "tasks": [{"label": "fold 0"}]}]}', "submission 0"),
    ],
)
def test_a_damaged_job_record_is_one_line_naming_it(tmp_path, text, reason):
    path = tmp_path / "job.json"
    path.write_text(text)
    with pytest.raises(CompError, match=reason) as error:
        recorded_tasks(path)
    assert str(path) in str(error.value) and f"rm {path}" in str(error.value)
    with pytest.raises(CompError, match=reason):
        record(tmp_path, "train", "exp", [], tmp_path / "c")
    assert path.read_text() == text  # left as it was


def quiet_threads(monkeypatch) -> None:
    """A task sets OMP_NUM_THREADS for its process; here that is pytest's, whose later
    subprocesses must keep the thread count of the tests that compare weights bit for bit."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "")  # recorded, to be put back as it was after the test
        monkeypatch.delenv(name)


class _Failing(SlurmTask):
    def __init__(self, error: BaseException) -> None:
        super().__init__(Path("unused.yaml"), None, 1)
        self.error = error

    def work(self) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "line", "code"),
    [
        (CompError("fold 3: bad label"), "error: fold 3: bad label", 2),
        (
            OSError(errno.ENOSPC, "No space left on device", "/runs/x/oof.parquet"),
            "error: /runs/x/oof.parquet: the disk is full",
            2,
        ),  # fmt: skip
    ],
    ids=["a CompError", "a full disk"],
)
def test_a_slurm_task_ends_a_failure_in_one_line_like_the_cli(
    capsys, monkeypatch, error, line, code
):
    quiet_threads(monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        _Failing(error)()
    assert exit_.value.code == code
    err = capsys.readouterr().err
    assert err.startswith(line) and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_slurm_task_lets_a_bug_show_its_traceback(monkeypatch):
    quiet_threads(monkeypatch)
    with pytest.raises(ZeroDivisionError):
        _Failing(ZeroDivisionError("a bug"))()
