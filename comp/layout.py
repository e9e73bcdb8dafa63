"""Where every artifact after the folds lives, and what its files are called: the one owner of
run, fold, ensemble and submission paths.

    runs/<experiment>/fold<K>/     config.yaml, oof.parquet, test_logits.parquet, metrics.json
                                   (+ the model kind's own files; stopped.json instead of
                                   metrics.json for a fold stopped early)
    runs/<experiment>/cache/       what a kind caches across folds (token ids)
    runs/<experiment>/launch/      logs of `comp train --gpus`; with --executor slurm also
                                   job.json (the tasks submitted) and slurm/ (their logs)
    runs/ensembles/<name>/         config.yaml, oof.parquet, test_logits.parquet, metrics.json,
                                   per_class.csv, the report's PNGs
    runs/audit/<train file stem>/  `comp audit`: config.yaml, groups.csv, conflicts.csv,
                                   per_class.csv, summary.json, duplicates_per_class.png
    runs/tune/<study>/             `comp tune`: config.yaml (the base config and the space),
                                   journal.log (the Optuna study, unless tune.storage is an
                                   RDB URL), trials.csv, history.png, importances.png,
                                   best.yaml, workers/, trials/ (a lock per running trial),
                                   cache/; trial N's experiment is runs/<study>_t<NNN>/
    submissions/<name>_<set>.csv   and submissions/<name>.config.yaml
"""

from __future__ import annotations

from pathlib import Path

from comp.config import Config

CONFIG = "config.yaml"  # the resolved config, next to every artifact
METRICS = "metrics.json"  # written last: a fold or ensemble is finished when it exists
STOPPED = "stopped.json"  # a fold a listener stopped early (reason, step, last score)
OOF = "oof.parquet"
TEST_LOGITS = "test_logits.parquet"
PER_CLASS = "per_class.csv"
LEARNING_CURVES = "learning_curves.png"  # an ensemble's report: each fold's curves
ENSEMBLES = "ensembles"
CACHE = "cache"
LAUNCH = "launch"
AUDIT = "audit"
TUNE = "tune"
PRETRAIN = "pretrain"  # runs/pretrain/<folder name>/launch/: `comp pretrain --executor slurm`
RESERVED = (ENSEMBLES, AUDIT, TUNE, PRETRAIN)  # folders of runs/ that are not experiments
JOB_RECORD = "job.json"  # launch/job.json: the Slurm tasks submitted for that work
SLURM_LOGS = "slurm"  # launch/slurm/: submitit's files and the tasks' logs
JOURNAL = "journal.log"  # an Optuna journal file: the study, shared by its workers
TRIALS_CSV = "trials.csv"
CONFIRMED_CSV = "confirmed.csv"  # `comp tune --confirm`: the best trials on unseen folds
TUNE_HISTORY = "history.png"  # the objective against the trial
TUNE_IMPORTANCES = "importances.png"  # the parameters' importances
STUDY_LOCK = ".study.lock"  # held while the study is created, and while a trial is asked for
BEST_CONFIG = "best.yaml"  # the best trial's resolved config, as experiment <study>_best
WORKERS = "workers"  # the logs of `comp tune --workers N`
TRIAL_LOCKS = "trials"  # trials/<number>.lock, held while a trial runs
COMBINED = "combined"  # submissions/<name>_combined.csv: every test set's rows, in config order


def experiment_dir(config: Config, experiment: str | None = None) -> Path:
    return Path(config.train.runs_dir) / (experiment or config.train.experiment)


def fold_dir(config: Config, fold: int, experiment: str | None = None) -> Path:
    return experiment_dir(config, experiment) / f"fold{fold}"


def launch_dir(config: Config) -> Path:
    """Where `comp train --gpus` and the Slurm executor keep a run's logs and job records."""
    return experiment_dir(config) / LAUNCH


def pretrain_launch_dir(config: Config) -> Path:
    return Path(config.train.runs_dir) / PRETRAIN / Path(config.pretrain.out_dir).name / LAUNCH


def retrain_command(folder: Path) -> str:
    """The command that trains the fold in `folder` again as it was: its own resolved config (a
    probe or kNN experiment as such), and --force (a fold whose metrics read back is finished)."""
    fold = folder.name.removeprefix("fold")
    return f"comp train --fold {fold} --force --config {folder / CONFIG}"


def fold_log(launch: Path, fold: int) -> Path:
    """The log of fold `fold`'s process under `--gpus`, in the launch folder `launch`."""
    return launch / f"fold{fold}.log"


def ensemble_dir(config: Config, name: str | None = None) -> Path:
    return Path(config.train.runs_dir) / ENSEMBLES / (name or config.ensemble.name)


def tune_dir(config: Config) -> Path:
    return Path(config.train.runs_dir) / TUNE / config.tune.study


def trial_experiment(study: str, number: int) -> str:
    """The experiment of trial `number` of a study: <study>_t<NNN>."""
    return f"{study}_t{number:03d}"


def trial_config_path(config: Config, number: int) -> Path:
    """The resolved config trial `number` of tune.study trained with (its first fold's)."""
    experiment = trial_experiment(config.tune.study, number)
    return fold_dir(config, config.tune.folds[0], experiment) / CONFIG


def audit_dir(config: Config) -> Path:
    return Path(config.train.runs_dir) / AUDIT / Path(config.data.train).stem


def submission_name(config: Config) -> str:
    return config.submit.name or config.ensemble.name


def submission_path(config: Config, test_set: str) -> Path:
    return Path(config.submit.dir) / f"{submission_name(config)}_{test_set}.csv"


def submission_config_path(config: Config) -> Path:
    return Path(config.submit.dir) / f"{submission_name(config)}.config.yaml"
