"""A run's configuration: defaults, then a YAML file, then command-line flags, validated once
before anything is trained. Every mistake becomes a :class:`ConfigError` with one line saying
what to fix."""
from __future__ import annotations

import time

import difflib
import math
import os
import stat
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from lifelong import hparams
from lifelong.errors import ConfigError
from lifelong.yamlio import YamlLoader, parse_yaml  # noqa: F401  (re-exported)

DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("sgd", "adadelta")  # the run setting `optimizer`: lifelong.optim.SGD, lifelong.optim.Adadelta


@dataclass
class RunConfig:
    """Everything that defines a run. The defaults make a meaningful first run.

    ``method`` is a preset name or a recipe mapping (see :mod:`lifelong.methods`); ``params``
    are the method's parameters. ``lr``, ``batch_size``, ``replay_batch_size``, ``epochs``,
    ``momentum``, ``weight_decay``, ``optimizer`` and ``params`` not given by the user come from
    the published settings for the benchmark, method and buffer size (:mod:`lifelong.hparams`),
    then from :data:`LIBRARY_DEFAULTS` (``params``: the preset's defaults); ``hparams_source``
    says which. ``optimizer``: ``sgd`` or ``adadelta`` (:mod:`lifelong.optim`); a published
    entry's ``lr``, ``momentum`` and ``weight_decay`` are its optimiser's and are not taken by a
    run with another one (:func:`_entry_for`).

    ``online``: the online protocol, one pass over each task's data with :data:`ONLINE_DEFAULTS`
    for what the user does not set (never the published offline settings). ``eval_every``:
    anytime evaluation every that many training examples (:mod:`lifelong.anytime`; ``None``: its
    default, on for online runs and blurry or task-free streams).

    ``forget``: a forget set (:func:`lifelong.unlearn.parse_forget_spec`: ``classes:3,7``,
    ``random:0.01``, ``indices:FILE``) left out of every task's training examples, the test set
    untouched: the *retrain* baseline of machine unlearning (docs/UNLEARNING.md).

    ``init_from``: a finished run folder whose ``model.pt`` the model starts from instead of its
    seeded initialisation (fine-tuning, for :mod:`lifelong.edit`); its digest is recorded
    (``init_digest``) and part of the fingerprint. ``train_tasks``: train on these tasks of the
    stream only (``"2"``, ``"1,3"``, counted from 1); every task is still evaluated.

    ``relabel``: a corruption (``corrupt:0.01`` or ``corrupt:0.01:SEED``,
    :func:`lifelong.unlearn.corruption`): the named training examples carry its wrong labels
    wherever the run reads a training label (the test set untouched); with ``init_from``, the
    corrupted model of RESTOR-style recovery (docs/UNLEARNING.md).
    """

    benchmark: str = "split-mnist"
    method: str | dict = "er"
    params: dict = field(default_factory=dict)
    buffer_size: int = 500
    epochs: int = 1
    batch_size: int = 10
    replay_batch_size: int | None = None
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    optimizer: str = "sgd"
    seed: int = 0
    num_tasks: int | None = None
    shuffle_classes: bool = False
    blurry_disjoint: int | None = None
    blurry_mix: int | None = None
    blurry_variant: str | None = None
    task_free_width: float | None = None
    backbone: str | None = None
    data_root: str = "data"
    download: bool = False
    out: str | None = None
    overwrite: bool = False
    device: str = "auto"
    threads: int | None = None
    imports: list = field(default_factory=list)
    refresh: str | dict | None = None
    view_batch: int | dict | None = None
    error_memory: bool | dict | None = None
    checkpoint_every: int = 2000
    log: list = field(default_factory=list)
    log_every: int = 50
    on_nan: str = "stop"
    deterministic: bool = False
    online: bool = False
    eval_every: int | None = None
    forget: str | None = None
    init_from: str | None = None
    train_tasks: str | int | None = None
    relabel: str | None = None
    precision: str = "fp32"
    hparams_source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a mapping; those of :data:`UNSET_LEFT_OUT` only when they are set, those
        of :data:`DEFAULT_LEFT_OUT` only when they are not their default."""
        values = asdict(self)
        return {k: v for k, v in values.items() if not (k in UNSET_LEFT_OUT and (v is None or v is False))
                and not (k in DEFAULT_LEFT_OUT and v == DEFAULT_LEFT_OUT[k])}


# Settings of some benchmarks only (the blurry ones: lifelong.data.blurry; the task-free ones:
# lifelong.data.taskfree), of view-batch replay (lifelong.plugins.view_batch), of ReLoop2's error
# memory (lifelong.plugins.error_memory) and of some runs
# only (the online protocol, anytime evaluation: lifelong.anytime), left out of a configuration
# while unset (None, or False for a switch), so that the resolved configurations, fingerprints
# and sweep folder names of the other runs stay what they were before these settings existed.
UNSET_LEFT_OUT = ("blurry_disjoint", "blurry_mix", "blurry_variant", "task_free_width", "view_batch", "online",
                  "eval_every", "error_memory", "forget", "init_from", "train_tasks", "relabel")
BLURRY_KEYS = ("blurry_disjoint", "blurry_mix", "blurry_variant")
# ...and the same for settings whose default predates them: ``optimizer: sgd`` is what every run
# did before the setting existed (an absent ``optimizer`` in a config.yaml means sgd)
DEFAULT_LEFT_OUT = {"optimizer": "sgd", "precision": "fp32"}  # precision: lifelong.precision
STREAM_KEYS = BLURRY_KEYS + ("task_free_width",)  # the settings of a kind of stream (benchmarks.check_stream_options)


RUNS_ROOT = Path("runs")  # where run folders go when no --out is given


def method_name(method: str | dict) -> str:
    """A method's name for folders and messages: the preset's, or a recipe's ``name`` (``custom``)."""
    return method if isinstance(method, str) else str(method.get("name", "custom"))


def default_folder(*parts: object) -> Path:
    """``runs/<part>-<part>-...-<YYYYmmdd-HHMMSS>``, with ``-2``, ``-3``... if it exists already."""
    base = RUNS_ROOT / "-".join([*(str(p) for p in parts), time.strftime("%Y%m%d-%H%M%S")])
    out, n = base, 2
    while out.exists():
        out, n = base.with_name(f"{base.name}-{n}"), n + 1
    return out


# Settings of a resolved configuration that do not define the run: where and how it is written,
# how fast it goes, where data and user code are read from, and the device. Left out of the
# fingerprint that --resume checks and of the configuration a report groups seeds by.
NOT_IDENTITY = ("out", "overwrite", "threads", "hparams_source", "checkpoint_every", "download", "data_root", "log",
                "log_every", "device", "imports", "world_size")  # world_size: the processes of a torchrun job
# ...and the settings that differ between the seeds of one configuration
PER_SEED = ("seed", "task_classes")

LIBRARY_DEFAULTS = {"lr": 0.1, "batch_size": 10, "epochs": 1, "momentum": 0.0, "weight_decay": 0.0, "optimizer": "sgd"}
# ...where another optimiser's differ: Adadelta's lr is torch's default (1.0), SHARP's (Source/learner.py)
OPTIMIZER_DEFAULTS = {"adadelta": {"lr": 1.0}}
OPTIMIZER_SETTINGS = ("lr", "momentum", "weight_decay")  # tuned for one optimiser
# The online protocol's settings where the user gives none: one pass, batches of 10 stream and 10
# replayed examples (Koh et al., ICLR 2022; Moon et al., ICCV 2023: the stream arrives in small
# batches and is seen once). They replace the published offline settings (lifelong.hparams).
ONLINE_DEFAULTS = {"epochs": 1, "batch_size": 10, "replay_batch_size": 10}
HPARAM_KEYS = ("lr", "batch_size", "replay_batch_size", "epochs", "momentum", "weight_decay", "optimizer")


# What each field may hold: (python types accepted, allows None)
_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {
    "benchmark": ((str,), False),
    "method": ((str, dict), False),
    "params": ((dict,), False),
    "buffer_size": ((int,), False),
    "epochs": ((int,), False),
    "batch_size": ((int,), False),
    "replay_batch_size": ((int,), True),
    "lr": ((float, int), False),
    "momentum": ((float, int), False),
    "weight_decay": ((float, int), False),
    "optimizer": ((str,), False),
    "seed": ((int,), False),
    "num_tasks": ((int,), True),
    "shuffle_classes": ((bool,), False),
    "blurry_disjoint": ((int,), True),
    "blurry_mix": ((int,), True),
    "blurry_variant": ((str,), True),
    "task_free_width": ((float, int), True),
    "backbone": ((str,), True),
    "data_root": ((str,), False),
    "download": ((bool,), False),
    "out": ((str,), True),
    "overwrite": ((bool,), False),
    "device": ((str,), False),
    "threads": ((int,), True),
    "imports": ((list,), False),
    "refresh": ((str, dict), True),
    "view_batch": ((int, dict), True),
    "error_memory": ((bool, dict), True),
    "checkpoint_every": ((int,), False),
    "log": ((list,), False),
    "log_every": ((int,), False),
    "on_nan": ((str,), False),
    "deterministic": ((bool,), False),
    "online": ((bool,), False),
    "eval_every": ((int,), True),
    "forget": ((str,), True),
    "init_from": ((str,), True),
    "train_tasks": ((str, int), True),
    "relabel": ((str,), True),
    "precision": ((str,), False),
}
KEYS = tuple(f.name for f in fields(RunConfig) if f.name != "hparams_source")
assert set(KEYS) == set(_TYPES)

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping",
               list: "a list"}
_TYPE_NAMES_BY_KEY = {"method": "a method name or a recipe mapping",
                      "refresh": "a form ('paper' or 'code') or a mapping of refresh settings",
                      "view_batch": "a number of views or a mapping of view-batch settings",
                      "error_memory": "true or a mapping of error-memory settings"}


def _check_type(key: str, value: Any, where: str) -> Any:
    types, nullable = _TYPES[key]
    if value is None and nullable:
        return None
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        wanted = _TYPE_NAMES_BY_KEY.get(key, _TYPE_NAMES[types[0]]) + (" or null" if nullable else "")
        raise ConfigError(f"{where}: `{key}` must be {wanted}, got {_short(value)}")
    if key == "log" and not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: `log` must be a list of logger names, e.g. [tensorboard]")
    if key == "imports" and not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}: `imports` must be a list of Python files or module names")
    if key == "params":
        _check_params(value, where)
    if float in types:
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{where}: `{key}` must be a finite number, got {value!r}")
    return value


def _check_params(params: dict, where: str) -> None:
    for name, v in params.items():
        if not isinstance(name, str) or isinstance(v, (dict, list)) or v is None:
            raise ConfigError(f"{where}: `params` must map names to numbers, strings or booleans; got {name!r}: {_short(v)}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{where}: parameter `{name}` must be finite, got {v!r}")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unknown_key_message(key: str, where: str) -> str:
    close = difflib.get_close_matches(key, KEYS, n=1)
    hint = f" (did you mean `{close[0]}`?)" if close else f"; known keys: {', '.join(KEYS)}"
    return f"{where}: unknown key `{key}`{hint}"


MAX_FILE_BYTES = 1 << 20  # config and sweep files: a configuration is a few lines, never a megabyte


def read_small_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file or a pipe (``--config <(...)``) of at most ``limit`` bytes;
    at most ``limit + 1`` are read, so that ``/dev/zero`` or a huge file cannot exhaust memory."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
            raise ConfigError(f"{path} is not a regular file (a device or socket); give a YAML file")
        if info.st_size > limit:  # a regular file says its size: no need to read it
            data = b"x" * (limit + 1)
        else:
            with path.open("rb") as handle:
                data = handle.read(limit + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder; give a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise ConfigError(f"{path} is too large (over {limit // (1 << 20)} MiB); a configuration is a few lines of YAML")
    return data


def load_yaml_document(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; every reading problem is a ConfigError."""
    path = Path(path)
    where = str(path)
    try:
        text = read_small_file(path).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text; save it as UTF-8 YAML") from None
    try:
        data = parse_yaml(text)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{where} is not valid YAML{at}; check the syntax there") from None
    except (RecursionError, ValueError, TypeError, OverflowError):
        raise ConfigError(f"{where} is YAML this tool cannot read (nested too deeply or malformed)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a mapping of keys to values, e.g. `method: er`")
    return data


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of config keys; unknown keys and wrong types are errors."""
    path = Path(path)
    where = str(path)
    data = load_yaml_document(path)
    out = {}
    for key, value in data.items():
        key_text = str(key).replace("-", "_")
        if key_text not in _TYPES:
            raise ConfigError(unknown_key_message(str(key), where))
        out[key_text] = _check_type(key_text, value, where)
    if "imports" in out:  # files are found relative to the config file
        out["imports"] = [str(path.parent / v) if v.endswith(".py") and not Path(v).is_absolute() else v
                          for v in out["imports"]]
    return out


def _preset_params(method: str | dict) -> dict[str, Any]:
    """A preset's own parameter defaults (none for a recipe or an unknown name)."""
    from lifelong.methods import PRESETS

    return dict(PRESETS[method].params) if isinstance(method, str) and method in PRESETS else {}


def make_config(file_values: dict[str, Any], flag_values: dict[str, Any]) -> RunConfig:
    """Defaults, then published settings (hyperparameter files), then the file's values, then
    flags; validated. ``params`` merge key by key in the same order, over the preset's own
    defaults, so that the configuration records every parameter value a run uses."""

    merged = {**file_values, **flag_values}
    for key, value in merged.items():
        where = "flag" if key in flag_values else "config"
        if key not in _TYPES:
            raise ConfigError(unknown_key_message(str(key), where))
        merged[key] = _check_type(key, value, where)
    merged["params"] = {**file_values.get("params", {}), **flag_values.get("params", {})}
    config = RunConfig(**merged)
    if config.online and merged.get("epochs", 1) != 1:
        raise ConfigError(f"`online` trains one pass over each task's data: `epochs` must be 1, got {config.epochs}; "
                          f"drop `epochs` or `online`")
    if isinstance(config.method, str):
        entry, note = hparams.lookup(config.benchmark, config.method, config.buffer_size)
    else:
        entry, note = {}, "custom recipe; library defaults"
    entry, note, defaults = _entry_for(merged.get("optimizer"), entry, note)
    online = {k: v for k, v in ONLINE_DEFAULTS.items() if k not in merged} if config.online else {}
    for key in HPARAM_KEYS:
        if key not in merged:
            setattr(config, key, online.get(key, entry.get(key, defaults.get(key))))
    config.params = {**_preset_params(config.method), **entry.get("params", {}), **merged["params"]}
    if online:
        note += "; online protocol: " + ", ".join(f"{k} {v}" for k, v in online.items())
    config.hparams_source = note
    validate(config)
    return config


def _entry_for(optimizer: str | None, entry: dict[str, Any], note: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The published ``entry`` a run with ``optimizer`` (the user's; ``None``: the entry's) takes,
    its note, and the library defaults for the rest. An entry's ``lr``, ``momentum`` and
    ``weight_decay`` were tuned with its optimiser (``optimizer``, else sgd): a run with another
    one takes that optimiser's defaults instead (Adadelta: lr 1.0, momentum 0)."""
    own = entry.get("optimizer", LIBRARY_DEFAULTS["optimizer"])
    chosen = own if optimizer is None else optimizer
    if chosen != own and any(k in entry for k in OPTIMIZER_SETTINGS):
        entry = {k: v for k, v in entry.items() if k not in OPTIMIZER_SETTINGS}
        note += f"; its lr, momentum and weight decay are {own}'s, not taken with {chosen}"
    return entry, note, {**LIBRARY_DEFAULTS, **OPTIMIZER_DEFAULTS.get(chosen, {})}


def merge_refresh(file_value: str | dict | None, form: str | bool | None, settings: dict | None = None) -> dict:
    """The ``refresh`` setting when flags change a config file's, key by key: ``form`` (a form
    name from ``--refresh FORM``; ``True`` for a bare ``--refresh``, which keeps the file's form,
    else the paper form) replaces only the file's ``form``; every other setting the file gives is
    kept, also when the form changes (what the file does not set takes the form's defaults);
    ``settings`` (``--refresh-param``) then override single keys."""
    merged = {"form": file_value} if isinstance(file_value, str) else dict(file_value or {})
    if isinstance(form, str):
        merged["form"] = form
    merged.setdefault("form", "paper")
    return {**merged, **(settings or {})}


def refresh_plugins(refresh: str | dict | None) -> list[dict]:
    """``refresh:`` (``--refresh``) is shorthand for a ``refresh`` entry in the recipe's
    ``plugins:``: ``"code"`` means ``{plugin: refresh, form: code}``. The entry is checked where
    every plug-in entry is (:func:`lifelong.methods.build_recipe`)."""
    if refresh is None:
        return []
    options = {"form": refresh} if isinstance(refresh, str) else dict(refresh)
    if "seed" in options:
        raise ConfigError("`refresh`: the noise follows the run's `seed`; do not set one here")
    if "plugin" in options:
        raise ConfigError("`refresh`: give the refresh settings only (form, gamma, ...), not `plugin`")
    return [{"plugin": "refresh", **options}]


# view_batch: the plug-in's settings and the view-kl term's, with their defaults
VIEW_BATCH_PLUGIN = {"repeats": 4, "form": "auto", "augment": "auto", "noise": 0.2}
VIEW_BATCH_TERM = {"alpha": 1.0, "start_epoch": 6, "classes": "seen", "reduction": "mean"}


def view_batch_settings(value: int | dict | None) -> dict | None:
    """``view_batch:`` (``--view-batch R``) with every setting filled in: ``4`` means
    ``{repeats: 4, form: auto, augment: auto, noise: 0.2, alpha: 1.0, start_epoch: 6, classes: seen,
    reduction: mean}``; ``None`` when off."""
    if value is None:
        return None
    options = {"repeats": value} if isinstance(value, int) else dict(value)
    known = {**VIEW_BATCH_PLUGIN, **VIEW_BATCH_TERM}
    unknown = [k for k in options if k not in known]
    if unknown:
        raise ConfigError(f"`view_batch` has no setting `{unknown[0]}`; its settings: {', '.join(known)}")
    alpha = options.get("alpha", 1.0)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (math.isfinite(alpha) and alpha >= 0):
        raise ConfigError(f"`view_batch`: `alpha` (the weight of the view-kl loss) must be a finite number >= 0, "
                          f"got {alpha!r}")
    return {**known, **options, "alpha": float(alpha)}


def view_batch_parts(value: int | dict | None) -> tuple[list[dict], list[dict]]:
    """``view_batch:`` is shorthand for a ``view-batch`` entry in the recipe's ``plugins:`` and,
    unless ``alpha`` is 0, a ``view-kl`` entry of weight ``alpha`` in its ``terms:``:
    ``(plug-in entries, term entries)``, checked where every entry is."""
    settings = view_batch_settings(value)
    if settings is None:
        return [], []
    plugin = {"plugin": "view-batch", **{k: settings[k] for k in VIEW_BATCH_PLUGIN}}
    term = {"term": "view-kl", "weight": settings["alpha"], **{k: settings[k] for k in VIEW_BATCH_TERM if k != "alpha"}}
    return [plugin], ([term] if settings["alpha"] else [])


def _check_view_batch(config: RunConfig) -> None:
    """The view-batch entries build, and a multi-epoch run's batch (of views) splits into whole
    groups of views."""
    from lifelong.methods import build_plugin, build_term

    plugins, terms = view_batch_parts(config.view_batch)
    for entry in plugins:
        plugin = build_plugin(entry, where="`view_batch`")
        online = plugin.form == "online" or (plugin.form == "auto" and config.epochs < plugin.views)
        if not online and config.batch_size % plugin.views:
            raise ConfigError(f"`view_batch`: over {config.epochs} epochs a batch holds views, so `batch-size` "
                              f"({config.batch_size}) must be a multiple of the {plugin.views} repeats; or use "
                              f"`view_batch: {{form: online}}`")
    for entry in terms:
        build_term(entry, where="`view_batch`")


def error_memory_plugins(value: bool | dict | None) -> list[dict]:
    """``error_memory:`` (``--error-memory``) is shorthand for an ``error-memory`` entry in the
    recipe's ``plugins:`` (ReLoop2's error memory, :mod:`lifelong.plugins.error_memory`):
    ``true`` with its defaults, a mapping with settings (``bits``, ``slots``, ``k``,
    ``temperature``, ``lam``, ``seed``, ``during_training``); unset or ``false``: none."""
    if value is None or value is False:
        return []
    options = {} if value is True else dict(value)
    if "plugin" in options:
        raise ConfigError("`error_memory`: give the error-memory settings only (bits, slots, ...), not `plugin`")
    return [{"plugin": "error-memory", **options}]


def validate(config: RunConfig) -> None:
    """Range checks that do not need the data (names are checked where they are looked up)."""
    _check_ranges(config)
    _check_choices(config)
    from lifelong.methods import build_plugin

    for entry in refresh_plugins(config.refresh):  # its options and values, before any data is read
        build_plugin(entry, where="`refresh`")
    for entry in error_memory_plugins(config.error_memory):
        build_plugin(entry, where="`error_memory`")
    _check_view_batch(config)
    _check_limits(config)
    _check_stream(config)
    _check_memory_size(config)
    if config.forget is not None:  # its syntax now; its examples when the data are read (session.stream_of)
        from lifelong.unlearn.forget import parse_forget_spec

        parse_forget_spec(config.forget)
    if config.train_tasks is not None:
        config.train_tasks = ",".join(str(t) for t in parse_train_tasks(config.train_tasks))
    if config.relabel is not None:  # its syntax now; its examples when the data are read (session.stream_of)
        from lifelong.unlearn.forget import parse_relabel_spec

        parse_relabel_spec(config.relabel)


def parse_train_tasks(value: str | int) -> list[int]:
    """The tasks ``train_tasks`` names (``"2"``, ``"1,3"``, ``2``), counted from 1, sorted; one
    line for anything else."""
    parts = [p.strip() for p in str(value).split(",")]
    if not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise ConfigError(f"`train-tasks` must be task numbers counted from 1, e.g. 2 or 1,3; got {value!r}")
    return sorted({int(p) for p in parts})


def _check_stream(config: RunConfig) -> None:
    """The stream settings (the blurry and task-free ones, ``shuffle_classes``, ``num_tasks``)
    suit the benchmark when it is known before any user code is imported (a built-in;
    :func:`lifelong.data.benchmarks.build_stream` checks the others); else their values alone."""
    from lifelong.data.benchmarks import BENCHMARKS, check_stream_options
    from lifelong.data.blurry import DEFAULTS, check_settings
    from lifelong.data.taskfree import check_width

    options = {key: getattr(config, key) for key in STREAM_KEYS}
    benchmark = BENCHMARKS.get(config.benchmark)
    if benchmark is not None:
        check_stream_options(benchmark, config.num_tasks, shuffle_classes=config.shuffle_classes, **options)
    else:
        check_settings(None, 1, *(DEFAULTS[key] if options[key] is None else options[key] for key in DEFAULTS))
        check_width(options["task_free_width"])


def _check_memory_size(config: RunConfig) -> None:
    """The memory's size suits the benchmark's classes and tasks, where both are known before the
    data are read (a built-in benchmark; the loop checks the others: :func:`lifelong.loop.train`)."""
    from lifelong.data.benchmarks import BENCHMARKS
    from lifelong.memory import MEMORIES
    from lifelong.methods import PRESETS

    method = config.method
    if isinstance(method, str):
        memory = PRESETS[method].recipe.get("memory") if method in PRESETS else None
    else:
        memory = method.get("memory")
    benchmark = BENCHMARKS.get(config.benchmark)
    if not isinstance(memory, str) or memory not in MEMORIES or benchmark is None or benchmark.num_classes is None:
        return
    check = getattr(MEMORIES[memory], "capacity_problem", None)
    tasks = config.num_tasks or benchmark.num_tasks
    problem = check(config.buffer_size, benchmark.num_classes, tasks) if check else None
    if problem:
        raise ConfigError(f"method {method_name(method)!r} on {benchmark.name}: {problem}")


def _check_ranges(config: RunConfig) -> None:
    for key in ("buffer_size", "epochs", "batch_size", "lr"):
        value = getattr(config, key)
        if value <= 0:
            raise ConfigError(f"`{key.replace('_', '-')}` must be positive, got {value}")
    for key in ("replay_batch_size", "num_tasks", "threads", "eval_every"):
        value = getattr(config, key)
        if value is not None and value <= 0:
            raise ConfigError(f"`{key.replace('_', '-')}` must be positive, got {value}")
    if not 0.0 <= config.momentum < 1.0:
        raise ConfigError(f"`momentum` must lie in [0, 1), got {config.momentum}")
    if config.weight_decay < 0:
        raise ConfigError(f"`weight-decay` must not be negative, got {config.weight_decay}")
    if config.optimizer == "adadelta" and config.momentum:
        raise ConfigError(f"`momentum` is SGD's; Adadelta has none: drop `momentum` ({config.momentum:g}) "
                          f"or use `optimizer: sgd`")
    if config.seed < 0 or config.seed >= 2**63:
        raise ConfigError(f"`seed` must lie in 0..2^63-1, got {config.seed}")
    if config.checkpoint_every < 0:
        raise ConfigError(f"`checkpoint-every` must be 0 (task ends only) or positive, got {config.checkpoint_every}")


def _check_choices(config: RunConfig) -> None:
    from lifelong.runs.loggers import LOGGERS

    unknown_loggers = [name for name in config.log if name not in LOGGERS]
    if unknown_loggers:
        raise ConfigError(f"unknown logger {unknown_loggers[0]!r}; choose among: {', '.join(LOGGERS)} "
                          f"(JSON lines and CSV are always written)")
    if config.log_every < 1:
        raise ConfigError(f"`log-every` must be positive, got {config.log_every}")
    if config.on_nan not in ("stop", "skip"):
        raise ConfigError(f"`on-nan` must be 'stop' or 'skip', got {config.on_nan!r}")
    if config.optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {config.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
    from lifelong.precision import PRECISIONS

    if config.precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {config.precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if config.device not in DEVICES:
        raise ConfigError(f"unknown device {config.device!r}; choose one of: {', '.join(DEVICES)}")
    for key in ("benchmark", "data_root", "out", "backbone", "init_from"):
        value = getattr(config, key)
        if isinstance(value, str) and not value.strip():
            raise ConfigError(f"`{key.replace('_', '-')}` must not be empty")
    for key in ("data_root", "out"):
        if isinstance(getattr(config, key), str):
            check_path_text(getattr(config, key), f"`{key.replace('_', '-')}`")


NAME_MAX = 255  # bytes in one file or folder name (Linux, macOS)
PATH_MAX = 3800  # bytes in a whole path, leaving room for the files a run writes below its folder (4096)


def check_path_text(text: str, what: str) -> None:
    """Refuse a path that no file system here can hold: a name longer than :data:`NAME_MAX`
    bytes, a whole path longer than :data:`PATH_MAX`, a NUL character, or characters that cannot
    be file names (the operating system would refuse them with an error, not a message)."""
    try:
        raw = os.fsencode(text)
    except UnicodeError:
        raise ConfigError(f"{what} holds characters that cannot be part of a file name here") from None
    if b"\0" in raw:
        raise ConfigError(f"{what} must not hold a NUL character")
    longest = max(len(name) for name in raw.split(b"/"))
    if longest > NAME_MAX:
        raise ConfigError(f"{what} holds a name of {longest} bytes; file and folder names hold at most {NAME_MAX}")
    if len(raw) > PATH_MAX:
        raise ConfigError(f"{what} is {len(raw)} bytes long; use a path of at most {PATH_MAX}")


# Upper bounds of the settings whose huge values would only make a run that never ends (a typo
# such as `epochs: 10000000`): far above every published setting. Other counts stop at 2^31 - 1.
UPPER_BOUNDS = {"epochs": 1000, "batch_size": 100_000, "replay_batch_size": 100_000, "num_tasks": 1000}


def _check_limits(config: RunConfig) -> None:
    cpus = os.cpu_count() or 1
    if config.threads is not None and config.threads > cpus:
        raise ConfigError(f"`threads` must be at most {cpus}, the number of CPUs here; got {config.threads}")
    for key in ("buffer_size", "epochs", "batch_size", "replay_batch_size", "num_tasks", "threads", "checkpoint_every",
                "log_every", "eval_every"):
        value, limit = getattr(config, key), UPPER_BOUNDS.get(key, 2**31 - 1)
        if value is not None and value > limit:
            raise ConfigError(f"`{key.replace('_', '-')}` is too large ({value}); use at most {limit}")
