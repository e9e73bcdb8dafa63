"""Ctrl-C and SIGTERM end in one line that says what was kept: a fold saves its checkpoint at
the step it reached and the same command resumes there (exit 130 / 143); with --gpus every fold
is stopped and reported; a tuning worker marks its trial failed."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from comp.interrupt import Interrupted, at_step_boundaries, requested, stop_signals
from comp.kinds import FoldFit
from comp.layout import METRICS, fold_dir
from comp.tune.study import open_study, trial_note
from tests.conftest import demo_config, wait_for, write_config_file

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "COLUMNS": "300", "PYTHONUNBUFFERED": "1"}
LONG = {"train.steps": 2000, "train.eval_every": 500, "train.checkpoint_every": 500}


def test_a_signal_raises_at_once_except_where_a_loop_defers_it():
    with stop_signals():
        with pytest.raises(Interrupted) as stopped:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        assert stopped.value.exit_code == 143
        with at_step_boundaries():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
            assert requested() == signal.SIGINT  # the loop acts at its next step
            with pytest.raises(Interrupted):  # a second Ctrl-C does not wait
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def start(args: list[str]) -> subprocess.Popen:
    """comp in a session of its own, as a terminal starts it (Ctrl-C: SIGINT to its group)."""
    command = [sys.executable, "-m", "comp", *args]
    return subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip


def wait_for_training(out: Path) -> None:
    started = out / "backbone" / "config.json"
    wait_for(started.is_file, what=f"{started} (the fold's training started)", every=0.2)


def children_lead_sessions(process: subprocess.Popen) -> bool:
    """Whether comp's child processes each lead a session of their own: out of reach of the
    terminal's Ctrl-C, so the one SIGINT they get is the one comp passes on (two could reach
    one before its handler runs and coalesce, or not: a race no test can pin)."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    return bool(children) and all(os.getsid(int(pid)) == int(pid) for pid in children)


def signal_when_training(
    process: subprocess.Popen, signum: int, out: Path, group: bool = False
) -> tuple[str, str]:
    """Send `signum` once the fold has trained a few steps (to comp's whole process group with
    `group`, as Ctrl-C in a terminal does); the process's stdout and stderr."""
    wait_for_training(out)
    time.sleep(2.0)  # some steps in
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    return process.communicate(timeout=120)


def test_a_stopped_fold_says_its_step_and_the_same_command_resumes_there(demo_root, tmp_path):
    signum, name = signal.SIGINT, "SIGINT"  # SIGTERM: the --gpus test below
    config = demo_config(demo_root, **LONG, **{"train.experiment": f"stopped_{name}"})
    path = write_config_file(tmp_path / "c.yaml", config)
    process = start(["train", "--config", path, "--fold", "0"])
    _, err = signal_when_training(process, signum, fold_dir(config, 0))
    assert process.returncode == 128 + signum, err
    line = err.strip().splitlines()[-1]
    match = re.search(rf"stopped by {name} at step (\d+); its checkpoint is saved and the same "
                      rf"command resumes from step (\d+)", line)  # fmt: skip
    assert match and match[1] == match[2] and int(match[1]) > 0, err
    assert "Traceback" not in err
    again = start(["train", "--config", path, "--fold", "0"])
    lines = []
    for line in again.stdout:  # the rerun's first words are enough: stop it there
        lines.append(line)
        if "resuming from step" in line:
            break
    again.kill()
    again.wait()
    assert f"fold 0: resuming from step {match[1]}\n" in lines, lines


@pytest.mark.parametrize(
    ("signum", "group"),
    [(signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["SIGTERM to comp", "Ctrl-C in a terminal"],
)
def test_gpus_stops_every_fold_and_says_where(demo_root, tmp_path, signum, group):
    name = signal.Signals(signum).name
    config = demo_config(demo_root, **LONG, **{"train.experiment": f"stopped_gpus_{name}"})
    path = write_config_file(tmp_path / "c.yaml", config)
    process = start(["train", "--config", path, "--gpus", "0,0", "--device", "cpu"])
    wait_for_training(fold_dir(config, 1))
    assert children_lead_sessions(process)
    out, err = signal_when_training(process, signum, fold_dir(config, 1), group)
    assert process.returncode == 128 + signum, out + err
    for fold in (0, 1):  # each fold got the signal once: it saved (a second one would not wait)
        assert re.search(rf"fold {fold}: stopped: fold {fold} of stopped_gpus_{name}: stopped by "
                         rf"{name} at step \d+; its checkpoint is saved", out), out  # fmt: skip
    assert "the same command resumes them" in err.strip().splitlines()[-1]


def test_a_fold_without_steps_says_it_starts_again(demo_root, tmp_path):
    from comp.runs.frame import _fit, fold_fingerprint, load_run_inputs

    config = demo_config(demo_root, **{"model.kind": "tfidf", "train.experiment": "cut"})
    inputs = load_run_inputs(config, fold_fingerprint(config))

    class Cut:
        def fit_fold(self, fold: int, out: Path, events) -> FoldFit:
            raise Interrupted(signal.SIGINT)

    said = "fold 1 of cut: interrupted by SIGINT before its end; nothing of it was written"
    with pytest.raises(Interrupted, match=said + ", and the same command trains it again"):
        _fit(Cut(), inputs, 1, tmp_path, lambda fold: [])
    assert not (tmp_path / METRICS).exists()


def test_ctrl_c_of_a_tuning_worker_marks_its_trial_failed(demo_root, tmp_path):
    config = demo_config(demo_root, **LONG, **{"train.experiment": "tune_cut_base",
                                               "tune.study": "cut", "tune.trials": 2})  # fmt: skip
    config.tune.space = {"train.lr": {"low": 1e-4, "high": 1e-2, "log": True}}
    path = write_config_file(tmp_path / "c.yaml", config)
    process = start(["tune", "--config", path])
    _, err = signal_when_training(process, signal.SIGINT, fold_dir(config, 0, "cut_t000"))
    assert process.returncode == 130, err
    (trial,) = open_study(config).trials
    assert trial.state.name == "FAIL" and trial_note(config, 0).startswith("interrupted")
    assert "trial 0 was stopped and marked failed" in err.strip().splitlines()[-1]


def test_ctrl_c_of_tune_workers_fails_each_running_trial_once(demo_root, tmp_path):
    study = {"train.experiment": "tune_workers_base", "tune.study": "workers", "tune.trials": 2}
    config = demo_config(demo_root, **LONG, **study)
    config.tune.space = {"train.lr": {"low": 1e-4, "high": 1e-2, "log": True}}
    path = write_config_file(tmp_path / "c.yaml", config)
    process = start(["tune", "--config", path, "--workers", "2", "--device", "cpu"])
    for number in (0, 1):  # both workers train
        wait_for_training(fold_dir(config, 0, f"workers_t{number:03d}"))
    assert children_lead_sessions(process)
    _, err = signal_when_training(process, signal.SIGINT, fold_dir(config, 0, "workers_t001"), True)
    assert process.returncode == 130, err
    assert "every worker was stopped" in err.strip().splitlines()[-1]
    trials = open_study(config).trials
    assert [t.state.name for t in trials] == ["FAIL", "FAIL"]
    for number in (0, 1):  # stopped at a step, not by a second signal anywhere
        note = trial_note(config, number)
        assert note.startswith("interrupted: ") and "stopped by SIGINT at step" in note, note


@pytest.mark.parametrize(
    "stop_at", [6, 7, 12], ids=["an evaluating step", "a plain step", "the last step"]
)
def test_a_fold_stopped_at_any_step_resumes_to_the_uninterrupted_outputs(
    demo_root, monkeypatch, stop_at
):
    import json

    import polars as pl
    from rich.console import Console

    import comp.interrupt as interrupt
    from comp.layout import OOF
    from comp.runs.frame import train_folds

    quiet = Console(quiet=True)
    settings = {"train.steps": 12, "train.eval_every": 3, "train.checkpoint_every": 4}
    whole = demo_config(demo_root, **settings, **{"train.experiment": "uncut"})
    train_folds(whole, [0], "cpu", False, quiet)  # skipped after the first parameter
    cut = demo_config(demo_root, **settings, **{"train.experiment": f"cut_{stop_at}"})
    calls = {"n": 0}

    def requested():  # asked once after every step: the signal arrives during step `stop_at`
        calls["n"] += 1
        return signal.SIGINT if calls["n"] == stop_at else None

    with monkeypatch.context() as patch:
        patch.setattr(interrupt, "requested", requested)
        if stop_at < 12:
            with pytest.raises(Interrupted, match=f"at step {stop_at}; its checkpoint is saved"):
                train_folds(cut, [0], "cpu", False, quiet)
        else:  # the last step: the fold simply ends
            train_folds(cut, [0], "cpu", False, quiet)
    train_folds(cut, [0], "cpu", False, quiet)
    for name in (OOF, "test_logits.parquet"):
        a = pl.read_parquet(fold_dir(whole, 0) / name)["logits"].to_numpy()
        b = pl.read_parquet(fold_dir(cut, 0) / name)["logits"].to_numpy()
        assert (a == b).all(), name
    a, b = (json.loads((fold_dir(c, 0) / METRICS).read_text()) for c in (whole, cut))
    assert a["history"] == b["history"] and a["best_step"] == b["best_step"]
