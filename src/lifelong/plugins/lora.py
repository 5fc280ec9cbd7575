"""One LoRA adapter per task on a frozen base (Hu et al., 2021; :mod:`lifelong.nets.lora`): the
``lora`` preset's plug-in.

The base is the model at the start of the run (a fresh initialisation, or ``--init-from RUN``'s
weights); every one of its parameters is frozen and taken out of the optimiser at the first
task. Each task trains a fresh adapter on each adapted layer (``A`` Kaiming-uniform from the
run's seed and the task, ``B = 0``, scaling ``α/r``), added to the layer's output by a forward
hook, so the model's modules and state dict stay the base's: the run's ``model.pt`` is the base
and the adapters are in the run folder's ``adapters.pt`` (:meth:`LoRAAdapters.run_files`).

Evaluation (``scores``, :func:`lifelong.evaluate.evaluate`):

* **task-IL**: task ``j``'s test set through task ``j``'s adapter (the task id picks the
  adapter; a task not trained yet, or not trained at all with ``--train-tasks``, is scored by
  the base alone: only tasks with at least one step keep an adapter);
* **class-IL**: no task id, so one model for all tasks: the base plus the task-arithmetic sum
  ``Σ_j ΔW_j`` of the adapters of the tasks trained so far (``λ = 1``; the base alone before
  the first task ends).
"""
from __future__ import annotations

import io
from contextlib import contextmanager
from typing import Any, Optional, Sequence

import torch

from lifelong.errors import ConfigError
from lifelong.nets.lora import (Adapter, adaptable_layers, attach, check_rank_alpha, delta_forward, delta_weight,
                                low_rank_forward)
from lifelong.plugins import register_plugin
from lifelong.seeding import torch_generator

ADAPTERS_FILE = "adapters.pt"
BASE, MERGED = "base", "merged"


def _checked(rank: Any, alpha: Any, layers: Any) -> tuple[int, float, Optional[list[str]]]:
    try:
        rank, alpha = check_rank_alpha(rank, alpha)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    if layers is not None and (not isinstance(layers, (list, tuple)) or not all(isinstance(n, str) for n in layers)):
        raise ValueError(f"`layers` must be a list of layer names or null (every linear and conv layer), got {layers!r}")
    return rank, alpha, None if layers is None else list(layers)


@register_plugin
class LoRAAdapters:
    """A new LoRA adapter (rank ``rank``, scaling ``alpha / rank``) on ``layers`` (default: every
    ``nn.Linear`` and ``nn.Conv2d``) for each task, on a frozen base; see the module docstring."""

    name = "lora"
    needs_task_boundaries = "it starts each task's adapter at the task's start and keeps it at its end"

    def __init__(self, rank: int = 8, alpha: float = 8.0, layers: Optional[Sequence[str]] = None) -> None:
        self.rank, self.alpha, self.layers = _checked(rank, alpha, layers)
        self.current: dict[str, Adapter] = {}  # the adapters being trained, by layer name
        self.finished: dict[int, dict[str, dict[str, torch.Tensor]]] = {}  # task index -> layer -> {A, B}
        self.use: Any = None  # None: the current adapters; a task index; BASE; MERGED
        self._merged: dict[str, torch.Tensor] = {}
        self._layers: dict[str, Any] = {}
        self._handles: list = []
        self._started = 0  # the step count at the current task's start

    # -- set-up -------------------------------------------------------------------------------
    def _install(self, state) -> None:
        """Freeze the base, create the adapters and their hooks, give the optimiser only them."""
        if self.current:
            return
        model = state.model
        names = adaptable_layers(model, self.layers)
        self.layers = names
        self._layers = {n: model.get_submodule(n) for n in names}
        self.current = {n: Adapter(layer, self.rank, self.alpha) for n, layer in self._layers.items()}
        for p in model.parameters():
            p.requires_grad_(False)
        self._handles = attach(model, names, self._extra)
        params = [p for a in self.current.values() for p in a.parameters()]
        groups = getattr(state.optimizer, "param_groups", [])
        for i, group in enumerate(groups):
            group["params"][:] = params if i == 0 else []

    def begin_task(self, state) -> None:
        self._install(state)
        g = torch_generator(state.seed, f"lora:{state.task.index}", next(iter(self.current.values())).lora_A.device)
        for adapter in self.current.values():
            adapter.reset(g)
        self._started = state.step
        reset = getattr(state.optimizer, "reset_state", None)
        if reset is not None:  # a new adapter starts with no momentum, as a new optimiser would
            reset()

    def end_task(self, state) -> None:
        if state.step == self._started:  # no step on this task (``--train-tasks``): no adapter kept
            return
        self.finished[state.task.index] = {n: a.factors() for n, a in self.current.items()}
        self._merge()

    def _merge(self) -> None:
        self._merged = {n: sum(delta_weight(layer, f[n]["A"], f[n]["B"], self.alpha / self.rank)
                               for f in self.finished.values())
                        for n, layer in self._layers.items()} if self.finished else {}

    # -- forward ------------------------------------------------------------------------------
    def _extra(self, name: str, layer, x: torch.Tensor) -> Optional[torch.Tensor]:
        use = self.use
        if use is None:
            a = self.current[name]
            return low_rank_forward(layer, x, a.lora_A, a.lora_B, a.scaling)
        if use == BASE:
            return None
        if use == MERGED:
            return delta_forward(layer, x, self._merged[name])
        f = self.finished[use][name]
        return low_rank_forward(layer, x, f["A"], f["B"], self.alpha / self.rank)

    @contextmanager
    def using(self, which: Any):
        """Forward passes inside use ``which``: a finished task's adapter, ``"base"`` or ``"merged"``."""
        before, self.use = self.use, which
        try:
            yield
        finally:
            self.use = before

    @torch.no_grad()
    def scores(self, model, x: torch.Tensor, task: Optional[int] = None) -> torch.Tensor:
        if not self.current:
            return model(x)
        if task is None:
            which = MERGED if self.finished else BASE
        else:
            which = task if task in self.finished else BASE
        with self.using(which):
            return model(x)

    scores.task_aware = True  # evaluate() passes each test set's task for its task-IL scores

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"layers": self.layers, "finished": self.finished, "started": self._started,
                "current": {n: a.factors() for n, a in self.current.items()}}

    def load_state_dict(self, saved: dict, context=None) -> None:
        self.finished = {int(t): f for t, f in saved["finished"].items()}
        self._started = int(saved.get("started", 0))
        if saved["current"]:
            self.layers = list(saved["layers"])
            self._install(context)
            for n, a in self.current.items():
                a.load_factors(saved["current"][n])
        self._merge()

    def adapters(self) -> dict[str, Any]:
        """What ``adapters.pt`` holds: rank, α, scaling, the layers and each finished task's factors."""
        return {"kind": "lora-adapters", "rank": self.rank, "alpha": self.alpha, "scaling": self.alpha / self.rank,
                "layers": list(self.layers or []),
                "tasks": {t: {n: {k: v.cpu() for k, v in f.items()} for n, f in fs.items()}
                          for t, fs in sorted(self.finished.items())}}

    def run_files(self) -> dict[str, bytes]:
        """Files for the finished run's folder: ``adapters.pt``."""
        buffer = io.BytesIO()
        torch.save(self.adapters(), buffer)
        return {ADAPTERS_FILE: buffer.getvalue()}
