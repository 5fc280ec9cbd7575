"""What a command of many runs (``--seeds``, ``compare``, ``sweep``) does with the run it finds in
a run folder: it reuses a complete one and resumes an interrupted one only when that run was
made with the same configuration, compared as ``--resume`` compares a checkpoint's: the
fingerprint of the resolved configuration (:func:`lifelong.runs.session.config_hash`, which
leaves out :data:`lifelong.config.NOT_IDENTITY`). A folder holding a run of other settings is
never reused and never cleared: the command is refused before any of its runs starts
(:func:`check_runs`)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from lifelong.config import NOT_IDENTITY, RunConfig
from lifelong.errors import ConfigError
from lifelong.runs.checkpoint import CheckpointStore

Resolve = Callable[[RunConfig], dict[str, Any]]


@dataclass(frozen=True)
class Found:
    """What a run folder holds for its configuration: ``state`` is ``start`` (no run, or one of
    the same settings that cannot be continued: it is started over), ``resume`` (a checkpoint to
    continue from), ``complete`` (reused; ``doc`` is its metrics) or ``other`` (a run of other
    settings: refused; ``other`` says how they differ, e.g. ``lr 0.1, not 0.03``)."""

    state: str
    doc: dict[str, Any] | None = None
    other: str = ""


def folder_state(out: Path) -> tuple[str, dict[str, Any] | None]:
    """What a run folder holds, whatever its settings: ``("complete", metrics)``, ``("resume",
    None)`` (a configuration and a checkpoint whose writing finished,
    :meth:`~lifelong.runs.checkpoint.CheckpointStore.written`) or ``("start", None)`` (nothing to
    continue from: no run, or one stopped before its first checkpoint, whose ``checkpoints/`` may
    be empty)."""
    metrics = out / "metrics.json"
    if metrics.is_file():
        try:
            doc = json.loads(metrics.read_text())
            if isinstance(doc, dict) and doc.get("complete"):
                return "complete", doc
        except ValueError:
            pass
    if (out / "config.yaml").is_file() and CheckpointStore(out).written():
        return "resume", None
    return "start", None


def stored_config(out: Path) -> dict[str, Any] | None:
    """The resolved configuration in a run folder's ``config.yaml``, read as it was written
    (safe YAML, the inverse of ``yaml.safe_dump``; with libyaml where installed, a few times
    faster); ``None`` when it is missing or cannot be read."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        stored = yaml.load((out / "config.yaml").read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - safe
    except Exception:  # missing, unreadable, not YAML: its settings are unknown
        return None
    return stored if isinstance(stored, dict) else None


_UNSET = object()  # a setting one of two configurations does not have


def _shown(value: Any) -> str:
    """A setting's value in a message: ``0.1``, ``er``, ``null``, ``[[0, 1], [2, 3]]``, ``unset``."""
    if value is _UNSET or value is None:
        return "unset" if value is _UNSET else "null"
    text = json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def first_difference(stored: Any, resolved: Any, name: str = "") -> str | None:
    """The first setting, in ``resolved``'s order, in which ``stored`` differs from it, in words
    (``lr 0.1, not 0.03``; a nested one by its dotted name: ``params.alpha 0.1, not 0.3``);
    ``None`` when none does. Settings that do not define a run (:data:`NOT_IDENTITY`) are not
    compared."""
    if isinstance(stored, dict) and isinstance(resolved, dict) and stored and resolved:
        for key in [*resolved, *(k for k in stored if k not in resolved)]:
            if name or key not in NOT_IDENTITY:
                found = first_difference(stored.get(key, _UNSET), resolved.get(key, _UNSET), f"{name}{key}.")
                if found:
                    return found
        return None
    if stored is not _UNSET and resolved is not _UNSET and _same(stored, resolved):
        return None
    return f"{name.rstrip('.')} {_shown(stored)}, not {_shown(resolved)}"


def _same(a: Any, b: Any) -> bool:
    """Whether two values are one setting, as :func:`lifelong.runs.session.config_hash` sees them."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def check_folder(config: RunConfig, resolve: Resolve) -> Found:
    """What ``config.out`` holds for ``config``. When it holds a run, the two are one
    configuration when their fingerprints are equal (:func:`lifelong.runs.session.config_hash`
    of the folder's ``config.yaml`` and of ``resolve(config)``, the resolved configuration), as
    ``--resume`` decides; ``resolve`` is called only then."""
    from lifelong.runs.session import config_hash

    out = Path(config.out)
    state, doc = folder_state(out)
    if state == "start" and not (out / "config.yaml").exists():
        return Found("start")
    stored = stored_config(out)
    if stored is None:
        return Found("other", other="settings that cannot be read (its config.yaml is missing or damaged)")
    resolved = resolve(config)
    if config_hash(stored) != config_hash(resolved):
        return Found("other", other=first_difference(stored, resolved) or "other settings")
    return Found(state, doc)


def refusal(configs: list[RunConfig], found: list[Found]) -> str | None:
    """The one line that refuses a command whose folders hold runs of other settings, naming
    the first and how its settings differ; ``None`` when there is none."""
    clashes = [(config, f) for config, f in zip(configs, found) if f.state == "other"]
    if not clashes:
        return None
    config, first = clashes[0]
    others = len(clashes) - 1
    more = f" (and {others} more run folder{'s' if others > 1 else ''} like it)" if others else ""
    return f"{config.out} holds a run with {first.other}{more}; choose another --out or delete it"


def check_runs(configs: list[RunConfig]) -> list[Found]:
    """What each configuration's folder holds, every folder checked before any run starts; a
    :class:`ConfigError` (:func:`refusal`) when one holds a run of other settings. Each data set
    is read once, however many runs are checked."""
    from lifelong.runs.session import resolve_config

    sources: dict[tuple[str, str], Any] = {}
    found = [check_folder(config, lambda c: resolve_config(c, sources)) for config in configs]
    message = refusal(configs, found)
    if message:
        raise ConfigError(message)
    return found
