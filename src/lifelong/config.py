"""A run's configuration: defaults, then a YAML file, then command-line flags, validated once
before anything is trained. Every mistake becomes a :class:`ConfigError` with one line saying
what to fix."""
from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from lifelong.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class RunConfig:
    """Everything that defines a run. The defaults make a meaningful first run."""

    benchmark: str = "split-mnist"
    method: str = "er"
    buffer_size: int = 500
    epochs: int = 1
    batch_size: int = 10
    replay_batch_size: int | None = None
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    num_tasks: int | None = None
    shuffle_classes: bool = False
    backbone: str | None = None
    data_root: str = "data"
    download: bool = False
    out: str | None = None
    overwrite: bool = False
    device: str = "auto"
    threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# What each field may hold: (python types accepted, allows None)
_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {
    "benchmark": ((str,), False),
    "method": ((str,), False),
    "buffer_size": ((int,), False),
    "epochs": ((int,), False),
    "batch_size": ((int,), False),
    "replay_batch_size": ((int,), True),
    "lr": ((float, int), False),
    "momentum": ((float, int), False),
    "weight_decay": ((float, int), False),
    "seed": ((int,), False),
    "num_tasks": ((int,), True),
    "shuffle_classes": ((bool,), False),
    "backbone": ((str,), True),
    "data_root": ((str,), False),
    "download": ((bool,), False),
    "out": ((str,), True),
    "overwrite": ((bool,), False),
    "device": ((str,), False),
    "threads": ((int,), True),
}
KEYS = tuple(f.name for f in fields(RunConfig))
assert set(KEYS) == set(_TYPES)

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _check_type(key: str, value: Any, where: str) -> Any:
    types, nullable = _TYPES[key]
    if value is None and nullable:
        return None
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        wanted = _TYPE_NAMES[types[0]] + (" or null" if nullable else "")
        raise ConfigError(f"{where}: `{key}` must be {wanted}, got {value!r}")
    if float in types:
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{where}: `{key}` must be a finite number, got {value!r}")
    return value


def unknown_key_message(key: str, where: str) -> str:
    close = difflib.get_close_matches(key, KEYS, n=1)
    hint = f" (did you mean `{close[0]}`?)" if close else f"; known keys: {', '.join(KEYS)}"
    return f"{where}: unknown key `{key}`{hint}"


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of config keys; unknown keys and wrong types are errors."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder; give a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text; save it as UTF-8 YAML") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{where} is not valid YAML{at}; check the syntax there") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a mapping of keys to values, e.g. `method: er`")
    out = {}
    for key, value in data.items():
        key_text = str(key).replace("-", "_")
        if key_text not in _TYPES:
            raise ConfigError(unknown_key_message(str(key), where))
        out[key_text] = _check_type(key_text, value, where)
    return out


def make_config(file_values: dict[str, Any], flag_values: dict[str, Any]) -> RunConfig:
    """Defaults, overridden by the file's values, overridden by flags; then validated."""
    merged = {**file_values, **flag_values}
    for key, value in merged.items():
        merged[key] = _check_type(key, value, "flag" if key in flag_values else "config")
    config = RunConfig(**merged)
    validate(config)
    return config


def validate(config: RunConfig) -> None:
    """Range checks that do not need the data (names are checked where they are looked up)."""
    for key in ("buffer_size", "epochs", "batch_size", "lr"):
        value = getattr(config, key)
        if value <= 0:
            raise ConfigError(f"`{key.replace('_', '-')}` must be positive, got {value}")
    for key in ("replay_batch_size", "num_tasks", "threads"):
        value = getattr(config, key)
        if value is not None and value <= 0:
            raise ConfigError(f"`{key.replace('_', '-')}` must be positive, got {value}")
    if not 0.0 <= config.momentum < 1.0:
        raise ConfigError(f"`momentum` must lie in [0, 1), got {config.momentum}")
    if config.weight_decay < 0:
        raise ConfigError(f"`weight-decay` must not be negative, got {config.weight_decay}")
    if config.seed < 0 or config.seed >= 2**63:
        raise ConfigError(f"`seed` must lie in 0..2^63-1, got {config.seed}")
    if config.device not in DEVICES:
        raise ConfigError(f"unknown device {config.device!r}; choose one of: {', '.join(DEVICES)}")
    limit = 2**31 - 1
    for key in ("buffer_size", "epochs", "batch_size", "replay_batch_size", "num_tasks", "threads"):
        value = getattr(config, key)
        if value is not None and value > limit:
            raise ConfigError(f"`{key.replace('_', '-')}` is too large ({value}); use at most {limit}")
