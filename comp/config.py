"""Typed configuration: dataclass defaults, YAML files merged on top, `--set key=value` on top of
that. Unknown keys and values of the wrong type are errors that name the key.

This module holds the core sections (data, folds, model, train, ensemble, ...); a model kind owns
its own section (`Section`: its dataclass and checks live with the kind) and the loader is handed
them: `comp.kinds.load_config` hands over every registered kind's. The defaults are the seed
paper's recipe for AbjadMed (docs/recipes.md); `configs/*.yaml` restate or change them per
competition. docs/config.md is generated from the field comments here and in the kinds.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from comp.errors import CompError


class ConfigError(CompError):
    pass


@dataclass
class TestSet:
    name: str  # used in output names: test_logits.parquet rows, submissions/<exp>_<name>.csv
    path: str  # the test CSV: the id column and the text column


@dataclass
class ExtraTrain:
    path: str  # more labelled rows: the train file's columns (text and label, or category)
    category_map: str | None = None  # CSV (category, label columns) mapping the file's category
    # names to label ids; without it, a file without a label column is mapped through the train
    # file's own category names


@dataclass
class DataConfig:
    train: str = "data/abjadmed/shared_task_train.csv"  # the labelled training CSV
    test_sets: list[TestSet] = field(  # every file to predict; each gets its own submission
        default_factory=lambda: [
            TestSet("devtest", "data/abjadmed/shared_task_devtest_no_label.csv")
        ]
    )
    solution: str | None = None  # Kaggle-style answer key (Id, label, Usage); scoring only
    extra_train: list[ExtraTrain] = field(default_factory=list)  # added to every training split,
    # never validated; rows repeating a fold's validation rows or a test row are left out
    text_column: str = "text"  # question and answer, split at the markers below
    label_column: str = "label"  # integer class ids 0..num_labels-1
    category_column: str | None = "category"  # class names for reports; null if absent
    id_column: str = "Id"  # the test files' row id, copied into submissions
    prediction_column: str = "Predicted"  # the submission's class column
    question_marker: str = "السؤال"  # starts the question in `text` (a row without it is one text)
    answer_marker: str = "الجواب"  # starts the answer in `text`
    num_labels: int = 82  # classes; every model outputs this many logits


@dataclass
class DemoConfig:
    out_dir: str = "data/demo"  # where `comp demo-data` writes the synthetic competition
    scale: float = 1.0  # 1.0 = the real class profile (27,950 train rows)
    seed: int = 42  # the generator's seed: the same files every time
    min_class_rows: int = 10  # floor per class when scaled down: keeps every class in every fold


@dataclass
class FoldsConfig:
    name: str = "abjadmed"  # folds/<name>.csv and folds/<name>.json
    dir: str = "folds"  # the folder of the fold files
    k: int = 5  # number of folds
    seed: int = 42  # the stratifier's seed
    group_duplicates: bool = True  # every duplicate group (see `dedup`) inside one fold


@dataclass
class DedupConfig:
    """What counts as a duplicate, for `comp audit`, grouped folds and extra training data."""

    threshold: float = 0.8  # Jaccard similarity of normalised word sets: near duplicates
    min_question_words: int = 4  # shorter questions are compared only with their answers


# Keys added after folds were first trained with comp. A fold's fingerprint leaves one out while
# it holds its default (what every earlier fold was trained with, under any section prefix such
# as a kNN experiment's `base.`), so that adding a key does not retrain finished folds.
ADDED_KEY_DEFAULTS = {"model.pooling": "cls"}


@dataclass
class ModelConfig:
    kind: str = "transformer"  # a model kind of comp.kinds.KINDS: transformer | tfidf | knn | probe
    backbone: str = "UBC-NLP/ARBERTv2"  # hub id or local folder (from_pretrained format)
    max_len: int = 512  # tokens of [CLS] question [SEP] answer [SEP], at most the positions
    answer_min_tokens: int = 50  # head-tail truncation keeps at least this much answer
    dropout: float = 0.1  # before the head
    head: str = "linear"  # linear | cosine (cosine wants train.ldam_s around 30)
    pooling: str = "cls"  # cls | mean: the head reads the [CLS] vector or the real tokens' mean

    # Tokenizer flags applied on loading (null = the tokenizer's own setting). ARBERTv2 and
    # MARBERTv2 ship do_lower_case: true, which also strips accents: أ, إ, آ become ا.
    lowercase: bool | None = None
    strip_accents: bool | None = None  # (as lowercase: null keeps the tokenizer's own)


@dataclass
class PretrainConfig:
    """`comp pretrain`: continued masked-LM pretraining on the competition's own text. Device,
    precision, padding and the non-finite guard come from the `train` section."""

    backbone: str = ""  # where pretraining starts (hub id or folder); "" = model.backbone
    out_dir: str = ""  # the pretrained backbone's folder; model.backbone pointing here = use it
    include_test: bool = True  # the test sets' text too (unlabelled: no label is ever read)
    steps: int = 3000  # optimiser steps
    batch_size: int = 64  # rows a step
    lr: float = 5.0e-5  # AdamW's peak learning rate, one for every layer
    weight_decay: float = 0.01  # AdamW's (none on biases and LayerNorm)
    warmup_ratio: float = 0.06  # share of the steps warming up linearly; linear decay after
    max_grad_norm: float = 1.0  # gradient clipping
    mask_rate: float = 0.15  # share of tokens to predict: 80 % [MASK], 10 % random, 10 % kept
    whole_word: bool = True  # mask every piece of a word together (WordPiece `##` pieces)
    seed: int = 42  # masks, data order, dropout and the new MLM head's initialisation
    checkpoint_every: int = 500  # steps between checkpoints in <out_dir>.work/ (resume)


@dataclass
class TrainConfig:
    experiment: str = "arbertv2_ldam_fgm"  # runs/<experiment>/fold<K>/
    runs_dir: str = "runs"  # every experiment, ensemble, audit and study lives under it
    seed: int = 42  # weights of the head, dropout, data order
    device: str = "auto"  # auto = cuda if available, else cpu
    compile: bool = False  # torch.compile the training passes (dynamic shapes; slow to compile;
    # tried in single processes only, not under torchrun)
    pad_multiple: int = 32  # training batches padded to a multiple of this: few shapes for a GPU
    steps: int = 8000  # the paper: 8,000 steps, about 20 epochs at batch 64
    batch_size: int = 64  # effective batch (micro-batch x grad_accum)
    grad_accum: int = 1  # raise on a small GPU: micro-batch = batch_size / grad_accum
    eval_batch_size: int = 128  # rows a batch when scoring validation and test rows
    lr: float = 5.0e-5  # the head's lr; the paper does not state it
    llrd_decay: float = 0.9  # layer l gets lr * decay^(L - l)
    weight_decay: float = 0.01  # AdamW's (none on biases and LayerNorm)
    warmup_ratio: float = 0.1  # share of the steps warming up linearly; linear decay after
    max_grad_norm: float = 1.0  # gradient clipping, after FGM's weights are restored
    loss: str = "ldam_drw"  # ldam_drw | ce
    drw_start_epoch: int = 5  # plain CE before this epoch, LDAM + DRW weights after
    ldam_c: float = 1.0  # margin = C / n^(1/4)
    ldam_max_m: float | None = None  # Cao et al. scaling: the rarest class gets max_m (0.5)
    ldam_s: float = 1.0  # logit scale; 30 only with the cosine head
    drw_beta: float = 0.9999  # DRW weights (1 - beta) / (1 - beta^n), summing to the classes
    boost_classes: list[int] = field(default_factory=list)  # margin from n/boost_factor
    boost_factor: float = 10.0  # boost_classes' margins use n / boost_factor
    fgm: bool = True  # adversarial training on the word embeddings (FGM)
    fgm_eps: float = 0.2  # FGM's step: eps * g / ||g||
    precision: str = "bf16"  # bf16 | fp32: autocast on CUDA (the head stays fp32); CPUs use fp32
    step: str = "sync_free"  # sync_free | eager (the step before, kept for A/B checks)
    cuda_graphs: str = "false"  # auto | true | false: the sync-free step as CUDA graphs; off until
    # measured on a GPU (BENCHMARKS.md)
    attention: str = "efficient"  # efficient | flash | cudnn | math | default: SDPA kernels on CUDA
    log_every: int = 10  # steps between host reads of the loss (progress, divergence check)
    tensorboard: bool = False  # write the training events as TensorBoard files into each fold
    max_nonfinite_steps: int = 5  # steps in a row with a NaN/inf loss or gradient: the fold stops
    eval_every: int = 500  # steps between validations (the best one's weights are kept)
    checkpoint_every: int = 500  # steps between checkpoints (resume after a kill)


@dataclass
class EnsembleConfig:
    name: str = "ensemble"  # runs/ensembles/<name>/
    experiments: list[str] = field(default_factory=list)  # default: [train.experiment]
    weights: list[float] = field(default_factory=list)  # one per experiment; empty = equal
    average: str = "logits"  # logits | probs (mean of softmax probabilities, as log-probs)
    calibrate: bool = True  # divide each experiment's logits by its log-loss temperature first
    optimize_weights: bool = False  # fit non-negative weights on OOF macro-F1
    logit_adjustment: bool = True  # z - tau * log(prior), tau cross-fitted on OOF
    tau_max: float = 2.0  # tau searched on a grid 0..tau_max
    tau_step: float = 0.05  # the grid's step
    class_bias: bool = False  # per-class biases on top, cross-fitted and shrunk (overfits easily)
    bias_shrinkage: float = 0.5  # biases are multiplied by this before use


@dataclass
class TuneConfig:
    """`comp tune`: an Optuna study over the fold frame; a trial is the experiment
    <study>_t<NNN>, trained on `folds` with the settings it samples from `space`."""

    study: str = "study"  # runs/tune/<study>/ holds its journal, config, logs and results
    storage: str = ""  # "" = a journal file in runs/tune/<study>/; or any Optuna RDB URL
    trials: int = 20  # the study's total of ended trials (complete, pruned, failed), all workers
    folds: list[int] = field(default_factory=lambda: [0])  # the folds a trial trains; the
    # others stay unseen by the search (`comp tune --confirm` scores the best trials there)
    pruner: str = "median"  # median | wilcoxon | none
    pruner_startup_trials: int = 3  # complete trials before any trial can be pruned
    pruner_warmup_evals: int = 1  # evaluations of a trial before it can be pruned
    direction: str = "maximize"  # maximize | minimize the mean validation macro-F1
    sampler_seed: int = 42  # the TPE sampler's seed
    startup_trials: int = 10  # trials drawn at random before TPE models the space (Optuna's
    # default); fewer suit a small study
    keep: int = 3  # model weights are kept for the best `keep` trials only (0: all)
    space: dict[str, Any] = field(default_factory=dict)  # dotted config key -> {low, high,
    # log?, step?} (a range) or a list of values (categorical); set in a YAML layer


@dataclass
class SlurmConfig:
    """`--executor slurm`: how each task (a fold, a tuning worker, pretraining) is asked for."""

    partition: str = ""  # "" = the cluster's default partition
    account: str = ""  # the account jobs are charged to; "" = yours by default
    gpus_per_task: int = 1  # 0 on a CPU partition
    cpus_per_task: int = 4  # also the task's torch threads
    mem_gb: int = 32  # memory a task asks for
    time_min: int = 120  # the time limit; past it the task is requeued and resumes
    array_parallelism: int = 8  # tasks of one array running at once, at most
    qos: str = ""  # a quality of service, where the cluster has them
    constraint: str = ""  # e.g. a GPU type: a100
    sbatch_extra: list[str] = field(default_factory=list)  # more `--key=value` flags for sbatch
    setup: list[str] = field(default_factory=list)  # shell lines run first in a task, e.g.
    # `module load cuda` or `source .venv/bin/activate`
    max_requeues: int = 3  # time limits a task may hit (each time it is requeued and resumes)


@dataclass
class LaunchConfig:
    """How `comp train --fold all`, `comp tune --workers N` and `comp pretrain` spread work."""

    executor: str = "local"  # local (this machine; --gpus) | slurm (a job array; --executor)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)


@dataclass
class SubmitConfig:
    dir: str = "submissions"  # where `comp submit` writes
    name: str = ""  # submissions/<name>_<test set>.csv; default: the ensemble's name
    combined: bool = False  # also one file holding every test set's rows


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    folds: FoldsConfig = field(default_factory=FoldsConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    submit: SubmitConfig = field(default_factory=SubmitConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)

    SECTIONS: ClassVar[tuple[Section, ...]] = ()  # the kinds' own sections this class holds


@dataclass(frozen=True)
class Section:
    """A config section that a model kind owns: `name:` in YAML, built as the dataclass `type`,
    checked by `checks(config)` (a list of (ok, message) pairs)."""

    name: str
    type: type
    checks: Callable[[Any], list[tuple[bool, str]]] = lambda config: []


@functools.cache
def config_class(sections: tuple[Section, ...] = ()) -> type[Config]:
    """`Config` with the given kinds' sections as fields of their own (after the core ones)."""
    if not sections:
        return Config
    names = [s.name for s in sections]
    taken = sorted(set(names) & {f.name for f in dataclasses.fields(Config)})
    if taken or len(set(names)) != len(names):
        raise ConfigError(f"config sections {taken or names}: each name may be used only once")
    fields = [(s.name, s.type, field(default_factory=s.type)) for s in sections]
    cls = dataclasses.make_dataclass("Config", fields, bases=(Config,))
    cls.__module__, cls.SECTIONS = __name__, sections
    return cls


# ---------------------------------------------------------------------------------------------
# Building typed dataclasses from plain dicts


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except ConfigError:
                pass
        raise ConfigError(f"config key '{key}': expected {_type_name(tp)}, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        (item_type,) = typing.get_args(tp)
        return [_convert(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"config key '{key}': expected a mapping, got {value!r}")
        _, value_type = typing.get_args(tp)
        if value_type is Any:
            return dict(value)
        return {k: _convert(v, value_type, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads 1e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool) and type(value) is tp:
        return value
    raise ConfigError(
        f"config key '{key}': expected {tp.__name__}, got {type(value).__name__} {value!r}"
    )


def _build(cls: type, values: Any, prefix: str) -> Any:
    if not isinstance(values, dict):
        where = f"config key '{prefix}'" if prefix else "config"
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"unknown config key '{key}' (known: {', '.join(sorted(names))})")
    kwargs = {
        name: _convert(value, hints[name], f"{prefix}.{name}" if prefix else name)
        for name, value in values.items()
    }
    return cls(**kwargs)


def _field_type(path: list[str], cls: type = Config) -> Any:
    """The declared type of a dotted key, or a ConfigError naming the unknown part."""
    tp: Any = cls
    for depth, name in enumerate(path):
        if not dataclasses.is_dataclass(tp):
            break
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        if name not in names:
            key = ".".join(path[: depth + 1])
            raise ConfigError(f"unknown config key '{key}' (known: {', '.join(sorted(names))})")
        tp = hints[name]
    return tp


def field_type(key: str, cls: type = Config) -> Any:
    """The declared type of the dotted config key `key` in `cls`; ConfigError if unknown."""
    return _field_type(key.split("."), cls)


def short_keys(keys: typing.Iterable[str]) -> dict[str, str]:
    """Each dotted key's last part (`lr` for train.lr), or the whole key where two would clash:
    column names for tables that must fit a log's width."""
    keys = list(keys)
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {
        key: name if last.count(name) == 1 else key for key, name in zip(keys, last, strict=True)
    }


def _merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_override(override: str, cls: type = Config) -> tuple[list[str], Any]:
    """`section.key=value` -> (['section', 'key'], typed value). Values are YAML, except for
    string fields, which take the text as written (so `--set folds.name=2024` stays a string)."""
    key, sep, raw = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {override!r}: expected section.key=value")
    path = key.split(".")
    tp = _field_type(path, cls)
    if tp is str:
        return path, raw
    try:
        return path, yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot parse value {raw!r}: {exc}") from None


def _nest(path: list[str], value: Any) -> dict:
    for name in reversed(path):
        value = {name: value}
    return value


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return loaded


def load_config(
    paths: typing.Sequence[str | Path] = (),
    overrides: typing.Sequence[str] = (),
    sections: tuple[Section, ...] = (),
) -> Config:
    """Defaults, then each YAML file in order, then each `key=value` override; the core
    sections and the given kinds' `sections` (see `comp.kinds.load_config`)."""
    cls = config_class(tuple(sections))
    raw: dict = {}
    for path in paths:
        try:
            layer = read_yaml(path)
            _build(cls, _merge(raw, layer), "")  # name the file that brought a bad key
        except ConfigError as exc:
            message = str(exc)
            raise ConfigError(
                message if message.startswith(str(path)) else f"{path}: {message}"
            ) from None
        raw = _merge(raw, layer)
    for override in overrides:
        path, value = parse_override(override, cls)
        raw = _merge(raw, _nest(path, value))
    config = _build(cls, raw, "")
    validate(config)
    return config


def validate(config: Config) -> None:
    """Checks of values that a type alone cannot express: the core's and each kind section's."""
    checks = [
        (config.data.num_labels >= 2, "data.num_labels must be at least 2"),
        (config.folds.k >= 2, "folds.k must be at least 2"),
        (0 < config.dedup.threshold <= 1, "dedup.threshold must be in (0, 1]"),
        (config.dedup.min_question_words >= 1, "dedup.min_question_words must be at least 1"),
        (0 < config.demo.scale <= 1, "demo.scale must be in (0, 1]"),
        (
            len({t.name for t in config.data.test_sets}) == len(config.data.test_sets),
            "data.test_sets: names must be unique",
        ),
        (config.model.head in ("linear", "cosine"), "model.head must be linear or cosine"),
        (config.model.pooling in ("cls", "mean"), "model.pooling must be cls or mean"),
        (config.train.loss in ("ldam_drw", "ce"), "train.loss must be ldam_drw or ce"),
        (
            config.train.batch_size % config.train.grad_accum == 0,
            "train.batch_size must be a multiple of train.grad_accum",
        ),
        (config.train.steps >= 1, "train.steps must be at least 1"),
        (config.train.precision in ("bf16", "fp32"), "train.precision must be bf16 or fp32"),
        (config.train.step in ("sync_free", "eager"), "train.step must be sync_free or eager"),
        (
            config.train.cuda_graphs in ("auto", "true", "false"),
            "train.cuda_graphs must be auto, true or false",
        ),
        (
            config.train.attention in ("efficient", "flash", "cudnn", "math", "default"),
            "train.attention must be efficient, flash, cudnn, math or default",
        ),
        (config.train.log_every >= 1, "train.log_every must be at least 1"),
        (config.train.max_nonfinite_steps >= 1, "train.max_nonfinite_steps must be at least 1"),
        (
            config.train.eval_every >= 1 and config.train.checkpoint_every >= 1,
            "train.eval_every and train.checkpoint_every must be at least 1",
        ),
        (config.train.pad_multiple >= 1, "train.pad_multiple must be at least 1"),
        *_pretrain_checks(config),
        *_tune_checks(config),
        *_launch_checks(config),
        (config.ensemble.average in ("logits", "probs"), "ensemble.average: logits or probs"),
        (config.ensemble.tau_step > 0, "ensemble.tau_step must be positive"),
        (all(w >= 0 for w in config.ensemble.weights), "ensemble.weights must be non-negative"),
        (
            all(0 <= c < config.data.num_labels for c in config.train.boost_classes),
            "train.boost_classes: every id must be in 0..data.num_labels-1",
        ),
    ]
    for section in type(config).SECTIONS:
        checks += section.checks(config)
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def _pretrain_checks(config: Config) -> list[tuple[bool, str]]:
    p = config.pretrain
    circular = p.out_dir and not p.backbone and config.model.backbone == p.out_dir
    return [
        (p.steps >= 1 and p.batch_size >= 1, "pretrain.steps and pretrain.batch_size: at least 1"),
        (0 < p.mask_rate < 1, "pretrain.mask_rate must be in (0, 1)"),
        (p.lr > 0, "pretrain.lr must be positive"),
        (0 <= p.warmup_ratio <= 1, "pretrain.warmup_ratio must be in [0, 1]"),
        (p.checkpoint_every >= 1, "pretrain.checkpoint_every must be at least 1"),
        (
            not circular,
            "model.backbone is pretrain.out_dir, so pretraining needs pretrain.backbone: the "
            "backbone to start from",
        ),
        (
            not p.out_dir or p.backbone != p.out_dir,
            "pretrain.backbone and pretrain.out_dir must differ",
        ),
    ]


def _tune_checks(config: Config) -> list[tuple[bool, str]]:
    t, k = config.tune, config.folds.k
    return [
        (t.trials >= 1, "tune.trials must be at least 1"),
        (bool(t.folds) and all(0 <= f < k for f in t.folds), f"tune.folds: folds in 0..{k - 1}"),
        (len(set(t.folds)) == len(t.folds), "tune.folds: each fold once"),
        (t.pruner in ("median", "wilcoxon", "none"), "tune.pruner: median, wilcoxon or none"),
        (t.direction in ("maximize", "minimize"), "tune.direction: maximize or minimize"),
        (t.keep >= 0, "tune.keep must be at least 0"),
        (t.startup_trials >= 1, "tune.startup_trials must be at least 1"),
        (t.pruner_startup_trials >= 0 and t.pruner_warmup_evals >= 0,
         "tune.pruner_startup_trials and pruner_warmup_evals: at least 0"),
        ("/" not in t.study and t.study not in ("", ".", ".."), "tune.study: a folder name"),
    ]  # fmt: skip


def _launch_checks(config: Config) -> list[tuple[bool, str]]:
    s = config.launch.slurm
    return [
        (config.launch.executor in ("local", "slurm"), "launch.executor: local or slurm"),
        (s.gpus_per_task >= 0 and s.cpus_per_task >= 1, "launch.slurm: gpus >= 0, cpus >= 1"),
        (s.mem_gb >= 1 and s.time_min >= 1, "launch.slurm.mem_gb and time_min: at least 1"),
        (s.array_parallelism >= 1 and s.max_requeues >= 0, "launch.slurm.array_parallelism >= 1"),
        (all(f.startswith("--") and "=" in f for f in s.sbatch_extra),
         "launch.slurm.sbatch_extra: flags like --key=value"),
    ]  # fmt: skip


def config_to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), allow_unicode=True, sort_keys=False)


def write_config(config: Config, path: Path) -> None:
    """Write the resolved config (used as one of the writers of an atomic multi-file write)."""
    path.write_text(dump_config(config), encoding="utf-8")
