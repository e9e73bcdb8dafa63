"""The stream of training events: listeners see every logged step and evaluation, TensorBoard
files hold what metrics.json holds, and a listener can stop a fold cleanly."""

import json

import pytest
from rich.console import Console

from comp.events import Evaluation, Events, FoldStopped, History, Start, Step
from comp.layout import METRICS, STOPPED, fold_dir
from comp.runs.frame import train_folds
from tests.conftest import demo_config, run_comp, write_config_file

QUIET = Console(quiet=True)
SHORT = {"train.steps": 20, "train.eval_every": 5, "train.log_every": 4, "train.fgm": False}


def scalars(folder, tag: str) -> list[tuple[int, float]]:
    """(step, value) of a scalar in a folder's event files, read by tensorboard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


def test_listeners_see_every_logged_step_and_evaluation(demo_root):
    config = demo_config(demo_root, **SHORT, **{"train.experiment": "listened"})
    seen = []
    train_folds(config, [0], "cpu", False, QUIET, listen=lambda fold: [seen.append])
    assert seen[0] == Start(0, 20)
    steps = [e.step for e in seen if isinstance(e, Step)]
    evaluations = [e for e in seen if isinstance(e, Evaluation)]
    assert steps == [4, 5, 8, 10, 12, 15, 16, 20]  # log_every 4, and every evaluation
    assert [e.step for e in evaluations] == [5, 10, 15, 20]
    metrics = json.loads((fold_dir(config, 0) / METRICS).read_text())
    assert [h["val_macro_f1"] for h in metrics["history"]["val"]] == [
        e.val_macro_f1 for e in evaluations
    ]
    assert [h["step"] for h in metrics["history"]["loss"]] == steps


def test_tensorboard_files_hold_the_scores_of_metrics_json(demo_root, tmp_path):
    settings = {**SHORT, "train.experiment": "board", "train.tensorboard": True}
    config = demo_config(demo_root, **settings)
    result = run_comp("train", "--config", write_config_file(tmp_path / "c.yaml", config),
                      "--fold", "0")  # fmt: skip
    assert result.exit_code == 0, result.output
    out = fold_dir(config, 0)
    assert list(out.glob("events.out.tfevents.*"))
    metrics = json.loads((out / METRICS).read_text())
    val = [(h["step"], h["val_macro_f1"]) for h in metrics["history"]["val"]]
    assert scalars(out, "val/macro_f1") == [(s, pytest.approx(v, abs=1e-6)) for s, v in val]
    losses = [(h["step"], h["loss"]) for h in metrics["history"]["loss"]]
    assert scalars(out, "train/loss") == [(s, pytest.approx(v, rel=1e-6)) for s, v in losses]
    again = run_comp("train", "--config", write_config_file(tmp_path / "c.yaml", config),
                     "--fold", "0", "--force")  # fmt: skip
    assert again.exit_code == 0, again.output
    assert len(list(out.glob("events.out.tfevents.*"))) == 1  # the old run's file went with it
    assert scalars(out, "val/macro_f1") == [(s, pytest.approx(v, abs=1e-6)) for s, v in val]


def test_tensorboard_is_no_part_of_the_fingerprint(demo_root):
    from comp.runs.frame import fold_fingerprint

    assert fold_fingerprint(demo_config(demo_root, **{"train.tensorboard": True})) == (
        fold_fingerprint(demo_config(demo_root))
    )


def stop_at_second_evaluation(fold):
    evaluations = []

    def listener(event):
        if isinstance(event, Evaluation):
            evaluations.append(event)
            return "pruned: worse than the median" if len(evaluations) == 2 else None
        return None

    return [listener]


def test_a_listener_stops_a_fold_cleanly(demo_root, tmp_path):
    config = demo_config(demo_root, **SHORT, **{"train.experiment": "stopped"})
    with pytest.raises(FoldStopped) as stopped:
        train_folds(config, [0, 1], "cpu", False, QUIET, listen=stop_at_second_evaluation)
    assert (stopped.value.fold, stopped.value.step) == (0, 10)
    out = fold_dir(config, 0)
    record = json.loads((out / STOPPED).read_text())
    assert record["reason"] == "pruned: worse than the median" and record["step"] == 10
    assert 0 <= record["val_macro_f1"] <= 1
    assert not (out / METRICS).exists()
    assert not any((fold_dir(config, 1) / name).exists() for name in (METRICS, STOPPED))

    # comp ensemble refuses it, saying why; comp train trains it to the end
    path = write_config_file(tmp_path / "c.yaml", config)
    result = run_comp("ensemble", "--config", path)
    assert result.exit_code == 2
    assert "was stopped early at step 10 (pruned: worse than the median)" in result.stderr
    train_folds(config, [0], "cpu", False, QUIET)
    assert (out / METRICS).is_file() and not (out / STOPPED).exists()


def test_history_reads_the_format_before_the_event_stream():
    old = [{"step": 50, "epoch": 0, "loss": 4.1, "val_macro_f1": 0.2}]
    assert History(old).as_dict() == {
        "loss": [],
        "val": [{"step": 50, "epoch": 0, "val_macro_f1": 0.2}],
    }


def test_the_first_stop_reason_wins_and_closing_closes_listeners():
    closed = []

    class Closing:
        def __call__(self, event):
            return "second"

        def close(self):
            closed.append(True)

    events = Events([lambda e: "first", Closing()])
    events.emit(Start(0, 1))
    events.close()
    assert events.stop_reason == "first" and closed == [True]
