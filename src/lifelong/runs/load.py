"""Reading a finished run folder back (``config.yaml``, ``model.pt``) with the run machinery's
own builders, and writing a folder of results made from it all at once: the shared parts of the
commands that work on finished runs (``lifelong unlearn``, :mod:`lifelong.unlearn.run`;
``lifelong edit`` and ``lifelong merge``, :mod:`lifelong.edit.run`)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import yaml

from lifelong.config import KEYS, RunConfig, make_config
from lifelong.errors import ConfigError


@dataclass
class SourceRun:
    """A finished run read back: its folder, resolved configuration (``config.yaml``), the
    configuration rebuilt from it, the trained model, and (for unlearning) its data split by the
    forget set."""

    folder: Path
    resolved: dict[str, Any]
    config: RunConfig
    model: nn.Module
    data: Any = None


def check_finished(folder: Path, what: str) -> None:
    """One line unless ``folder`` is a complete run folder holding ``model.pt``."""
    from lifelong.runs.reuse import folder_state

    if not folder.is_dir():
        raise ConfigError(f"{what} {folder} is not a folder; give a finished run folder")
    if not (folder / "config.yaml").is_file():
        raise ConfigError(f"{what} {folder} is not a lifelong run folder (no config.yaml)")
    state, _ = folder_state(folder)
    if state != "complete":
        raise ConfigError(f"the run in {folder} is not complete (no metrics.json marked complete); "
                          f"finish it first (`lifelong run --resume {folder}`)")
    if not (folder / "model.pt").is_file():
        raise ConfigError(f"the run in {folder} has no model.pt; it cannot be read back")


def finished_config(folder: Path, what: str) -> tuple[dict[str, Any], RunConfig]:
    """The stored and rebuilt configuration of a finished run folder, or one line saying why not."""
    from lifelong.runs.reuse import stored_config

    check_finished(folder, what)
    resolved = stored_config(folder)
    if resolved is None or "benchmark" not in resolved:
        raise ConfigError(f"{folder / 'config.yaml'} cannot be read or is not a run configuration")
    values = {k: v for k, v in resolved.items() if k in KEYS}
    values["device"] = "cpu"  # replaced by the device asked for (:func:`load_run`)
    return resolved, make_config(values, {})


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes (``init_digest``: which ``model.pt`` a run started from)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_state(path: Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """A ``model.pt``'s state dict, or one line saying it cannot be read."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # a damaged file or not a torch file: torch raises many kinds
        raise ConfigError(f"{path} cannot be read as model weights ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{path} does not hold a state dict (model weights)")
    return state


def load_run(folder: str | Path, *, device: str = "auto", data_root: str | None = None, what: str = "run folder",
             source_cache: dict | None = None) -> tuple[SourceRun, Any]:
    """A finished run's model, its weights loaded from ``model.pt``, and its data source, built
    as the run built them (:func:`lifelong.runs.session.check_run`, :func:`~lifelong.runs.
    session.build_model`); ``data_root`` replaces the run's data folder."""
    from lifelong.runs.session import build_model, check_run, resolve_device

    folder = Path(folder)
    resolved, config = finished_config(folder, what)
    if data_root is not None:
        config.data_root = data_root
    benchmark, recipe, backbone, _ = check_run(config)
    torch_device = resolve_device(device)
    key = (benchmark.name, config.data_root)
    source = (source_cache or {}).get(key)
    if source is None:
        source = benchmark.load(Path(config.data_root), config.download).to(torch_device)
        if source_cache is not None:
            source_cache[key] = source
    model = build_model(config, recipe, backbone, source, torch_device)
    try:
        model.load_state_dict(read_state(folder / "model.pt", torch_device))
    except ConfigError:
        raise
    except Exception as exc:  # weights of another model: torch raises many kinds
        raise ConfigError(f"{folder / 'model.pt'} cannot be loaded into the run's model "
                          f"({type(exc).__name__}); is the folder's config.yaml the run's own?") from None
    return SourceRun(folder, resolved, config, model.eval()), source


def staging_folder(out: Path, prefix: str) -> Path:
    """Refuse an output folder that exists and holds anything, or cannot be made; a temporary
    folder beside it (in its nearest existing parent), renamed into place by :func:`write_folder`."""
    from lifelong.runs.folder import check_out_dir, check_runs_folder

    check_runs_folder(out)
    check_out_dir(out, overwrite=False)
    above = out.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=above))
    except OSError as exc:
        raise ConfigError(f"cannot write to output folder {out}: {exc.strerror or exc}; choose another --out") from None


def write_folder(tmp: Path, out: Path, state: dict[str, torch.Tensor], doc: dict[str, Any],
                 config: dict[str, Any]) -> None:
    """``model.pt``, ``config.yaml`` and ``metrics.json`` into ``tmp``, then ``tmp`` renamed to ``out``."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    (tmp / "model.pt").write_bytes(buffer.getvalue())
    (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    (tmp / "metrics.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, out)  # over a missing or empty folder only: check_out_dir refused any other
    except OSError as exc:
        raise ConfigError(f"cannot write to output folder {out}: {exc.strerror or exc}; choose another --out") from None
