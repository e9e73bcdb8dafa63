"""The search space of `comp tune` (`tune.space`): dotted config keys, each a range
(`{low, high, log?, step?}`, int or float as the key is declared) or a list of values (categorical).
Every key and every value is checked against the config before anything runs, so a typo or a value
the config refuses is one error naming the key."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comp.config import Config, ConfigError, field_type
from comp.kinds import load_config

# What a trial must not change: the data and folds every trial and the confirmation share, where
# the runs go, and the study's own settings.
FIXED_SECTIONS = ("data", "demo", "folds", "dedup", "tune", "ensemble", "submit")
FIXED_KEYS = ("train.experiment", "train.runs_dir", "train.device")
RANGE_KEYS = {"low", "high", "log", "step"}


@dataclass(frozen=True)
class Dimension:
    key: str
    type: type  # float, int, or object for a categorical
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        """This dimension's value for an Optuna trial (or the value enqueued for it)."""
        if self.choices:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type is int:
            step = int(self.step or 1)
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=step,
                                     log=self.log)  # fmt: skip
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def holds(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        return self.low <= value <= self.high

    def samples(self) -> list:
        """The values checked against the config before the study starts."""
        return list(self.choices) if self.choices else [self.type(self.low), self.type(self.high)]


def override(key: str, value: Any) -> str:
    """`key=value` as `--set` reads it back to the same value."""
    return f"{key}={value if isinstance(value, str) else json.dumps(value)}"


def _check_key(key: str, config: Config) -> type:
    if key.split(".")[0] in FIXED_SECTIONS or key in FIXED_KEYS:
        raise ConfigError(
            f"tune.space: '{key}' cannot be searched (every trial shares the data, folds and "
            "runs folder; the study's own keys are fixed)"
        )
    try:
        return field_type(key, type(config))
    except ConfigError as error:
        raise ConfigError(f"tune.space: {error}") from None


def _dimension(key: str, spec: Any, declared: type) -> Dimension:
    if isinstance(spec, list):
        if len(spec) < 2:
            raise ConfigError(f"tune.space.{key}: a categorical needs at least two values")
        return Dimension(key, object, choices=tuple(spec))
    if not isinstance(spec, dict) or not {"low", "high"} <= set(spec) <= RANGE_KEYS:
        raise ConfigError(
            f"tune.space.{key}: expected {{low, high, log?, step?}} or a list of values, got "
            f"{spec!r}"
        )
    if declared not in (int, float):
        raise ConfigError(f"tune.space.{key}: a range needs a number key, this one is {declared}")
    try:
        low, high = float(spec["low"]), float(spec["high"])
        step = None if spec.get("step") is None else float(spec["step"])
    except (TypeError, ValueError):
        raise ConfigError(f"tune.space.{key}: low, high and step must be numbers") from None
    log = spec.get("log", False)
    if not isinstance(log, bool) or not low < high or (log and low <= 0) or (log and step):
        raise ConfigError(
            f"tune.space.{key}: needs low < high (and low > 0 with log: true; no step with log)"
        )
    if declared is int and (low != int(low) or high != int(high)):
        raise ConfigError(f"tune.space.{key}: an integer key needs integer low and high")
    return Dimension(key, declared, low, high, log, step)


def parse_space(config: Config, config_path: Path) -> list[Dimension]:
    """The dimensions of `config.tune.space`, each of its values checked by loading the config
    file `config_path` (the study's base config) with it."""
    space = config.tune.space
    if not space:
        raise ConfigError("tune.space is empty: give the keys to search in a YAML layer")
    dimensions = [_dimension(key, spec, _check_key(key, config)) for key, spec in space.items()]
    for dim in dimensions:
        for value in dim.samples():
            try:
                load_config([config_path], [override(dim.key, value)])
            except ConfigError as error:
                raise ConfigError(f"tune.space.{dim.key}: value {value!r}: {error}") from None
    return dimensions


def base_params(config: Config, dimensions: list[Dimension]) -> dict[str, Any]:
    """The base config's value of each searched key: trial 0's parameters."""
    params = {}
    for dim in dimensions:
        value: Any = config
        for part in dim.key.split("."):
            value = getattr(value, part)
        params[dim.key] = value
    return params
