"""The training loop: for each task, for each batch, one step; hooks around tasks and steps;
evaluation of every task after every task. Everything a method does lives in its recipe's
memory, terms and plug-ins, so this file is the same for all of them."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn as nn

from lifelong.data.streams import Stream, Task
from lifelong.data.transforms import random_crop_flip
from lifelong.errors import DivergedError
from lifelong.evaluate import evaluate
from lifelong.memory import MEMORIES, Memory
from lifelong.methods import Recipe
from lifelong.objective import StepBatch
from lifelong.seeding import numpy_generator, torch_generator


class Optimizer(Protocol):
    """What the loop needs of an optimiser: :class:`lifelong.optim.SGD` or any ``torch.optim`` one."""

    def zero_grad(self, set_to_none: bool = True) -> None: ...
    def step(self) -> None: ...


class Events(Protocol):
    """Receives progress from the loop (progress bars, logs)."""

    def task_start(self, task: Task, steps: int) -> None: ...
    def step(self, loss: float | None) -> None: ...  # None: the loss was not read this step
    def task_end(self, task: Task, class_il: list[float], task_il: list[float]) -> None: ...


class _Quiet:
    def task_start(self, task: Task, steps: int) -> None:
        pass

    def step(self, loss: float | None) -> None:
        pass

    def task_end(self, task: Task, class_il: list[float], task_il: list[float]) -> None:
        pass


@dataclass
class TrainState:
    """What the hooks of memories, terms and plug-ins may read and change."""

    model: nn.Module
    optimizer: Optimizer
    stream: Stream
    recipe: Recipe
    memory: Memory | None
    replay_batch_size: int
    task: Task | None = None
    step: int = 0


@dataclass
class RunResult:
    """Accuracy matrices (rows: after training task i; columns: task j; percent) and run facts.

    ``init_*``: accuracy of the randomly initialised model on each task (forward transfer needs
    it). ``status`` is ``"complete"``, ``"diverged"`` or ``"interrupted"`` (then ``message``
    says where).
    """

    class_il: list[list[float]] = field(default_factory=list)
    task_il: list[list[float]] = field(default_factory=list)
    init_class_il: list[float] = field(default_factory=list)
    init_task_il: list[float] = field(default_factory=list)
    status: str = "complete"
    message: str = ""
    steps: int = 0
    train_seconds: float = 0.0


def _hooks(components: list[Any], name: str) -> list:
    return [getattr(c, name) for c in components if hasattr(c, name)]


class LossMonitor:
    """Stops training on a non-finite loss. On the CPU it looks at every step's loss before
    the update; on a GPU reading a value waits for the device, so it sums the losses there and
    looks every ``every`` steps (a bad step may then already be applied; the run stops anyway)."""

    def __init__(self, every: int = 1) -> None:
        self.every = every
        self.total: torch.Tensor | None = None
        self.count = 0

    def observe(self, loss: torch.Tensor, task: int, step: int) -> float | None:
        """The loss as a number when it was read this step, else ``None``."""
        if self.every == 1:
            value = loss.item()
        else:
            self.total = loss.detach() if self.total is None else self.total + loss.detach()
            self.count += 1
            if self.count < self.every:
                return None
            value, self.total, self.count = self.total.item() / self.count, None, 0
        if not math.isfinite(value):
            span = f"step {step}" if self.every == 1 else f"one of steps {step - self.every + 1}..{step}"
            raise DivergedError(f"the loss became {value} at task {task}, {span}", task=task, step=step)
        return value


def _memory(recipe: Recipe, stream: Stream, seed: int, buffer_size: int, epochs: int) -> Memory | None:
    """The recipe's memory, its storage bounded by the number of examples the run will offer."""
    if recipe.memory is None:
        return None
    if buffer_size < 1:
        raise ValueError(f"method {recipe.name!r} needs a memory: set buffer_size >= 1")
    offers = epochs * (stream.joint().num_train if recipe.joint else sum(t.num_train for t in stream.tasks))
    return MEMORIES[recipe.memory](buffer_size, numpy_generator(seed, "memory"),
                                   sample_generator=numpy_generator(seed, "memory-sample"),
                                   max_rows=offers, device=stream.source.train_x.device)


def train(
    stream: Stream,
    model: nn.Module,
    recipe: Recipe,
    optimizer: Optimizer,
    *,
    seed: int,
    epochs: int = 1,
    batch_size: int = 10,
    buffer_size: int = 0,
    replay_batch_size: int | None = None,
    augment_padding: int = 0,
    events: Events | None = None,
) -> RunResult:
    """Train ``model`` on ``stream`` with ``recipe``; evaluate on every task after every task.

    A non-finite loss stops training; the result then holds the rows measured so far and
    ``status == "diverged"``.
    """
    events = events or _Quiet()
    objective = recipe.objective
    device = stream.source.train_x.device
    first = next(model.parameters(), None)
    if first is not None and first.device != device:
        raise ValueError(f"the model is on {first.device} but the stream's data on {device}; move one of them")
    memory = _memory(recipe, stream, seed, buffer_size, epochs)
    replay_batch_size = batch_size if replay_batch_size is None else replay_batch_size
    state = TrainState(model, optimizer, stream, recipe, memory, replay_batch_size)
    components = ([memory] if memory is not None else []) + [t for _, t in objective.terms] + list(recipe.plugins)
    begin_task, end_task = _hooks(components, "begin_task"), _hooks(components, "end_task")
    before_step, after_backward = _hooks(components, "before_step"), _hooks(components, "after_backward")
    after_step = _hooks(components, "after_step")
    scores = next((p.scores for p in recipe.plugins if hasattr(p, "scores")), None)
    memory_add = getattr(memory, "add", None)
    draws = objective.draws if memory is not None and objective.uses_replay else 0
    store_logits = "logits" in objective.stores
    order_generator = torch_generator(seed, "batch-order")
    augment_generator = torch_generator(seed, "augment", device)
    pad_fill = stream.pad_value() if augment_padding else None
    monitor = LossMonitor(every=1 if device.type == "cpu" else 25)

    result = RunResult()
    start_time = time.perf_counter()
    try:
        result.init_class_il, result.init_task_il = evaluate(model, stream, scores=scores)
        model.train()
        for task in [stream.joint()] if recipe.joint else stream.tasks:
            state.task = task
            for hook in begin_task:
                hook(state)
            n = task.num_train
            events.task_start(task, epochs * math.ceil(n / batch_size))
            task_ids_full = torch.full((batch_size,), task.index, dtype=torch.long, device=device)
            for _ in range(epochs):
                perm = torch.randperm(n, generator=order_generator).to(device)
                order = task.train_idx[perm]
                order_task = None if task.train_task is None else task.train_task[perm]
                for start in range(0, n, batch_size):
                    # one step: current batch (+ replay draws) -> one forward -> objective -> update
                    idx = order[start:start + batch_size]
                    task_ids = task_ids_full[: len(idx)] if order_task is None else order_task[start:start + batch_size]
                    x = stream.inputs("train", idx, task.index if order_task is None else task_ids)
                    y = stream.labels("train", idx)
                    replays = [memory.sample(replay_batch_size) for _ in range(draws)] if draws and len(memory) else []
                    inputs = torch.cat([x] + [r["x"] for r in replays]) if replays else x
                    if augment_padding:
                        inputs = random_crop_flip(inputs, augment_padding, augment_generator, pad_fill)
                    batch = StepBatch(model, task.index, inputs, y, replays)
                    for hook in before_step:
                        hook(state, batch)
                    batch.outputs = model(inputs)
                    loss = objective(batch)
                    value = monitor.observe(loss, task.index, state.step)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    for hook in after_backward:
                        hook(state, batch)
                    optimizer.step()
                    for hook in after_step:
                        hook(state, batch)
                    if memory_add is not None:
                        if store_logits:
                            memory_add(x=x, y=y, task=task_ids, logits=batch.logits.detach())
                        else:
                            memory_add(x=x, y=y, task=task_ids)
                    state.step += 1
                    events.step(value)
            for hook in end_task:
                hook(state)
            class_il, task_il = evaluate(model, stream, scores=scores)
            result.class_il.append(class_il)
            result.task_il.append(task_il)
            events.task_end(task, class_il, task_il)
    except DivergedError as exc:
        result.status, result.message = "diverged", str(exc)
    except KeyboardInterrupt:
        where = f"task {state.task.index}, step {state.step}" if state.task is not None else "the start"
        result.status, result.message = "interrupted", f"interrupted at {where}"
    result.steps = state.step
    result.train_seconds = time.perf_counter() - start_time
    return result
