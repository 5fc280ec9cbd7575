"""The training loop: for each task, for each batch, one step; hooks around tasks and steps;
evaluation of every task after every task. Everything a method does lives in its recipe's
memory, terms and plug-ins, so this file is the same for all of them."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch
import torch.nn as nn

from lifelong.checkpoint import CheckpointStore
from lifelong.components import check_resumable, hooks
from lifelong.data.streams import Stream, Task
from lifelong.data.transforms import random_crop_flip
from lifelong.errors import DivergedError
from lifelong.evaluate import evaluate
from lifelong.memory import MEMORIES, Memory
from lifelong.methods import Recipe
from lifelong.nets.heads import CosineLinear
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
    batch_size: int = 10
    epochs: int = 1
    seed: int = 0
    cache: dict = field(default_factory=dict)  # what hooks compute once and share (e.g. a task's Fisher)


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
    skipped_steps: int = 0
    train_seconds: float = 0.0


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


@dataclass
class Checkpointing:
    """Checkpoints for :func:`train`: where (``store``), how often in steps besides every task end
    (``every``, 0 for task ends only), the checkpoint to resume from (``resume``), a test of
    whether the process was asked to stop, and a fingerprint of the run's configuration."""

    store: CheckpointStore
    every: int = 0
    resume: dict | None = None
    stop_requested: Callable[[], bool] = lambda: False
    config_hash: str = ""


def _state_of(component: Any) -> Any:
    return component.state_dict() if hasattr(component, "state_dict") else None


def snapshot(state: "TrainState", result: "RunResult", position: Position, rngs: dict[str, torch.Generator],
             monitor: "LossMonitor", elapsed: float, config_hash: str) -> dict[str, Any]:
    """Everything needed to continue exactly, as plain containers and tensors."""
    recipe = state.recipe
    return {
        "config_hash": config_hash,
        "position": {"task": position.task, "epoch": position.epoch, "start": position.start,
                     "order_state": position.order_state, "step": state.step},
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "memory": None if state.memory is None else state.memory.state_dict(),
        "terms": [_state_of(term) for _, term in recipe.objective.terms],
        "plugins": [_state_of(plugin) for plugin in recipe.plugins],
        "rng": {**{name: g.get_state() for name, g in rngs.items()}, "torch": torch.get_rng_state()},
        "monitor": {"total": monitor.total, "count": monitor.count},
        "result": {"class_il": result.class_il, "task_il": result.task_il, "init_class_il": result.init_class_il,
                   "init_task_il": result.init_task_il, "train_seconds": elapsed,
                   "skipped_steps": result.skipped_steps},
    }


def restore(payload: dict[str, Any], state: "TrainState", result: "RunResult", rngs: dict[str, torch.Generator],
            monitor: "LossMonitor") -> Position:
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
    saved = payload["result"]
    result.class_il, result.task_il = saved["class_il"], saved["task_il"]
    result.init_class_il, result.init_task_il = saved["init_class_il"], saved["init_task_il"]
    result.train_seconds, result.skipped_steps = saved["train_seconds"], int(saved["skipped_steps"])
    p = payload["position"]
    state.step = int(p["step"])
    return Position(int(p["task"]), int(p["epoch"]), int(p["start"]), p["order_state"])


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
    checkpointing: Checkpointing | None = None,
    on_nan: str = "stop",
) -> RunResult:
    """Train ``model`` on ``stream`` with ``recipe``; evaluate on every task after every task.

    With ``checkpointing``, a checkpoint is written at every task end and every
    ``checkpointing.every`` steps, training continues from ``checkpointing.resume`` when given,
    and stops at the next step boundary (after a checkpoint) when ``stop_requested()`` turns true.
    A non-finite loss stops training (``on_nan="stop"``; a checkpoint from before the bad step is
    kept) or skips that step's update (``"skip"``; after 100 in a row it stops); the result then
    holds the rows measured so far and ``status == "diverged"``.
    """
    if on_nan not in ("stop", "skip"):
        raise ValueError(f"on_nan must be 'stop' or 'skip', got {on_nan!r}")
    events = events or _Quiet()
    objective = recipe.objective
    device = stream.source.train_x.device
    first = next(model.parameters(), None)
    if first is not None and first.device != device:
        raise ValueError(f"the model is on {first.device} but the stream's data on {device}; move one of them")
    if recipe.head == "cosine" and not isinstance(getattr(model, "classifier", None), CosineLinear):
        raise ValueError(f"method {recipe.name!r} needs a cosine classifier: call "
                         f"lifelong.nets.set_head(model, 'cosine') before building the optimiser")
    memory = _memory(recipe, stream, seed, buffer_size, epochs)
    replay_batch_size = batch_size if replay_batch_size is None else replay_batch_size
    state = TrainState(model, optimizer, stream, recipe, memory, replay_batch_size, batch_size=batch_size,
                       epochs=epochs, seed=seed)
    components = ([memory] if memory is not None else []) + [t for _, t in objective.terms] + list(recipe.plugins)
    if checkpointing is not None:
        check_resumable(components)
    begin_task, end_task = hooks(components, "begin_task"), hooks(components, "end_task")
    training_set = hooks(components, "training_set")
    before_step, after_backward = hooks(components, "before_step"), hooks(components, "after_backward")
    after_step = hooks(components, "after_step")
    scores = next((p.scores for p in recipe.plugins if hasattr(p, "scores")), None)
    memory_add = getattr(memory, "add", None)
    draws = objective.draws if memory is not None and objective.uses_replay else 0
    separate = recipe.replay_forward == "separate"
    store_logits = "logits" in objective.stores
    rngs = {"order": torch_generator(seed, "batch-order"), "augment": torch_generator(seed, "augment", device)}
    pad_fill = stream.pad_value() if augment_padding else None
    monitor = LossMonitor(every=1 if device.type == "cpu" or on_nan == "skip" else 25)
    tasks = [stream.joint()] if recipe.joint else stream.tasks

    result = RunResult()
    started, previous_seconds = time.perf_counter(), 0.0
    position = Position()
    if checkpointing is not None and checkpointing.resume is not None:
        position = restore(checkpointing.resume, state, result, rngs, monitor)
        previous_seconds = result.train_seconds

    def save(at: Position) -> None:
        if checkpointing is not None:
            elapsed = previous_seconds + time.perf_counter() - started
            payload = snapshot(state, result, at, rngs, monitor, elapsed, checkpointing.config_hash)
            checkpointing.store.save(payload, state.step)

    skipped = 0
    try:
        if not result.init_class_il:
            result.init_class_il, result.init_task_il = evaluate(model, stream, scores=scores)
        model.train()
        for t in range(position.task, len(tasks)):
            task = tasks[t]
            state.task = task
            state.cache.clear()
            resume_here = position if (t == position.task and position.mid_task) else None
            if resume_here is None:
                for hook in begin_task:
                    hook(state)
            train_set = task
            for hook in training_set:
                train_set = hook(state, train_set)
            n = train_set.num_train
            task_draws = draws if task.index >= recipe.replay_from else 0
            first_epoch = resume_here.epoch if resume_here else 0
            events.task_start(task, (epochs - first_epoch) * math.ceil(n / batch_size)
                              - (resume_here.start // batch_size if resume_here else 0))
            task_ids_full = torch.full((batch_size,), task.index, dtype=torch.long, device=device)
            for epoch in range(first_epoch, epochs):
                if resume_here is not None and resume_here.order_state is not None:
                    rngs["order"].set_state(resume_here.order_state)
                order_state = rngs["order"].get_state()
                perm = torch.randperm(n, generator=rngs["order"]).to(device)
                order = train_set.train_idx[perm]
                order_task = None if train_set.train_task is None else train_set.train_task[perm]
                for start in range(resume_here.start if resume_here else 0, n, batch_size):
                    # one step: current batch (+ replay draws) -> one forward -> objective -> update
                    idx = order[start:start + batch_size]
                    task_ids = task_ids_full[: len(idx)] if order_task is None else order_task[start:start + batch_size]
                    x = stream.inputs("train", idx, task.index if order_task is None else task_ids)
                    y = stream.labels("train", idx)
                    replays = [memory.sample(replay_batch_size) for _ in range(task_draws)] \
                        if task_draws and len(memory) else []
                    inputs = torch.cat([x] + [r["x"] for r in replays]) if replays else x
                    if augment_padding:
                        inputs = random_crop_flip(inputs, augment_padding, rngs["augment"], pad_fill)
                    batch = StepBatch(model, task.index, inputs, y, replays, separate=separate)
                    for hook in before_step:
                        hook(state, batch)
                    batch.outputs = batch.forward()
                    loss = objective(batch)
                    try:
                        value = monitor.observe(loss, task.index, state.step)
                    except DivergedError:
                        skipped += 1
                        if on_nan == "stop" or skipped > 100:
                            save(Position(t, epoch, start, order_state))
                            raise
                        result.skipped_steps += 1
                        optimizer.zero_grad(set_to_none=True)
                        state.step += 1
                        events.step(None)
                        continue
                    skipped = 0
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
                    if checkpointing is not None:
                        due = checkpointing.every and state.step % checkpointing.every == 0
                        if due or checkpointing.stop_requested():
                            save(Position(t, epoch, start + batch_size, order_state))
                        if checkpointing.stop_requested():
                            raise StopRequested
                resume_here = None
            for hook in end_task:
                hook(state)
            class_il, task_il = evaluate(model, stream, scores=scores)
            result.class_il.append(class_il)
            result.task_il.append(task_il)
            events.task_end(task, class_il, task_il)
            save(Position(t + 1))
            if checkpointing is not None and checkpointing.stop_requested():
                raise StopRequested
    except DivergedError as exc:
        result.status, result.message = "diverged", str(exc)
    except StopRequested:
        result.status, result.message = "interrupted", f"stopped at task {state.task.index}, step {state.step}"
    except KeyboardInterrupt:
        where = f"task {state.task.index}, step {state.step}" if state.task is not None else "the start"
        result.status, result.message = "interrupted", f"interrupted at {where}"
    result.steps = state.step
    result.train_seconds = previous_seconds + time.perf_counter() - started
    return result
