"""Published best hyperparameters per benchmark, method and buffer size.

Each ``<benchmark>.yaml`` file maps a method to entries keyed by buffer size (or ``any`` for
methods without a memory). An entry may set ``lr``, ``batch_size``, ``replay_batch_size``,
``epochs``, ``momentum``, ``weight_decay``, ``optimizer`` (``sgd`` when absent; the entry's
``lr``, ``momentum`` and ``weight_decay`` are for it) and the method's ``params``. The file says where the
values come from. A run takes an entry's values for whatever the user did not set; when the
buffer size has no entry, the nearest listed size is used and the run's config says so.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from lifelong.yamlio import parse_yaml


HERE = Path(__file__).parent
ENTRY_KEYS = ("lr", "batch_size", "replay_batch_size", "epochs", "momentum", "weight_decay", "optimizer", "params",
              "note")


@lru_cache(maxsize=None)
def load(benchmark: str) -> dict[str, Any]:
    """The parsed file for ``benchmark`` (empty when there is none)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", benchmark):
        return {}  # not a benchmark name; never a path
    path = HERE / f"{benchmark}.yaml"
    if not path.is_file():
        return {}
    return parse_yaml(path.read_text()) or {}


def lookup(benchmark: str, method: str, buffer_size: int) -> tuple[dict[str, Any], str]:
    """``(entry, where)``: the best-known settings and a note naming the file, method and key."""
    data = load(benchmark)
    entries = (data.get("methods") or {}).get(method)
    if not entries:
        return {}, f"no published settings for {method} on {benchmark}; library defaults"
    if "any" in entries:
        key: Any = "any"
    elif buffer_size in entries:
        key = buffer_size
    else:
        key = min(entries, key=lambda k: (abs(int(k) - buffer_size), int(k)))
    note = f"hparams/{benchmark}.yaml: {method}, {key}"
    if key not in ("any", buffer_size):
        note += f" (nearest to buffer {buffer_size})"
    return dict(entries[key]), note
