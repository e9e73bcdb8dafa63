"""The Optuna study behind `comp tune`: where it is stored, created once and loaded by every worker,
its sampler and pruner, and the trials a dead worker left running.

- Storage: a journal file in runs/tune/<study>/ (`tune.storage: ""`; a shared filesystem lets
  other machines join), or any Optuna RDB URL. The study is created under a file lock in the
  study's folder and loaded ever after: two processes creating it at once would race.
- A worker holds `trials/<number>.lock` while its trial runs. The kernel releases it when the
  worker dies, however it dies, so a RUNNING trial whose lock is free belongs to a dead worker:
  the next worker that asks for a trial marks it FAIL and the study goes on (Optuna's heartbeat
  works only with RDB storages). A trial is judged only where its lock can be seen: its lock
  file is here (a shared folder), or it was started on this host. Another machine's trial
  (an RDB storage, separate folders) is left to that machine.
- Each trial's parameters are drawn by a TPE sampler seeded with `tune.sampler_seed` plus the
  trial's number: the same study history gives the same trial whichever worker runs it, and two
  workers starting together never draw the same parameters.
"""

from __future__ import annotations

import json
import logging
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from comp.config import Config
from comp.errors import CompError
from comp.io import write_json_atomically
from comp.layout import CONFIG, JOURNAL, STUDY_LOCK, TRIAL_LOCKS, tune_dir
from comp.locks import file_lock, lock_is_held, waiting_lock

ENDED = ("COMPLETE", "PRUNED", "FAIL")
HOST_ATTR = "host"


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


def complete_best_first(study, config: Config) -> list:
    """The study's complete trials, the best first (by tune.direction)."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(complete, key=lambda t: t.value, reverse=config.tune.direction == "maximize")


def existing_study(config: Config):
    """The study of tune.study, which a `comp tune` command must have started."""
    if not (tune_dir(config) / CONFIG).is_file():
        raise CompError(f"no study '{config.tune.study}' in {tune_dir(config).parent}; run "
                        "`comp tune` first")  # fmt: skip
    return open_study(config)


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
                study.enqueue_trial(first_params)
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


def mark_host(trial) -> None:
    """Record the host running `trial`: only it can tell a missing lock file from a lock on
    another machine."""
    trial.set_user_attr(HOST_ATTR, socket.gethostname())


def _judged_here(config: Config, trial) -> bool:
    lock = trial_lock_path(config, trial.number)
    return lock.is_file() or trial.user_attrs.get(HOST_ATTR) == socket.gethostname()


def reap_dead_trials(study, config: Config) -> list[int]:
    """Mark FAIL every RUNNING trial whose worker is gone (its trial lock is free), among the
    trials this machine can judge; call it holding the study lock."""
    from optuna.trial import TrialState

    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _judged_here(config, trial) and not lock_is_held(trial_lock_path(config, trial.number)):
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


# May differ between the commands on one study: the trial count (a larger one extends the
# study) and where the work runs (a Slurm submission, a worker on another machine).
FREE_KEYS = ("tune.trials", "launch.")


def _settings(config: Config) -> dict:
    from comp.config import config_to_dict

    flat: dict = {}
    for section, values in config_to_dict(config).items():
        for key, value in values.items() if isinstance(values, dict) else ():
            flat[f"{section}.{key}"] = value
    return {k: v for k, v in flat.items() if not k.startswith(FREE_KEYS)}


def check_same_study(config: Config, saved: Config) -> None:
    """A second command on a study must bring the same base config and space, but for
    FREE_KEYS; the error names the first key that differs."""
    mine, theirs = _settings(config), _settings(saved)
    differ = [key for key in {**theirs, **mine} if mine.get(key) != theirs.get(key)]
    if differ:
        key = differ[0]
        raise CompError(
            f"study '{config.tune.study}' was started with {key} = {theirs.get(key)!r}, this "
            f"command has {mine.get(key)!r} ({tune_dir(config) / CONFIG}); pick another "
            "tune.study, or use that config"
        )
