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
from tests.conftest import demo_config, write_config_file

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
    command = [sys.executable, "-m", "comp", *args]
    return subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def signal_when_training(process: subprocess.Popen, signum: int, out: Path) -> tuple[str, str]:
    """Send `signum` once the fold has trained a few steps; the process's stdout and stderr."""
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "backbone" / "config.json").is_file():
        time.sleep(0.2)
    time.sleep(2.0)  # some steps in
    process.send_signal(signum)
    return process.communicate(timeout=120)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_fold_says_its_step_and_the_same_command_resumes_there(
    demo_root, tmp_path, signum
):
    name = signal.Signals(signum).name
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


def test_gpus_stops_every_fold_and_says_where(demo_root, tmp_path):
    config = demo_config(demo_root, **LONG, **{"train.experiment": "stopped_gpus"})
    path = write_config_file(tmp_path / "c.yaml", config)
    process = start(["train", "--config", path, "--gpus", "0,0", "--device", "cpu"])
    out, err = signal_when_training(process, signal.SIGTERM, fold_dir(config, 1))
    assert process.returncode == 143, out + err
    for fold in (0, 1):
        assert re.search(rf"fold {fold}: stopped: fold {fold} of stopped_gpus: stopped by SIGTERM "
                         r"at step \d+", out), out  # fmt: skip
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
