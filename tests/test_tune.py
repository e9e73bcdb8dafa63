"""`comp tune`: the search space and its errors, a journal study shared by processes, pruning that
ends a fold cleanly, failed trials, `keep`, best.yaml, and `--confirm` on unseen folds only."""

import copy
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from comp.config import ConfigError
from comp.kinds import load_config
from comp.layout import BEST_CONFIG, CONFIG, METRICS, STOPPED, TRIALS_CSV, fold_dir, tune_dir
from comp.locks import lock_is_held
from comp.tune import prepare_study, work
from comp.tune.space import parse_space
from comp.tune.study import check_same_study, open_study, states, trial_lock_path, trial_note
from tests.conftest import demo_config, one_line, run_comp, write_config_file

ROOT = Path(__file__).resolve().parents[1]
QUIET = Console(quiet=True)
TFIDF_SPACE = {
    "tfidf.c": {"low": 0.1, "high": 4.0, "log": True},
    "tfidf.word_ngram_max": {"low": 1, "high": 2},
    "tfidf.sublinear_tf": [True, False],
}


def tfidf_study(root: Path, study: str, **settings):
    values = {
        "model.kind": "tfidf",
        "train.experiment": f"{study}_base",
        "tune.study": study,
        "tune.trials": 4,
        "tune.folds": "[0]",
        "tune.pruner": "none",
        **settings,
    }
    config = demo_config(root, **values)
    config.tune.space = dict(TFIDF_SPACE)
    return config


def ended_trials(config) -> list:
    study = open_study(config)
    return sorted((t.number, t.state.name) for t in study.get_trials())


# ---------------------------------------------------------------------------------------------
# The space


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"train.lrr": {"low": 0.1, "high": 1}}, "unknown config key 'train.lrr'"),
        ({"folds.k": [2, 3]}, "'folds.k' cannot be searched"),
        ({"train.experiment": ["a", "b"]}, "'train.experiment' cannot be searched"),
        ({"tfidf.c": {"low": 2.0, "high": 1.0}}, "needs low < high"),
        ({"tfidf.c": {"low": 0.0, "high": 1.0, "log": True}}, "low > 0 with log"),
        ({"tfidf.c": {"low": 0.1}}, "expected {low, high, log?, step?}"),
        ({"tfidf.c": ["a", "b"]}, "tune.space.tfidf.c: value 'a'"),
        ({"model.pooling": ["cls", "sum"]}, "model.pooling must be cls or mean"),
        ({"tfidf.min_df": {"low": 1.5, "high": 3}}, "integer low and high"),
        ({"tfidf.classifier": {"low": 1, "high": 2}}, "a range needs a number key"),
        ({}, "tune.space is empty"),
    ],
)
def test_a_bad_space_is_one_error_naming_the_key(demo_root, tmp_path, space, message):
    config = tfidf_study(demo_root, "bad_space")
    config.tune.space = space
    path = Path(write_config_file(tmp_path / "c.yaml", config))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("?", r"\?")):
        parse_space(load_config([path]), path)


def test_a_space_from_a_yaml_layer_and_int_float_and_categorical_dimensions(demo_root, tmp_path):
    layer = tmp_path / "tune.yaml"
    layer.write_text(
        "tune:\n  space:\n    train.lr: {low: 1.0e-5, high: 1.0e-2, log: true}\n"
        "    train.drw_start_epoch: {low: 1, high: 3}\n    model.pooling: [cls, mean]\n"
    )
    base = Path(write_config_file(tmp_path / "base.yaml", demo_config(demo_root)))
    config = load_config([base, layer])
    dims = {d.key: d for d in parse_space(config, base)}
    assert dims["train.lr"].type is float and dims["train.lr"].log
    assert dims["train.drw_start_epoch"].type is int
    assert dims["model.pooling"].choices == ("cls", "mean")


# ---------------------------------------------------------------------------------------------
# Studies


def test_a_study_runs_its_trials_and_writes_its_results(demo_root, tmp_path):
    config = tfidf_study(demo_root, "results", **{"tune.keep": 2, "tune.trials": 5})
    result = run_comp("tune", "--config", write_config_file(tmp_path / "c.yaml", config))
    assert result.exit_code == 0, result.output
    assert [state for _, state in ended_trials(config)] == ["COMPLETE"] * 5
    folder = tune_dir(config)
    header = (folder / TRIALS_CSV).read_text().splitlines()[0]
    assert (
        header == "number,state,value,tfidf.c,tfidf.word_ngram_max,tfidf.sublinear_tf,wall_s,note"
    )
    assert (folder / "history.png").is_file() and (folder / "importances.png").is_file()
    # trial 0 is the base config
    study = open_study(config)
    assert study.trials[0].params["tfidf.c"] == config.tfidf.c
    # keep: 2 -> model weights in the two best trials only
    with_weights = sorted(Path(config.train.runs_dir).glob("results_t*/fold0/tfidf_model.npz"))
    best_two = sorted(study.trials, key=lambda t: -t.value)[:2]
    assert [p.parent.parent.name for p in with_weights] == sorted(
        f"results_t{t.number:03d}" for t in best_two
    )
    # best.yaml: the best trial's settings as an experiment of its own
    best = load_config([folder / BEST_CONFIG])
    top = max(study.trials, key=lambda t: t.value)
    assert best.train.experiment == best.ensemble.name == "results_best"
    assert best.tfidf.c == pytest.approx(top.params["tfidf.c"])
    assert best.tfidf.sublinear_tf == top.params["tfidf.sublinear_tf"]


def test_confirm_trains_and_scores_the_unseen_folds_only(demo_root, tmp_path):
    config = tfidf_study(demo_root, "confirm", **{"tune.trials": 3})
    path = write_config_file(tmp_path / "c.yaml", config)
    assert run_comp("tune", "--config", path).exit_code == 0
    result = run_comp("tune", "--config", path, "--confirm", "1")
    assert result.exit_code == 0, result.output
    lines = (tune_dir(config) / "confirmed.csv").read_text().splitlines()[1:]
    study = open_study(config)
    best = max(study.trials, key=lambda t: t.value)
    numbers = [int(line.split(",")[0]) for line in lines]
    assert numbers == [best.number] + ([0] if best.number != 0 else [])
    for line in lines:
        number, _, search, unseen = line.split(",")[:4]
        experiment = f"confirm_t{int(number):03d}"
        fold1 = json.loads((fold_dir(config, 1, experiment) / METRICS).read_text())
        assert float(unseen) == pytest.approx(fold1["val_macro_f1"], abs=1e-6)  # fold 1 alone
        assert float(search) == pytest.approx(study.trials[int(number)].value, abs=1e-4)


@pytest.mark.parametrize("option", [["--show"], ["--confirm", "1"]])
def test_show_and_confirm_of_a_study_never_started_are_refused(demo_root, tmp_path, option):
    config = tfidf_study(demo_root, "never_started")
    result = run_comp("tune", "--config", write_config_file(tmp_path / "c.yaml", config), *option)
    assert result.exit_code == 2 and "no study 'never_started'" in result.output, result.output
    assert "run `comp tune` first" in result.output and not tune_dir(config).exists()


def test_two_commands_and_two_workers_share_a_journal_study(demo_root, tmp_path):
    config = tfidf_study(demo_root, "shared", **{"tune.trials": 6})
    path = write_config_file(tmp_path / "c.yaml", config)
    command = [sys.executable, "-m", "comp", "tune", "--config", path]
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    second = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    outputs = [p.communicate(timeout=300)[0].decode() for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert ended_trials(config) == [(n, "COMPLETE") for n in range(6)]
    ran = [out.count("COMPLETE after") for out in outputs]
    assert sum(ran) == 6 and min(ran) >= 1, ran  # both did work, no trial twice

    config.tune.trials = 9  # the same study, extended, by two workers of one command
    path = write_config_file(tmp_path / "c.yaml", config)
    result = run_comp("tune", "--config", path, "--workers", "2")
    assert result.exit_code == 0, result.output
    assert ended_trials(config) == [(n, "COMPLETE") for n in range(9)]
    logs = sorted((tune_dir(config) / "workers").glob("worker*.log"))
    assert len(logs) == 2


def test_another_config_on_the_same_study_is_refused(demo_root, tmp_path):
    config = tfidf_study(demo_root, "same", **{"tune.trials": 1})
    assert (
        run_comp("tune", "--config", write_config_file(tmp_path / "a.yaml", config)).exit_code == 0
    )
    elsewhere = copy.deepcopy(config)  # where it runs may differ: a Slurm submission, say
    elsewhere.launch.executor, elsewhere.launch.slurm.time_min = "slurm", 5
    check_same_study(elsewhere, config)
    config.tune.space["tfidf.min_df"] = {"low": 1, "high": 3}
    result = run_comp("tune", "--config", write_config_file(tmp_path / "b.yaml", config))
    assert result.exit_code == 2, result.output
    said = one_line(result.stderr)
    assert said.startswith("error: study 'same' was started with tune.space = {") and (
        "this command has {" in said and "'tfidf.min_df'" in said
    )


# ---------------------------------------------------------------------------------------------
# The transformer: pruning that stops a fold, a diverging trial, a killed worker

TINY = {
    "train.steps": 20,
    "train.eval_every": 5,
    "train.checkpoint_every": 5,
    "train.fgm": False,
    "tune.folds": "[0]",
    "tune.pruner": "median",
    "tune.pruner_startup_trials": 1,
    "tune.pruner_warmup_evals": 1,
}


def transformer_study(root: Path, study: str, trials: int, **settings):
    values = {"tune.study": study, "tune.trials": trials, "train.experiment": f"{study}_base",
              **TINY, **settings}  # fmt: skip
    config = demo_config(root, **values)
    config.tune.space = {"train.lr": {"low": 1e-7, "high": 1e-2, "log": True}}
    return config


def test_a_pruned_trial_stops_its_fold_cleanly_and_a_diverging_one_fails(demo_root, tmp_path):
    # 40 steps: by step 20 trial 0 has learnt something (val macro-F1 0.0076 against trial 1's
    # constant 0.0017 here); the last evaluation never prunes (the trial has done its work)
    longer = {"train.steps": 40, "train.eval_every": 10, "train.checkpoint_every": 10}
    config = transformer_study(demo_root, "prune", trials=3, **longer)
    path = write_config_file(tmp_path / "c.yaml", config)
    plan = prepare_study(load_config([path]), QUIET)
    study = open_study(config)
    study.enqueue_trial({"train.lr": 1e-7})  # learns nothing: below trial 0 at every step
    study.enqueue_trial({"train.lr": 1e4})  # diverges
    work(plan, "cpu", QUIET)
    assert ended_trials(config) == [(0, "COMPLETE"), (1, "PRUNED"), (2, "FAIL")]
    pruned = fold_dir(config, 0, "prune_t001")
    stopped = json.loads((pruned / STOPPED).read_text())
    assert not (pruned / METRICS).exists() and stopped["step"] in (20, 30)  # warmed up, not last
    assert f"pruned by the median pruner at step {stopped['step']}" in trial_note(config, 1)
    assert not list(pruned.glob("checkpoint*.pt"))  # a pruned trial keeps no checkpoint
    assert "diverged" in trial_note(config, 2)


def test_the_reaper_judges_only_trials_whose_lock_it_can_see(demo_root):
    from optuna.trial import TrialState

    from comp.tune.study import HOST_ATTR, mark_host, reap_dead_trials, trial_lock

    config = tfidf_study(demo_root, "reap")
    study = open_study(config)
    elsewhere, local_dead, local_live = study.ask(), study.ask(), study.ask()
    elsewhere.set_user_attr(HOST_ATTR, "another-machine")  # its lock is in that machine's folder
    mark_host(local_dead)  # died between asking and locking: no lock file, but this host's
    mark_host(local_live)
    with trial_lock(config, local_live.number):
        assert reap_dead_trials(study, config) == [local_dead.number]
    running = study.get_trials(states=(TrialState.RUNNING,))
    assert sorted(t.number for t in running) == [elsewhere.number, local_live.number]
    assert reap_dead_trials(study, config) == [local_live.number]  # its lock file is free now


def test_a_killed_worker_leaves_no_trial_running(demo_root, tmp_path):
    settings = {"train.steps": 60, "train.eval_every": 20}
    config = transformer_study(demo_root, "killed", trials=2, **settings)
    path = write_config_file(tmp_path / "c.yaml", config)
    command = [sys.executable, "-m", "comp", "tune", "--config", path]
    worker = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.5)
        if (tune_dir(config) / CONFIG).is_file() and states(open_study(config))["RUNNING"]:
            break
    time.sleep(1.0)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert states(open_study(config))["RUNNING"] == 1
    result = run_comp("tune", "--config", path)
    assert result.exit_code == 0, result.output
    trials = ended_trials(config)
    assert trials[0] == (0, "FAIL") and "its worker is gone" in trial_note(config, 0)
    assert len(trials) == 2 and states(open_study(config))["RUNNING"] == 0
    assert not lock_is_held(trial_lock_path(config, 0))  # the dead worker's lock went with it
