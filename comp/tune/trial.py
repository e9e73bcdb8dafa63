"""One trial of `comp tune`: an experiment `<study>_t<NNN>` trained through the normal fold frame
(locks, fingerprints, resume, the divergence guard) on `tune.folds`, its validation scores
reported to the study as it trains, ending COMPLETE (the mean of its folds' validation macro-F1),
PRUNED (the pruner stopped it: its fold writes stopped.json) or FAIL (a diverging run, a setting
the config refuses, an interrupted worker), with a note saying why.

The pruner's steps: with `median`, every evaluation of every searched fold in order (the fold at
position k of tune.folds, evaluation e: step k*E + e, E evaluations a fold; a kind that trains
without evaluations reports its fold's score as the fold's last evaluation); with `wilcoxon`, one
value per finished fold, the fold's number as the step.
"""

from __future__ import annotations

import math
import signal
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.console import Console

from comp.config import Config
from comp.errors import CompError
from comp.events import Evaluation, Event, FoldStopped
from comp.interrupt import Interrupted
from comp.kinds import RunInputs, get_kind, load_config
from comp.layout import CONFIG, fold_dir, trial_experiment
from comp.runs.frame import remove_paths, train_folds
from comp.tune.space import Dimension, override
from comp.tune.study import complete_best_first, end_trial


@dataclass(frozen=True)
class TunePlan:
    """What every trial of a study shares: its base config (as saved in the study's folder),
    the dimensions it searches, and the data loaded once for all trials."""

    config: Config
    config_path: Path
    dimensions: list[Dimension]
    loaded: RunInputs | None = None


class Pruned(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def evaluations_per_fold(config: Config) -> int:
    t = config.train
    return t.steps // t.eval_every + (1 if t.steps % t.eval_every else 0)


class Reporter:
    """Reports a trial's validation scores to Optuna and asks its pruner whether to go on; never
    after the trial's last evaluation (a trial that trained all its folds completes)."""

    def __init__(self, study, trial, config: Config) -> None:
        self.study, self.trial, self.config = study, trial, config
        self.per_fold = evaluations_per_fold(config)
        self.last_position = len(config.tune.folds) - 1
        self.seen: dict[int, int] = {}  # evaluations reported, by the fold's position

    def _ask(self, kind: str, where: str, value: float) -> str | None:
        if self.trial.should_prune():
            return f"pruned by the {kind} pruner {where} (val macro-F1 {value:.4f})"
        return None

    def _step(self, position: int, value: float, where: str) -> str | None:
        """Report `value` as the position's next evaluation; a reason to stop, or None (the
        median pruner waits for its own n_startup_trials complete trials)."""
        e = min(self.seen.get(position, 0), self.per_fold - 1)
        self.seen[position] = e + 1
        self.trial.report(value, position * self.per_fold + e)
        if position == self.last_position and e == self.per_fold - 1:
            return None  # the trial's last evaluation: it is complete
        return self._ask("median", where, value)

    def listen(self, position: int):
        """The listeners of the fold at `position` of tune.folds."""
        if self.config.tune.pruner != "median":
            return lambda fold: []

        def on_event(event: Event) -> str | None:
            if isinstance(event, Evaluation):
                return self._step(position, event.val_macro_f1, f"at step {event.step}")
            return None

        return lambda fold: [on_event]

    def fold_done(self, position: int, fold: int, score: float) -> str | None:
        """After a fold: its score for wilcoxon, or for a kind that evaluates only once."""
        pruner = self.config.tune.pruner
        if pruner == "median" and not self.seen.get(position):
            self.seen[position] = self.per_fold - 1  # its one score is the fold's last
            return self._step(position, score, f"after fold {fold}")
        if pruner != "wilcoxon":
            return None
        from optuna.trial import TrialState

        self.trial.report(score, fold)
        done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        # not after the trial's last fold (it is complete); wilcoxon has no startup key of its own
        if position < self.last_position and len(done) >= self.config.tune.pruner_startup_trials:
            return self._ask("wilcoxon", f"after fold {fold}", score)
        return None


def trial_config(plan: TunePlan, params: dict, experiment: str) -> Config:
    overrides = [override(key, value) for key, value in params.items()]
    return load_config([plan.config_path], [*overrides, f"train.experiment={experiment}"])


def _train(plan: TunePlan, study, trial, config: Config, device, console: Console) -> float:
    """Train the trial's folds in order, reporting as they go; their mean validation macro-F1."""
    reporter, scores = Reporter(study, trial, config), []
    for position, fold in enumerate(config.tune.folds):
        listen = reporter.listen(position)
        result = train_folds(config, [fold], device, False, console, listen=listen,
                             loaded=plan.loaded, table=False)[0]  # fmt: skip
        scores.append(result.macro_f1)
        reason = reporter.fold_done(position, fold, result.macro_f1)
        if reason:
            raise Pruned(reason)
    return sum(scores) / len(scores)


def run_trial(plan: TunePlan, study, trial, device: str | None, console: Console) -> str:
    """Run an asked trial to its end and tell the study; returns its state's name."""
    from optuna.trial import TrialState

    config = plan.config
    experiment = trial_experiment(config.tune.study, trial.number)
    with warnings.catch_warnings():  # an enqueued value outside a range is tried as it is
        warnings.simplefilter("ignore", UserWarning)
        params = {dim.key: dim.suggest(trial) for dim in plan.dimensions}
    try:
        value = _train(plan, study, trial, trial_config(plan, params, experiment), device, console)
    except (FoldStopped, Pruned) as stopped:
        end_trial(study, config, trial.number, TrialState.PRUNED, stopped.reason)
        return "PRUNED"
    except CompError as error:  # a diverging run, a setting the config refuses, ...
        end_trial(study, config, trial.number, TrialState.FAIL, str(error))
        return "FAIL"
    except (Interrupted, KeyboardInterrupt) as stop:
        end_trial(study, config, trial.number, TrialState.FAIL, f"interrupted: {stop}")
        signum = getattr(stop, "signum", signal.SIGINT)
        raise Interrupted(signum, f"trial {trial.number} was stopped and marked failed (a "
                          "trial does not resume); the same `comp tune` command goes on with "
                          "new trials") from None  # fmt: skip
    except Exception as error:
        end_trial(study, config, trial.number, TrialState.FAIL, f"unexpected error: {error!r}")
        raise
    if not math.isfinite(value):
        end_trial(study, config, trial.number, TrialState.FAIL, "its score is not finite")
        return "FAIL"
    end_trial(study, config, trial.number, TrialState.COMPLETE, "", value)
    return "COMPLETE"


# ---------------------------------------------------------------------------------------------
# Disk: model weights for the best `tune.keep` trials only


def _kind_of(folder: Path) -> str | None:
    try:
        saved = yaml.safe_load((folder / CONFIG).read_text(encoding="utf-8"))
        return saved["model"]["kind"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def drop_weights(config: Config, experiment: str) -> list[Path]:
    """Remove the model files (the kind's fold files: weights, checkpoints, a backbone folder)
    of every fold of `experiment`; logits, metrics and stopped.json stay."""
    removed = []
    for fold in range(config.folds.k):
        folder = fold_dir(config, fold, experiment)
        kind = _kind_of(folder)
        if kind is not None:
            removed += remove_paths([folder / name for name in get_kind(kind).FOLD_FILES])
    return removed


def keep_best_weights(study, config: Config) -> list[Path]:
    """With tune.keep N > 0: the weights of the best N complete trials stay; every other ended
    trial (complete, pruned or failed) loses its model files."""
    from optuna.trial import TrialState

    if config.tune.keep == 0:
        return []
    ended = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                     TrialState.FAIL))  # fmt: skip
    kept = {t.number for t in complete_best_first(study, config)[: config.tune.keep]}
    removed = []
    for trial in ended:
        if trial.number not in kept:
            removed += drop_weights(config, trial_experiment(config.tune.study, trial.number))
    return removed
