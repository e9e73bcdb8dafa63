"""The `comp` command line: thin click commands over library functions.

Heavy imports (polars, numpy, torch, transformers) happen inside the commands, so `comp --help`
stays fast. Exit codes (docs/reliability.md): 0 success; 1 an unexpected error (a bug: the
traceback); 2 bad input, a stale or busy artifact, a failed fold (one line on stderr, nothing
half-written); 3 `comp submit --check` found problems in the file.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from comp.errors import EXIT_INVALID_SUBMISSION, CompError

DEFAULT_CONFIG = "configs/demo.yaml"


def _console(stderr: bool = False):
    from comp.progress import make_console

    return make_console(stderr)


class CompGroup(click.Group):
    """Turns a CompError into one line on stderr and exit code 2, and Ctrl-C or SIGTERM into one
    line saying what was kept and exit code 130 or 143 (comp.interrupt)."""

    def invoke(self, ctx: click.Context):
        from comp.failures import describe_failure
        from comp.interrupt import stop_signals, stop_signals_here

        try:
            with stop_signals(stop_signals_here()):
                return super().invoke(ctx)
        except BaseException as exc:  # noqa: BLE001 - re-raised unless it has one line
            failure = describe_failure(exc)
            if failure is None:
                raise
            colour = "red" if failure.label == "error" else "yellow"
            _console(stderr=True).print(
                f"[bold {colour}]{failure.label}:[/] {failure.message}", soft_wrap=True
            )
            sys.exit(failure.exit_code)


def _gpu_ids(gpus: str | None) -> list[str]:
    return [g.strip() for g in (gpus or "").split(",") if g.strip()]


def executor_options(command):
    """--executor local|slurm (sets launch.executor) and --detach (Slurm: return at once)."""

    @click.option(
        "--executor",
        type=click.Choice(["local", "slurm"]),
        help="local (this machine) or slurm (a job array); sets launch.executor.",
    )
    @click.option("--detach", is_flag=True, help="Slurm: submit and return; follow: comp jobs.")
    @functools.wraps(command)
    def wrapper(*args, config, executor, detach, **kwargs):
        if executor:
            config.launch.executor = executor
        if detach and config.launch.executor != "slurm":
            raise CompError("--detach goes with --executor slurm")
        return command(*args, config=config, detach=detach, **kwargs)

    return wrapper


def config_options(command):
    """--config (repeatable, merged in order) and --set key=value (repeatable)."""

    @click.option(
        "--config",
        "config_paths",
        multiple=True,
        type=click.Path(dir_okay=False),
        help=f"YAML config; repeat to layer fragments. Default: $COMP_CONFIG or {DEFAULT_CONFIG}.",
    )
    @click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override one config key, e.g. --set folds.k=10 (repeatable).",
    )
    @functools.wraps(command)
    def wrapper(*args, config_paths, overrides, **kwargs):
        from comp.kinds import check_kind, load_config

        paths = list(config_paths) or [os.environ.get("COMP_CONFIG", DEFAULT_CONFIG)]
        config = load_config(paths, overrides)
        check_kind(config.model.kind)
        return command(*args, config=config, **kwargs)

    return wrapper


@click.group(cls=CompGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="comp")
def main() -> None:
    """comp: folds, training, ensembles and submissions for text-classification competitions."""


@main.command("demo-data")
@config_options
@click.option("--scale", type=float, help="Shrink every class (0 < s <= 1); sets demo.scale.")
@click.option("--seed", type=int, help="Random seed of the generator; sets demo.seed.")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Output folder; sets demo.out_dir."
)
def demo_data(config, scale: float | None, seed: int | None, out_dir: str | None) -> None:
    """Write the built-in synthetic demo competition (AbjadMed format)."""
    from comp.config import validate
    from comp.demo.writer import write_demo_files

    if scale is not None:
        config.demo.scale = scale
    if seed is not None:
        config.demo.seed = seed
    if out_dir is not None:
        config.demo.out_dir = out_dir
    validate(config)
    write_demo_files(config, _console())


@main.command("make-folds")
@config_options
def make_folds(config) -> None:
    """Stratified K folds that keep every class represented (folds/<name>.csv + .json)."""
    from comp.data import load_train
    from comp.folds import folds_paths, make_folds, print_fold_summary

    console = _console()
    train = load_train(config.data)
    report = make_folds(config, train)
    print_fold_summary(report, train.label_names, console)
    csv_path, json_path, config_path = folds_paths(config)
    console.print(f"wrote {csv_path}, {json_path}, {config_path}")


@main.command("audit")
@config_options
def audit(config) -> None:
    """Duplicates and label conflicts in the train, test and extra files: a report in
    runs/audit/<train file stem>/ (exit 0 whatever it finds)."""
    from comp.audit import audit_data, print_audit

    console = _console()
    print_audit(audit_data(config, console), console)


@main.group("backbone")
def backbone() -> None:
    """Backbones: build the tiny local one used by the demo and the tests; check a tokenizer."""


@backbone.command("tiny")
@config_options
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--vocab-size", default=8000, show_default=True, help="WordPiece vocabulary size.")
@click.option("--hidden", default=128, show_default=True, help="Hidden size (at most 256).")
@click.option("--layers", default=2, show_default=True, help="Transformer layers.")
@click.option("--heads", default=2, show_default=True, help="Attention heads.")
def backbone_tiny(
    config, out_dir: str, vocab_size: int, hidden: int, layers: int, heads: int
) -> None:
    """Train a WordPiece tokenizer on the training text and save a small random BERT."""
    from comp.data import load_train
    from comp.neural.backbone import build_tiny_backbone, training_texts

    if hidden > 256:
        raise click.BadParameter("at most 256 for a tiny backbone", param_hint="--hidden")
    train = load_train(config.data)
    texts = training_texts(train)
    path = build_tiny_backbone(
        texts,
        out_dir,
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        max_len=config.model.max_len,
        seed=config.train.seed,
    )
    _console().print(
        f"wrote tiny backbone to {path} (hidden {hidden}, {layers} layers, "
        f"vocab trained on {len(texts):,} rows)"
    )


@main.command("pretrain")
@config_options
@click.option("--device", help="cpu, cuda or cuda:N; default train.device (auto).")
@click.option("--force", is_flag=True, help="Pretrain again even if the folder is up to date.")
@executor_options
def pretrain(config, device: str | None, force: bool, detach: bool) -> None:
    """Continue masked-LM pretraining of the backbone on the competition's own text (train and
    test rows, no labels) into pretrain.out_dir; point model.backbone there to use it."""
    from comp.pretrain.run import pretrain as run_pretraining
    from comp.runs.launch import pretrain_on_slurm

    if config.launch.executor == "slurm":
        if force:
            raise CompError("--force goes with --executor local: remove pretrain.out_dir instead")
        pretrain_on_slurm(config, device, detach, _console())
    else:
        run_pretraining(config, device, force, _console())


@backbone.command("check")
@config_options
@click.option("--rows", default=2000, show_default=True, help="Train rows to tokenize.")
def backbone_check(config, rows: int) -> None:
    """Tokenize train rows with model.backbone's tokenizer and comp's flags (model.lowercase,
    model.strip_accents): Arabic letter forms kept and the [UNK] share; exit 2 if any is lost."""
    from comp.neural.tokenizer_check import check_command

    check_command(config, rows, _console())


@main.command("train")
@config_options
@click.option(
    "--fold",
    "fold_spec",
    default="all",
    show_default=True,
    help="Fold to train: a number, several (0,2) or all.",
)
@click.option("--device", help="cpu, cuda or cuda:N; default train.device (auto).")
@click.option("--force", is_flag=True, help="Retrain folds that already finished.")
@click.option("--gpus", help="Folds in parallel, one process per GPU id, e.g. --gpus 0,1,2,3.")
@executor_options
def train(
    config, fold_spec: str, device: str | None, force: bool, gpus: str | None, detach: bool
) -> None:
    """Train one model per fold; writes runs/<experiment>/fold<K>/.

    One fold on several GPUs: torchrun --nproc_per_node N -m comp.cli train --fold K."""
    from comp.runs.frame import parse_folds
    from comp.runs.launch import launch_train

    folds = parse_folds(fold_spec, config.folds.k)
    launch_train(config, folds, device, force, _gpu_ids(gpus), detach, _console())


@main.command("tune")
@config_options
@click.option("--workers", default=1, show_default=True, help="Worker processes on this machine.")
@click.option("--gpus", help="GPU ids for the workers, one each, e.g. --gpus 0,1 (0,0: two on 0).")
@click.option("--device", help="cpu, cuda or cuda:N for the trials; default train.device.")
@click.option("--show", is_flag=True, help="Only print and write the study's results.")
@click.option(
    "--confirm", type=int, help="Train the best K trials and the base on the unseen folds."
)
@click.option("--worker", is_flag=True, hidden=True, help="Run as one of --workers N.")
@executor_options
def tune(
    config,
    workers: int,
    gpus: str | None,
    device: str | None,
    show: bool,
    confirm: int | None,
    worker: bool,
    detach: bool,
) -> None:
    """Search the settings of tune.space with Optuna: each trial an experiment <study>_t<NNN>
    on tune.folds, pruned early when it lags; results in runs/tune/<study>/."""
    from comp import tune as tuning

    console = _console()
    if worker:
        tuning.worker_command(config, device, console)
    elif show:
        tuning.show_command(config, console)
    elif confirm is not None:
        from comp.tune.confirm import confirm_command

        confirm_command(config, confirm, device, console)
    else:
        tuning.tune_command(config, workers, _gpu_ids(gpus), device, detach, console)


@main.command("jobs")
@config_options
def jobs(config) -> None:
    """The Slurm tasks comp submitted under train.runs_dir, and their state now."""
    from comp.runs.jobs import jobs_command

    jobs_command(config, _console())


@main.command("predict")
@config_options
@click.option(
    "--test-set",
    "set_names",
    multiple=True,
    help="Test set name from data.test_sets (repeatable); default: every set a fold lacks.",
)
@click.option("--device", help="cpu, cuda or cuda:N; default train.device (auto).")
@click.option("--force", is_flag=True, help="Predict every configured set again.")
def predict(config, set_names: tuple[str, ...], device: str | None, force: bool) -> None:
    """Run each fold's best model on test sets that arrived after training."""
    from comp.runs.predict import predict_folds

    predict_folds(config, list(set_names), device, force, _console())


@main.command("ensemble")
@config_options
@click.argument("experiments", nargs=-1)
@click.option("--name", help="Ensemble name (runs/ensembles/<name>/); sets ensemble.name.")
@click.option(
    "--optimize-weights",
    is_flag=True,
    default=None,
    help="Fit non-negative experiment weights on OOF macro-F1.",
)
def ensemble(
    config, experiments: tuple[str, ...], name: str | None, optimize_weights: bool | None
) -> None:
    """Average fold logits: OOF score, cross-fitted logit adjustment, test logits."""
    from comp.ensemble import print_ensemble, run_ensemble

    if name:
        config.ensemble.name = name
    print_ensemble(run_ensemble(config, list(experiments), optimize_weights), _console())


@main.command("report")
@config_options
@click.option("--name", help="Ensemble name; default ensemble.name.")
def report(config, name: str | None) -> None:
    """PNG figures of an ensemble: per-class F1 vs count, confusions, per-fold scores."""
    from comp.folds import label_names
    from comp.layout import METRICS, ensemble_dir
    from comp.report import write_report

    if name:
        config.ensemble.name = name
    folder = ensemble_dir(config)
    if not (folder / METRICS).is_file():
        raise CompError(f"{folder}: no ensemble found; run `comp ensemble` first")
    for path in write_report(config, label_names(config)):
        _console().print(f"wrote {path}")


@main.command("submit")
@config_options
@click.option(
    "--combined",
    is_flag=True,
    default=None,
    help="Also write one file holding every test set's rows.",
)
@click.option(
    "--check",
    "check_file",
    type=click.Path(dir_okay=False),
    help="Only validate this CSV against its test file; exit 0 only if valid.",
)
@click.option("--test-set", help="With --check: the test set to check against.")
def submit(config, combined: bool | None, check_file: str | None, test_set: str | None) -> None:
    """Write leaderboard-ready CSVs from the ensemble, validated first (or --check one)."""
    from comp.submit import check_command, make_submissions

    console = _console()
    if check_file:
        if not check_command(check_file, config, console, test_set):
            sys.exit(EXIT_INVALID_SUBMISSION)
        return
    make_submissions(config, console, combined)


@main.command("score")
@config_options
@click.argument("submission", type=click.Path(dir_okay=False))
@click.option("--solution", help="Answer key CSV (Id, label, Usage); default data.solution.")
def score(config, submission: str, solution: str | None) -> None:
    """Local leaderboard: macro-F1 of a submission, Public and Private rows separately."""
    from comp.submit import print_scores, score_submission

    solution = solution or config.data.solution
    if not solution:
        raise CompError("no answer key: pass --solution FILE or set data.solution")
    scores = score_submission(submission, solution, config.data, config.data.num_labels)
    print_scores(scores, _console())


@main.command("confusions")
@config_options
@click.argument("ensemble_name", required=False)
@click.option(
    "--threshold",
    default=0.1,
    show_default=True,
    help="Keep class pairs whose larger directed confusion rate reaches this.",
)
@click.option(
    "--min-rows",
    default=5,
    show_default=True,
    help="...and that share at least this many confused OOF rows.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Config fragment to write; default runs/ensembles/<name>/boost_classes.yaml.",
)
def confusions(
    config, ensemble_name: str | None, threshold: float, min_rows: int, out: str | None
) -> None:
    """Find confusable class groups in an ensemble's OOF predictions and write a config fragment
    (train.boost_classes) for margin boosting: comp train --config base.yaml --config FRAGMENT."""
    from comp.confusions import confusions_command

    confusions_command(
        config, ensemble_name, threshold, min_rows, Path(out) if out else None, _console()
    )


@main.command("runs")
@config_options
@click.option(
    "--sort",
    default="adjusted",
    show_default=True,
    help="adjusted, raw, tail, tail_adjusted (best first), spread, wall or name.",
)
@click.option(
    "--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write the table as CSV."
)
@click.option(
    "--tail-rows",
    type=int,
    help="Tail classes: fewer training rows than this. Default: a fifth of the largest class.",
)
def runs(config, sort: str, csv_path: str | None, tail_rows: int | None) -> None:
    """Local leaderboard of every experiment and ensemble in train.runs_dir: OOF macro-F1 raw
    and logit-adjusted, tail-class macro-F1, per-fold spread, wall time, differing keys."""
    from comp.leaderboard import runs_command

    runs_command(config, sort, Path(csv_path) if csv_path else None, tail_rows, _console())


@main.command("show-config")
@config_options
@click.option("--make", "as_make", is_flag=True, help="As Makefile variables (used by make).")
@click.option(
    "--docs", "as_docs", is_flag=True, help="The config reference, docs/config.md, from the code."
)
def show_config(config, as_make: bool, as_docs: bool) -> None:
    """Print the resolved config (defaults, files and --set overrides merged)."""
    from comp.config import dump_config
    from comp.makefile import make_variables

    if as_docs:
        from comp.config_reference import config_reference
        from comp.kinds import default_config

        click.echo(config_reference(default_config()), nl=False)
    elif as_make:
        for key, value in make_variables(config).items():
            click.echo(f"{key} := {value}")
    else:
        click.echo(dump_config(config), nl=False)


@main.command("summary")
@config_options
def summary(config) -> None:
    """OOF macro-F1, local scores of the submission (if an answer key is set) and its path."""
    from comp.makefile import print_summary

    print_summary(config, _console())


if __name__ == "__main__":  # pragma: no cover
    main()
