"""The Optuna study behind `comp tune`: where it is stored, created once and loaded by every worker,
its sampler and pruner, and the trials a dead worker left running.

- Storage: a journal file in runs/tune/<study>/ (`tune.storage: ""`; a shared filesystem lets
  other machines join), or any Optuna RDB URL. The study is created under a file lock in the
  study's folder and loaded ever after: two processes creating it at once would race.
- A worker holds `trials/<number>.lock` while its trial runs. The kernel releases it when the
  worker dies, however it dies, so a RUNNING trial whose lock is free belongs to a dead worker:
  the next worker or command that looks marks it FAIL and the study goes on (Optuna's heartbeat
  works only with RDB storages).
- Each trial's parameters are drawn by a TPE sampler seeded with `tune.sampler_seed` plus the
  trial's number: the same study history gives the same trial whichever worker runs it, and two
  workers starting together never draw the same parameters.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from comp.config import Config
from comp.errors import CompError
from comp.io import write_json_atomically
from comp.layout import JOURNAL, TRIAL_LOCKS, tune_dir
from comp.locks import file_lock, lock_is_held, waiting_lock

STUDY_LOCK = ".study.lock"  # held while the study is created, and while a trial is asked for
ENDED = ("COMPLETE", "PRUNED", "FAIL")


def quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").propagate = False


def storage(config: Config):
    """tune.storage: "" is the study folder's journal file, else an RDB URL."""
    if config.tune.storage:
        return config.tune.storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    folder = tune_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(folder / JOURNAL)))


def sampler(config: Config, number: int = 0):
    from optuna.samplers import TPESampler

    return TPESampler(
        seed=config.tune.sampler_seed + number, n_startup_trials=config.tune.startup_trials
    )


def pruner(config: Config):
    """The pruner `tune.pruner` names; `comp.tune.trial.Reporter` asks it only once the study
    has `tune.pruner_startup_trials` complete trials."""
    import optuna

    t = config.tune
    if t.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=t.pruner_startup_trials, n_warmup_steps=t.pruner_warmup_evals
        )
    if t.pruner == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(n_startup_steps=t.pruner_warmup_evals)
    return optuna.pruners.NopPruner()


@contextmanager
def study_lock(config: Config) -> Iterator[None]:
    """The study's critical sections (creating it, counting and asking for a trial) are one
    process at a time on this machine."""
    with waiting_lock(tune_dir(config) / STUDY_LOCK):
        yield


def open_study(config: Config, first_params: dict | None = None):
    """The study of tune.study, loaded, or created (with `first_params` enqueued as trial 0)
    when it does not exist yet."""
    import optuna

    quiet_optuna()
    name, where = config.tune.study, storage(config)
    with study_lock(config):
        try:
            return optuna.load_study(
                study_name=name, storage=where, sampler=sampler(config), pruner=pruner(config)
            )
        except KeyError:  # no study of that name yet
            pass
        study = optuna.create_study(
            study_name=name,
            storage=where,
            sampler=sampler(config),
            pruner=pruner(config),
            direction=config.tune.direction,
        )
        if first_params is not None:
            with warnings.catch_warnings():  # a base value outside a range is still tried
                warnings.simplefilter("ignore")
                study.enqueue_trial(first_params, user_attrs={"base": True})
        return study


def trial_lock_path(config: Config, number: int) -> Path:
    return tune_dir(config) / TRIAL_LOCKS / f"{number}.lock"


def trial_lock(config: Config, number: int):
    return file_lock(trial_lock_path(config, number), f"trial {number} of {config.tune.study}")


def states(study) -> dict[str, int]:
    counts = dict.fromkeys((*ENDED, "RUNNING", "WAITING"), 0)
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def reap_dead_trials(study, config: Config) -> list[int]:
    """Mark FAIL every RUNNING trial whose worker is gone (its trial lock is free). Only trials
    started on this machine's filesystem can be judged; call it holding the study lock."""
    from optuna.trial import TrialState

    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not lock_is_held(trial_lock_path(config, trial.number)):
            end_trial(study, config, trial.number, TrialState.FAIL, "its worker is gone")
            reaped.append(trial.number)
    return reaped


def end_trial(study, config: Config, number: int, state, note: str, value=None) -> None:
    """Tell the study how trial `number` ended, and keep the note (why it was pruned or
    failed) in trials/<number>.json for the results."""
    write_json_atomically(trial_lock_path(config, number).with_suffix(".json"), {"note": note})
    study.tell(number, value, state=state)


def trial_note(config: Config, number: int) -> str:
    path = trial_lock_path(config, number).with_suffix(".json")
    try:
        return str(json.loads(path.read_text(encoding="utf-8")).get("note", ""))
    except (OSError, ValueError):
        return ""


def check_same_study(config: Config, saved: Config) -> None:
    """A second command on a study must bring the same base config and space (the trial count
    may grow: that extends the study)."""
    from comp.config import dump_config

    mine, theirs = (
        dump_config(c).replace(f"trials: {c.tune.trials}\n", "") for c in (config, saved)
    )
    if mine != theirs:
        raise CompError(
            f"study '{config.tune.study}' was started with another config or space "
            f"({tune_dir(config) / 'config.yaml'}); pick another tune.study, or use that config"
        )
