"""Many runs at once: each configuration in its own run folder, several in parallel processes,
finished runs reused, interrupted ones resumed from their checkpoints. Used by ``--seeds``,
``lifelong sweep`` and ``lifelong compare``."""
from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from lifelong.config import RunConfig
from lifelong.errors import ConfigError


def available_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def choose_jobs(jobs: int | None, runs: int) -> int:
    """``jobs`` checked, or its default: one process per CPU, at most one per run."""
    cpus = available_cpus()
    if jobs is None:
        return max(1, min(cpus, runs))
    if not 1 <= jobs <= cpus:
        raise ConfigError(f"--jobs must lie in 1..{cpus} (the CPUs here), got {jobs}")
    return jobs


def outcome(doc: dict[str, Any] | None) -> str:
    """How a run of many ended, in words: ``complete``, ``not started``, or how far it got and
    why it stopped (``diverged after 2/5 tasks: the loss became nan at ...``)."""
    if doc is None:
        return "not started"
    if doc.get("complete") is True:
        return "complete"
    done = doc.get("tasks_trained", len(doc["class_il"]["accuracy_matrix"]))
    return f"{doc['status']} after {done}/{doc['num_tasks']} tasks: {doc.get('message') or 'no message'}"


def run_one(config: RunConfig, threads: int | None = None) -> dict[str, Any]:
    """Run ``config`` into ``config.out``: reuse it if complete there, resume it if it holds a
    checkpoint, else start it (over). Returns the metrics document."""
    from lifelong.runs.session import execute_run, prepare_run

    if threads:
        import torch

        torch.set_num_threads(threads)
    out = Path(config.out)
    metrics = out / "metrics.json"
    if metrics.is_file():
        try:
            doc = json.loads(metrics.read_text())
            if doc.get("complete"):
                return doc
        except ValueError:
            pass
    if (out / "config.yaml").is_file() and (out / "checkpoints").is_dir():
        return execute_run(prepare_run(config, resume=True))
    return execute_run(prepare_run(replace(config, overwrite=True)))


def run_all(configs: list[RunConfig], jobs: int = 1,
            report: Callable[[int, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run every configuration (each with its own ``out``); ``jobs`` processes at a time, each
    with its configuration's threads (one unless it says otherwise). ``report(i, doc)`` is
    called as run ``i`` finishes."""
    docs: list[dict[str, Any] | None] = [None] * len(configs)
    if jobs <= 1 or len(configs) <= 1:
        for i, config in enumerate(configs):
            docs[i] = run_one(config)
            if report:
                report(i, docs[i])
        return docs  # type: ignore[return-value]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = {pool.submit(run_one, config): i for i, config in enumerate(configs)}
        for future in as_completed(futures):
            i = futures[future]
            docs[i] = future.result()
            if report:
                report(i, docs[i])
    return docs  # type: ignore[return-value]
