"""``lifelong.run``: a whole run from Python, as ``lifelong run`` does it from the shell."""
from __future__ import annotations

from typing import Any

from lifelong.config import RunConfig, make_config


def run(config: RunConfig | None = None, *, resume: bool = False, **values: Any) -> dict[str, Any]:
    """Train and evaluate one run and write its folder; return its metrics document
    (``metrics.json``: accuracy matrices, metrics, status).

    Give a :class:`RunConfig`, or its fields as keywords (``method="derpp"``, ``buffer_size=200``,
    ``seed=0``, ``out="runs/x"``, ...); settings left out come from the published settings for the
    benchmark and method, as on the command line. Mistakes raise
    :class:`lifelong.errors.ConfigError` with one line saying what to fix."""
    from lifelong.runs.session import execute_run, prepare_run

    if config is None:
        config = make_config({}, values)
    elif values:
        raise TypeError("give a RunConfig or keyword settings, not both")
    return execute_run(prepare_run(config, resume=resume))
