"""The training loop: for each task, for each batch, one step; hooks at task ends; evaluation
of every task after every task. Everything a method does lives in its recipe's terms and
plug-ins, so this file stays the same for all of them."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn as nn

from lifelong.data.streams import Stream, Task
from lifelong.data.transforms import random_crop_flip
from lifelong.errors import DivergedError
from lifelong.evaluate import evaluate
from lifelong.memory import ReservoirBuffer
from lifelong.methods import Recipe
from lifelong.objective import StepBatch
from lifelong.seeding import numpy_generator, torch_generator


class Optimizer(Protocol):
    """What the loop needs of an optimiser: :class:`lifelong.optim.SGD` or any ``torch.optim`` one."""

    def zero_grad(self, set_to_none: bool = True) -> None: ...
    def step(self) -> None: ...


class Events(Protocol):
    """Receives progress from the loop (progress bars, logs). All methods are optional."""

    def task_start(self, task: Task, steps: int) -> None: ...
    def step(self, loss: float) -> None: ...
    def task_end(self, task: Task, class_il: list[float], task_il: list[float]) -> None: ...


class _Quiet:
    def task_start(self, task: Task, steps: int) -> None:
        pass

    def step(self, loss: float) -> None:
        pass

    def task_end(self, task: Task, class_il: list[float], task_il: list[float]) -> None:
        pass


@dataclass
class TrainState:
    """What hooks of terms and plug-ins may read and change."""

    model: nn.Module
    optimizer: Optimizer
    stream: Stream
    recipe: Recipe
    memory: ReservoirBuffer | None
    task: Task | None = None
    step: int = 0


@dataclass
class RunResult:
    """Accuracy matrices (rows: after training task i; columns: task j; percent) and run facts.

    ``init_*``: accuracy of the randomly initialised model on each task (forward transfer needs
    it). ``status`` is ``"complete"``, ``"diverged"`` or ``"interrupted"`` (then ``message`` says where).
    """

    class_il: list[list[float]] = field(default_factory=list)
    task_il: list[list[float]] = field(default_factory=list)
    init_class_il: list[float] = field(default_factory=list)
    init_task_il: list[float] = field(default_factory=list)
    status: str = "complete"
    message: str = ""
    steps: int = 0
    train_seconds: float = 0.0


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
    memory = None
    if recipe.memory == "reservoir":
        if buffer_size < 1:
            raise ValueError(f"method {recipe.name!r} needs a memory: set buffer_size >= 1")
        memory = ReservoirBuffer(buffer_size, numpy_generator(seed, "memory"))
    state = TrainState(model, optimizer, stream, recipe, memory)
    result = RunResult()
    result.init_class_il, result.init_task_il = evaluate(model, stream)
    order_generator = torch_generator(seed, "batch-order")
    augment_generator = torch_generator(seed, "augment")
    replay_batch_size = batch_size if replay_batch_size is None else replay_batch_size
    hooks = {name: recipe.objective.hooks(name) + [getattr(p, name) for p in recipe.plugins if hasattr(p, name)]
             for name in ("begin_task", "end_task")}
    before_step = [p.before_step for p in recipe.plugins if hasattr(p, "before_step")]
    after_backward = [p.after_backward for p in recipe.plugins if hasattr(p, "after_backward")]
    after_step = [p.after_step for p in recipe.plugins if hasattr(p, "after_step")]
    objective = recipe.objective
    use_replay = memory is not None and objective.uses_replay
    stored = objective.stores
    device = stream.source.train_x.device
    tasks = [stream.joint()] if recipe.joint else stream.tasks
    start_time = time.perf_counter()
    model.train()
    try:
        for task in tasks:
            state.task = task
            for hook in hooks["begin_task"]:
                hook(state)
            n = task.num_train
            events.task_start(task, epochs * math.ceil(n / batch_size))
            for _ in range(epochs):
                perm = torch.randperm(n, generator=order_generator).to(device)
                order = task.train_idx[perm]
                order_task = None if task.train_task is None else task.train_task[perm]
                for start in range(0, n, batch_size):
                    # --- one step: current batch (+ replay) -> one forward -> objective -> update
                    idx = order[start:start + batch_size]
                    task_ids = task.index if order_task is None else order_task[start:start + batch_size]
                    x = stream.inputs("train", idx, task_ids)
                    y = stream.labels("train", idx)
                    replay = memory.sample(replay_batch_size) if use_replay and len(memory) else None
                    inputs = x if replay is None else torch.cat([x, replay["x"]])
                    if augment_padding:
                        inputs = random_crop_flip(inputs, augment_padding, augment_generator)
                    batch = StepBatch(model, task.index, inputs[: len(y)], y, None, replay)
                    for hook in before_step:
                        hook(state, batch)
                    batch.outputs = model(inputs)
                    loss = objective(batch)
                    value = loss.item()
                    if not math.isfinite(value):
                        raise DivergedError(f"the loss became {value} at task {task.index}, step {state.step}",
                                            task=task.index, step=state.step)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    for hook in after_backward:
                        hook(state, batch)
                    optimizer.step()
                    for hook in after_step:
                        hook(state, batch)
                    if memory is not None:
                        extra = {"logits": batch.logits.detach()} if "logits" in stored else {}
                        tids = torch.full_like(y, task.index) if order_task is None else task_ids
                        memory.add(x=x, y=y, task=tids, **extra)
                    state.step += 1
                    events.step(value)
            for hook in hooks["end_task"]:
                hook(state)
            class_il, task_il = evaluate(model, stream)
            result.class_il.append(class_il)
            result.task_il.append(task_il)
            events.task_end(task, class_il, task_il)
    except DivergedError as exc:
        result.status, result.message = "diverged", str(exc)
    except KeyboardInterrupt:
        result.status, result.message = "interrupted", f"interrupted at task {state.task.index}, step {state.step}"
    result.steps = state.step
    result.train_seconds = time.perf_counter() - start_time
    return result
