"""Checkpoint payloads: what a run needs to continue exactly where it stopped, and putting it
back (the model, the optimiser, the memory, every term's and plug-in's state, all random
generators, the position in the stream and the results so far, the anytime curve included). Written and read by
:func:`lifelong.loop.train`; stored by :class:`lifelong.runs.checkpoint.CheckpointStore`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

import torch

if TYPE_CHECKING:  # only for annotations: the loop imports this module
    from lifelong.anytime import AnytimeEvaluation
    from lifelong.loop import LossMonitor, RunResult, TrainState


class StopRequested(Exception):
    """Raised inside the loop when the process was asked to stop (SIGINT, SIGTERM)."""


@dataclass
class Position:
    """Where training stands: the next step is batch ``start`` of epoch ``epoch`` of the
    ``task``-th task; ``order_state`` is the batch-order generator's state at that epoch's start."""

    task: int = 0
    epoch: int = 0
    start: int = 0
    order_state: torch.Tensor | None = None

    @property
    def mid_task(self) -> bool:
        return self.epoch > 0 or self.start > 0


class Store(Protocol):
    """Where checkpoints go: :class:`lifelong.runs.checkpoint.CheckpointStore` (files, atomic,
    checksummed) or anything with this method."""

    def save(self, payload: dict[str, Any], step: int) -> Any: ...


@dataclass
class Checkpointing:
    """Checkpoints for :func:`train`: where (``store``), how often in steps besides every task end
    (``every``, 0 for task ends only), the checkpoint to resume from (``resume``), a test of
    whether the process was asked to stop, and a fingerprint of the run's configuration."""

    store: Store
    every: int = 0
    resume: dict | None = None
    stop_requested: Callable[[], bool] = lambda: False
    config_hash: str = ""


def _state_of(component: Any) -> Any:
    return component.state_dict() if hasattr(component, "state_dict") else None


def snapshot(state: "TrainState", result: "RunResult", position: Position, rngs: dict[str, torch.Generator],
             monitor: "LossMonitor", elapsed: float, config_hash: str,
             anytime: "AnytimeEvaluation | None" = None) -> dict[str, Any]:
    """Everything needed to continue exactly, as plain containers and tensors; with anytime
    evaluation, its schedule and curve so far under ``"anytime"`` (else no such key)."""
    recipe = state.recipe
    payload = {
        "config_hash": config_hash,
        "position": {"task": position.task, "epoch": position.epoch, "start": position.start,
                     "order_state": position.order_state, "step": state.step},
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "memory": None if state.memory is None else state.memory.state_dict(),
        "terms": [_state_of(term) for _, term in recipe.objective.terms],
        "plugins": [_state_of(plugin) for plugin in recipe.plugins],
        "rng": {**{name: g.get_state() for name, g in rngs.items()}, "torch": torch.get_rng_state()},
        "monitor": {"total": monitor.total, "count": monitor.count, "task_loss": monitor.task_loss,
                    "task_reads": monitor.task_reads},
        "result": {"class_il": result.class_il, "task_il": result.task_il, "init_class_il": result.init_class_il,
                   "init_task_il": result.init_task_il, "train_seconds": elapsed,
                   "skipped_steps": result.skipped_steps},
    }
    if anytime is not None:
        payload["anytime"] = anytime.state_dict()
    return payload


def task_loss(payload: dict[str, Any] | None) -> tuple[float, int]:
    """The sum and count of the losses read in the task in progress at a checkpoint (zeros at a
    task end, in none, or in one written before they were kept)."""
    saved = (payload or {}).get("monitor", {})
    return float(saved.get("task_loss", 0.0)), int(saved.get("task_reads", 0))


def restore(payload: dict[str, Any], state: "TrainState", result: "RunResult", rngs: dict[str, torch.Generator],
            monitor: "LossMonitor", anytime: "AnytimeEvaluation | None" = None) -> Position:
    """Put a :func:`snapshot` back into the live objects; return where to continue."""
    recipe = state.recipe
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    if state.memory is not None:
        state.memory.load_state_dict(payload["memory"], state)
    for (_, term), saved in zip(recipe.objective.terms, payload["terms"]):
        if saved is not None:
            term.load_state_dict(saved, state)
    for plugin, saved in zip(recipe.plugins, payload["plugins"]):
        if saved is not None:
            plugin.load_state_dict(saved, state)
    for name, g in rngs.items():
        g.set_state(payload["rng"][name])
    torch.set_rng_state(payload["rng"]["torch"])
    monitor.total, monitor.count = payload["monitor"]["total"], payload["monitor"]["count"]
    monitor.task_loss, monitor.task_reads = task_loss(payload)
    saved = payload["result"]
    result.class_il, result.task_il = saved["class_il"], saved["task_il"]
    result.init_class_il, result.init_task_il = saved["init_class_il"], saved["init_task_il"]
    result.train_seconds, result.skipped_steps = saved["train_seconds"], int(saved["skipped_steps"])
    if anytime is not None:
        if "anytime" not in payload:
            raise ValueError("the checkpoint holds no anytime curve; resume it without eval_every")
        anytime.load_state_dict(payload["anytime"])
    p = payload["position"]
    state.step = int(p["step"])
    return Position(int(p["task"]), int(p["epoch"]), int(p["start"]), p["order_state"])
