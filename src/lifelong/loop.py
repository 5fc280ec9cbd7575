"""The training loop: for each task, for each batch, one step; hooks around tasks and steps;
evaluation of every task after every task. Everything a method does lives in its recipe's
memory, terms and plug-ins, so this file is the same for all of them.

:func:`train` reads top to bottom: tasks, batches (:func:`batches`), one :class:`Step` each,
checkpoints at step and task boundaries (:mod:`lifelong.resume`), evaluation after each task
(and, with ``eval_every``, anytime evaluation: :mod:`lifelong.anytime`, called by :class:`_Run`).
What it needs before the first step is built by :func:`_setup`."""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Protocol

import torch
import torch.nn as nn

from lifelong import distributed
from lifelong.anytime import AnytimeEvaluation
from lifelong.components import boundary_need, check_resumable, hooks
from lifelong.data.streams import Stream, Task
from lifelong.data.strong_augment import VIEW_AUGMENTS, strong_augment
from lifelong.data.transforms import random_crop_flip
from lifelong.errors import ConfigError, DivergedError
from lifelong.evaluate import evaluate
from lifelong.memory import MEMORIES, Memory
from lifelong.methods import Recipe
from lifelong.nets.heads import CosineLinear
from lifelong.objective import StepBatch
from lifelong.precision import Precision, build_precision
from lifelong.resume import Checkpointing, Position, StopRequested, restore, snapshot  # noqa: F401
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
    says where). ``anytime``: with anytime evaluation, its period, curve and time
    (:meth:`lifelong.anytime.AnytimeEvaluation.report`); else ``None``.
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
    anytime: dict | None = None


class LossMonitor:
    """Watches the loss for non-finite values and applies the run's policy. On the CPU it looks at
    every step's loss before the update; on a GPU reading a value waits for the device, so it
    sums the losses there and looks every ``every`` steps (a bad step may then already be
    applied; the run stops anyway). ``on_nan="stop"`` ends the run; ``"skip"`` drops the
    step's update, and ends the run after 100 bad steps in a row. Messages count tasks from 1
    (``task 2/5``), as the tables do. ``task_loss`` and ``task_reads`` sum the losses read in the
    task in progress; a checkpoint keeps them, so that a resumed run's mean loss of the task
    (``run.log``) covers the steps before the resume too."""

    def __init__(self, every: int = 1, on_nan: str = "stop", num_tasks: int | None = None) -> None:
        if on_nan not in ("stop", "skip"):
            raise ValueError(f"on_nan must be 'stop' or 'skip', got {on_nan!r}")
        self.every, self.on_nan, self.num_tasks = every, on_nan, num_tasks
        self.total: torch.Tensor | None = None
        self.count = 0
        self.bad_in_a_row = 0
        self.task_loss, self.task_reads = 0.0, 0

    def observe(self, loss: torch.Tensor, task: int, step: int) -> float | None:
        """The loss as a number when it was read this step, else ``None``; a non-finite one
        raises :class:`DivergedError`."""
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
            raise DivergedError(f"the loss became {value} at {task_name(task, self.num_tasks)}, {span}",
                                task=task, step=step)
        return value

    def check(self, loss: torch.Tensor, task: int, step: int) -> tuple[bool, float | None]:
        """``(apply the update?, the loss read this step or None)`` under the policy."""
        try:
            value = self.observe(loss, task, step)
        except DivergedError:
            self.bad_in_a_row += 1
            if self.on_nan == "stop" or self.bad_in_a_row > 100:
                raise
            return False, None
        self.bad_in_a_row = 0
        if value is not None:
            self.task_loss += value
            self.task_reads += 1
        return True, value


def check_memory_capacity(recipe: Recipe, stream: Stream, buffer_size: int) -> None:
    """Refuse a memory too small for the stream's classes and tasks (e.g. herding needs a slot
    per class), in one line; also called before a dry run returns, so that it catches this."""
    check = getattr(MEMORIES[recipe.memory], "capacity_problem", None) if recipe.memory else None
    classes = len({c for task in stream.tasks for c in task.classes})
    problem = check(buffer_size, classes, stream.num_tasks) if check else None
    if problem:
        raise ConfigError(f"method {recipe.name!r}: {problem}")


TASK_FREE_METHODS = "er, der, derpp, pcr or finetune"  # presets that need no task boundary (joint too)


def check_task_free(recipe: Recipe, stream_name: str) -> None:
    """Refuse, in one line, a recipe that cannot learn from a task-free stream (one task, no
    boundaries): one whose memory, terms or plug-ins need task boundaries (their
    ``needs_task_boundaries``, :mod:`lifelong.components`), or whose replay starts after the first
    task (``replay_from``). Also called where a run is prepared, so that ``--dry-run`` catches it."""
    if recipe.joint:  # the joint bound trains on everything at once: it needs no boundary
        return
    parts = ([("memory", MEMORIES[recipe.memory])] if recipe.memory in MEMORIES else []) + \
        [("term", t) for _, t in recipe.objective.terms] + [("plug-in", p) for p in recipe.plugins]
    why = None
    if recipe.replay_from > 0:
        why = (f"its replay starts at task {recipe.replay_from + 1} (`replay_from: {recipe.replay_from}`), so on one "
               f"task it would never replay")
    for kind, component in parts if why is None else []:
        reason = boundary_need(component)
        if reason:
            name = getattr(component, "name", "") or getattr(component, "__name__", type(component).__name__)
            why = f"its {kind} {name!r} needs task boundaries ({reason})"
            break
    if why:
        raise ConfigError(f"method {recipe.name!r} cannot learn from the task-free stream {stream_name}: {why}; "
                          f"use {TASK_FREE_METHODS} instead")


def _memory(recipe: Recipe, stream: Stream, seed: int, buffer_size: int, epochs: int) -> Memory | None:
    """The recipe's memory, its storage bounded by the number of examples the run will offer."""
    if recipe.memory is None:
        return None
    if buffer_size < 1:
        raise ValueError(f"method {recipe.name!r} needs a memory: set buffer_size >= 1")
    check_memory_capacity(recipe, stream, buffer_size)
    offers = epochs * (stream.joint().num_train if recipe.joint else sum(t.num_train for t in stream.tasks))
    sharded = sharded_memory(recipe)  # several processes: each keeps its part of a step-filled memory
    capacity = distributed.part(buffer_size) if sharded else buffer_size
    return MEMORIES[recipe.memory](capacity, numpy_generator(seed, distributed.stream_name("memory") if sharded
                                                             else "memory"),
                                   sample_generator=numpy_generator(seed, distributed.stream_name("memory-sample")),
                                   max_rows=offers, device=stream.source.train_x.device, **recipe.memory_options)


def sharded_memory(recipe: Recipe) -> bool:
    """Whether each rank of several processes keeps its own part of the recipe's memory
    (:func:`shards`); the others are replicated (:mod:`lifelong.distributed`)."""
    return distributed.parallel() and recipe.memory is not None and shards(MEMORIES[recipe.memory])


def shards(memory: Any) -> bool:
    """Whether a memory (class or instance) is dealt across the ranks, each keeping ``capacity /
    world`` slots: one filled step by step (``add``: the reservoir) or one that says
    ``sharded = True`` (the activation memory, filled at task ends); the other task-end
    memories are computed alike on every rank."""
    return hasattr(memory, "add") or getattr(memory, "sharded", False) is True


@dataclass
class Hooks:
    """Each hook of the run's components (memory, terms, plug-ins; :mod:`lifelong.components`):
    one field per hook the loop calls, named as in :data:`lifelong.components.HOOKS`."""

    begin_task: list
    training_set: list
    before_step: list
    after_backward: list
    after_step: list
    end_task: list

    @classmethod
    def of(cls, components: list[Any]) -> "Hooks":
        return cls(**{f.name: hooks(components, f.name) for f in fields(cls)})


def batches(stream: Stream, task: Task, train_set: Task, epochs: int, batch_size: int, order: torch.Generator,
            resume: Position, epoch_order: Callable[[int, torch.Generator], torch.Tensor] | None = None):
    """``(epoch, start, order_state, x, y, task_ids)`` for every batch of ``train_set``, from
    ``resume`` on; each epoch is a permutation drawn from ``order`` (its state at the epoch's
    start is ``order_state``, what a checkpoint needs to draw it again), or the stored order of
    an ``ordered`` task (a task-free stream's). ``epoch_order(epoch, order)``, when given,
    replaces the permutation: the positions in ``train_set`` the epoch visits, in order, drawn
    only from ``order`` or from the run's seed (a plug-in's ``epoch_order``, e.g. view-batch
    replay: :mod:`lifelong.plugins.view_batch`). With several processes, each gets its
    :func:`lifelong.distributed.share` of every batch (a batch smaller than the number of
    processes is skipped); ``start`` stays the global position."""
    device, n = train_set.train_idx.device, train_set.num_train
    same_task = torch.full((batch_size,), task.index, dtype=torch.long, device=device)
    world = distributed.world()
    for epoch in range(resume.epoch, epochs):
        if epoch == resume.epoch and resume.order_state is not None:
            order.set_state(resume.order_state)
        order_state = order.get_state()
        if epoch_order is not None:
            perm = epoch_order(epoch, order).to(device)
        else:
            perm = torch.arange(n, device=device) if train_set.ordered else torch.randperm(n, generator=order).to(device)
        idx_all = train_set.train_idx[perm]
        ids_all = None if train_set.train_task is None else train_set.train_task[perm]
        for start in range(resume.start if epoch == resume.epoch else 0, len(perm), batch_size):
            idx = idx_all[start:start + batch_size]
            ids = None if ids_all is None else ids_all[start:start + batch_size]
            if world > 1:  # several processes: this rank's share of the global batch (lifelong.distributed)
                if len(idx) < world:
                    continue
                lo, hi = distributed.share(len(idx))
                idx, ids = idx[lo:hi], None if ids is None else ids[lo:hi]
            ids = same_task[: len(idx)] if ids_all is None else ids
            x = stream.inputs("train", idx, task.index if ids_all is None else ids)
            yield epoch, start, order_state, x, stream.labels("train", idx), ids


@dataclass
class Step:
    """One step: the current batch and its replay draws, one forward, the objective, the update,
    the hooks around them, and the memory offered the batch. Returns whether the update was
    applied (the loss monitor may skip it) and the loss if it was read.

    ``augment``: the benchmark's augmentation of the inputs; ``views``: the recipe's second,
    augmented copy of them (``views: strong``), made from the inputs before ``augment``;
    ``two_views``: the inputs are replaced by another draw of ``views`` (before the views, as
    PRD's ``x1, x2 = aug(x), aug(x)``), and ``augment`` is not applied."""

    state: TrainState
    hooks: Hooks
    monitor: LossMonitor
    augment: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None  # (inputs, tasks)
    repeats: int = 1  # copies of each current example in the step, back to back (view-batch replay)
    views: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None  # (inputs, tasks)
    two_views: bool = False
    parallel: bool = False  # several processes: the monitor reads the ranks' mean loss, gradients are averaged
    precision: Precision | None = None  # mixed precision (lifelong.precision); None: float32
    stop: Callable[[], bool] | None = None  # several processes: the local stop request, agreed with the loss
    stop_seen: torch.Tensor | None = None  # ... and whether any rank asked, after the step (a device tensor)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, task_ids: torch.Tensor, draws: int) -> tuple[bool, float | None]:
        state, memory, objective = self.state, self.state.memory, self.state.recipe.objective
        replays = [memory.sample(state.replay_batch_size) for _ in range(draws)] if draws and len(memory) else []
        split = getattr(memory, "split", None)  # hidden-activation replay: replays enter after the split
        inputs, views, seen_y = self.inputs(x, y, [] if split is not None else replays, task_ids)
        batch = StepBatch(state.model, state.task.index, inputs, seen_y, replays,
                          separate=state.recipe.replay_forward == "separate", views=views, repeats=self.repeats,
                          keep_features=objective.needs_features, split=split, taps=objective.taps)
        for hook in self.hooks.before_step:
            hook(state, batch)
        with self.precision.autocast() if self.precision is not None else nullcontext():
            batch.outputs = batch.forward()
            loss = objective(batch)
        watched = loss
        if self.parallel:
            watched, self.stop_seen = distributed.mean_loss(loss, self.stop is not None and self.stop())
        applied, value = self.monitor.check(watched, state.task.index, state.step)
        state.optimizer.zero_grad(set_to_none=True)
        if applied:
            self.update(loss, batch)
            for hook in self.hooks.after_step:
                hook(state, batch)
            if hasattr(memory, "add"):
                extra = {"logits": batch.logits.detach()} if "logits" in objective.stores else {}
                if "features" in objective.stores:  # the current batch's, from the forward before the update
                    extra["features"] = batch.features[: len(batch.y)].detach()
                extra = {k: v[:: self.repeats] for k, v in extra.items()}  # each example's first view
                memory.add(x=x, y=y, task=task_ids, **extra)
        state.step += 1
        return applied, value

    def update(self, loss: torch.Tensor, batch: StepBatch) -> None:
        """The backward (of the scaled loss in fp16), the ranks' gradients averaged, the
        after-backward hooks on the true gradients, the optimiser's step (skipped by the fp16
        scaler when the scaled gradients overflowed)."""
        state = self.state
        scaler = self.precision.scaler if self.precision is not None else None
        (loss if scaler is None else scaler.scale(loss)).backward()
        if self.parallel:  # before unscaling: every rank then sees the same overflow, or none
            distributed.average_step(state.model, state.optimizer)
        if scaler is not None:
            scaler.unscale_(state.optimizer)
        for hook in self.hooks.after_backward:
            hook(state, batch)
        if scaler is None:
            state.optimizer.step()
        else:
            scaler.step(state.optimizer)
            scaler.update()

    def inputs(self, x: torch.Tensor, y: torch.Tensor, replays: list[dict],
               task_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The forward's inputs (the current batch, each example ``repeats`` times, then the replay
        draws' inputs), their augmented views or ``None``, and the current rows' labels.
        ``task_ids``: the current rows' tasks (with the replays' own, they tell an image-space
        augmentation which permutation to undo: :func:`_in_image_space`)."""
        if self.repeats != 1:
            x, y = x.repeat_interleave(self.repeats, 0), y.repeat_interleave(self.repeats, 0)
            task_ids = task_ids.repeat_interleave(self.repeats, 0)
        inputs = torch.cat([x] + [r["x"] for r in replays]) if replays else x
        tasks = torch.cat([task_ids] + [r["task"] for r in replays]) if replays else task_ids
        if self.two_views:
            return self.views(inputs, tasks), self.views(inputs, tasks), y
        views = self.views(inputs, tasks) if self.views is not None else None
        if self.augment is not None:
            inputs = self.augment(inputs, tasks)
        return inputs, views, y


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
    eval_every: int | None = None,
    precision: str | Precision = "fp32",
) -> RunResult:
    """Train ``model`` on ``stream`` with ``recipe``; evaluate on every task after every task.

    With ``checkpointing``, a checkpoint is written at every task end and every
    ``checkpointing.every`` steps, training continues from ``checkpointing.resume`` when given,
    and stops at the next step boundary (after a checkpoint) when ``stop_requested()`` turns true.
    A non-finite loss stops training (``on_nan="stop"``; a checkpoint from before the bad step is
    kept) or skips that step's update (``"skip"``; after 100 in a row it stops); the result then
    holds the rows measured so far and ``status == "diverged"``.

    With ``eval_every``, the model is also evaluated on the classes seen so far every
    ``eval_every`` training examples and at each task end (:mod:`lifelong.anytime`); this
    changes nothing in the training.

    ``precision``: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (the step under autocast, fp16 with a
    gradient scaler: :mod:`lifelong.precision`).
    """
    run = _setup(stream, model, recipe, optimizer, seed, epochs, batch_size, buffer_size, replay_batch_size,
                 augment_padding, checkpointing, on_nan, eval_every, precision)
    state, result, events = run.state, run.result, events or _Quiet()
    try:
        if not result.init_class_il:
            result.init_class_il, result.init_task_il = evaluate(model, stream, scores=run.scores)
        model.train()
        for t in range(run.position.task, len(run.tasks)):
            task, train_set, resume, draws = run.begin_task(t)
            per_epoch, per_step = run.plan(train_set.num_train, batch_size)
            events.task_start(task, (epochs - resume.epoch) * math.ceil(per_epoch / per_step)
                              - resume.start // per_step)
            for epoch, start, order_state, x, y, ids in batches(stream, task, train_set, epochs, per_step,
                                                                 run.rngs["order"], resume, run.epoch_order(train_set)):
                applied, value = run.step_at(Position(t, epoch, start, order_state), x, y, ids, draws)
                result.skipped_steps += not applied
                events.step(value)
                if applied:
                    run.after_step(Position(t, epoch, start + per_step, order_state))
            class_il, task_il = run.end_task()
            events.task_end(task, class_il, task_il)
            run.after_task(t)
    except (DivergedError, StopRequested, KeyboardInterrupt) as exc:
        result.status, result.message = _why_stopped(exc, state)
    result.steps = state.step
    result.train_seconds = run.elapsed()
    result.anytime = run.anytime.report() if run.anytime is not None else None
    return result


def task_name(index: int, num_tasks: int | None = None) -> str:
    """A task as the user reads it, counted from 1 like the tables: ``task 2/5`` for index 1."""
    return f"task {index + 1}" + (f"/{num_tasks}" if num_tasks else "")


def _why_stopped(exc: BaseException, state: TrainState) -> tuple[str, str]:
    if isinstance(exc, DivergedError):
        return "diverged", str(exc)
    where = (f"{task_name(state.task.index, state.stream.num_tasks)}, step {state.step}" if state.task is not None
             else "the start")
    return "interrupted", f"{'stopped' if isinstance(exc, StopRequested) else 'interrupted'} at {where}"


@dataclass
class _Run:
    """What :func:`train` builds before its first step (see :func:`_setup`)."""

    state: TrainState
    result: RunResult
    hooks: Hooks
    step: Step
    rngs: dict[str, torch.Generator]
    tasks: list[Task]
    draws: int
    scores: Callable | None
    position: Position
    checkpointing: Checkpointing | None
    started: float
    previous_seconds: float
    orderer: Any = None  # the plug-in that orders the epochs (``epoch_order``), if any
    anytime: AnytimeEvaluation | None = None

    def plan(self, n: int, batch_size: int) -> tuple[int, int]:
        """``(examples an epoch visits, examples per step)`` of a training set of ``n``: ``(n,
        batch_size)`` unless a plug-in orders the epochs."""
        return (n, batch_size) if self.orderer is None else self.orderer.plan(self.state, n, batch_size)

    def epoch_order(self, train_set: Task) -> Callable[[int, torch.Generator], torch.Tensor] | None:
        if self.orderer is None:
            return None
        return lambda epoch, order: self.orderer.epoch_order(self.state, train_set.num_train, epoch, order)

    def elapsed(self) -> float:
        return self.previous_seconds + time.perf_counter() - self.started

    def stop_requested(self, boundary: bool = False) -> bool:
        """Whether a stop was asked for. With several processes, on any rank, so that all stop
        together: each step's all-reduce of the loss carries the ranks' requests, read after every
        step on the CPU and every ``monitor.every`` steps on a GPU (reading waits for the device);
        at task ends (``boundary``) the ranks agree in a collective of their own."""
        asked = self.checkpointing is not None and self.checkpointing.stop_requested()
        if not self.step.parallel:
            return asked
        if boundary or self.step.stop_seen is None:
            return distributed.any_rank(asked)
        if self.state.step % self.step.monitor.every:
            return False
        return bool(self.step.stop_seen)  # agreed in the step's all-reduce of the loss (distributed.mean_loss)

    def save(self, at: Position) -> None:
        """The checkpoint of ``at``; with several processes, every rank's part gathered to rank
        0, which alone writes it (every rank must call this at the same point)."""
        if self.checkpointing is not None:
            payload = snapshot(self.state, self.result, at, self.rngs, self.step.monitor, self.elapsed(),
                               self.checkpointing.config_hash, self.anytime)
            amp = self.step.precision
            if amp is not None and amp.scaler is not None:  # fp16: its scale, so that a resume is exact
                payload["scaler"] = amp.scaler.state_dict()
            if self.step.parallel:
                payload = distributed.with_ranks(payload)
            if payload is not None:
                self.checkpointing.store.save(payload, self.state.step)

    def begin_task(self, t: int) -> tuple[Task, Task, Position, int]:
        """Start task ``t`` (or continue it after a resume): its begin-task hooks, its training
        set, where in it to start, and its number of replay draws per step."""
        state, task = self.state, self.tasks[t]
        state.task = task
        state.cache.clear()
        resume = self.position if t == self.position.task and self.position.mid_task else Position(t)
        if not resume.mid_task:  # a resumed task has run them already
            for hook in self.hooks.begin_task:
                hook(state)
        train_set = task
        for hook in self.hooks.training_set:
            train_set = hook(state, train_set)
        return task, train_set, resume, self.draws if task.index >= state.recipe.replay_from else 0

    def step_at(self, at: Position, x: torch.Tensor, y: torch.Tensor, ids: torch.Tensor,
                draws: int) -> tuple[bool, float | None]:
        """One step (then the anytime evaluation's count); if the run diverges, the checkpoint
        from before it (at ``at``) is written."""
        try:
            done = self.step(x, y, ids, draws)
        except DivergedError:
            self.save(at)
            raise
        if self.anytime is not None:
            self.anytime.after_step(self.state.model, self.state.task.index, y, ids)
        return done

    def after_step(self, next_at: Position) -> None:
        """A checkpoint when one is due or a stop was asked for; then stop if asked."""
        every = self.checkpointing.every if self.checkpointing is not None else 0
        stop = self.stop_requested()
        if (every and self.state.step % every == 0) or stop:
            self.save(next_at)
        if stop:
            raise StopRequested

    def end_task(self) -> tuple[list[float], list[float]]:
        """The end-task hooks, then the evaluation on every task (a new row of each matrix) and
        the task-end anytime evaluation."""
        for hook in self.hooks.end_task:
            hook(self.state)
        class_il, task_il = evaluate(self.state.model, self.state.stream, scores=self.scores)
        if self.anytime is not None:
            self.anytime.task_end(self.state.model, self.state.task.index)
        self.step.monitor.task_loss, self.step.monitor.task_reads = 0.0, 0  # the next task's sums
        self.result.class_il.append(class_il)
        self.result.task_il.append(task_il)
        return class_il, task_il

    def after_task(self, t: int) -> None:
        """The task-end checkpoint; then stop if asked."""
        self.save(Position(t + 1))
        if self.stop_requested(boundary=True):
            raise StopRequested


def _setup(stream: Stream, model: nn.Module, recipe: Recipe, optimizer: Optimizer, seed: int, epochs: int,
           batch_size: int, buffer_size: int, replay_batch_size: int | None, augment_padding: int,
           checkpointing: Checkpointing | None, on_nan: str, eval_every: int | None = None,
           precision: str | Precision | None = "fp32") -> _Run:
    """Check the arguments; build the state, memory, hooks, generators and the step; restore
    them from ``checkpointing.resume`` when given."""
    device = stream.source.train_x.device
    monitor = LossMonitor(every=1 if device.type == "cpu" or on_nan == "skip" else 25, on_nan=on_nan,
                          num_tasks=stream.num_tasks)
    _check_model(stream, model, recipe)
    replay = batch_size if replay_batch_size is None else replay_batch_size
    parallel = distributed.parallel()
    if parallel:
        check_parallel(recipe, batch_size, replay, buffer_size, epochs)
    memory = _memory(recipe, stream, seed, buffer_size, epochs)
    state = TrainState(model, optimizer, stream, recipe, memory, replay // distributed.world(),
                       batch_size=batch_size, epochs=epochs, seed=seed)
    components = ([memory] if memory is not None else []) + [t for _, t in recipe.objective.terms] + recipe.plugins
    if checkpointing is not None:
        check_resumable(components)
    rngs = _generators(seed, device, recipe)
    augment, views = _augmentations(stream, recipe, augment_padding, rngs)
    hooks_ = Hooks.of(components)
    recipe.objective.weighers = hooks(components, "reweight")  # none: the plain weighted sum
    scores = next((p.scores for p in recipe.plugins if hasattr(p, "scores")), None)
    anytime = AnytimeEvaluation(stream, eval_every, scores) if eval_every is not None else None
    result, position, previous = RunResult(), Position(), 0.0
    resume = checkpointing.resume if checkpointing is not None else None
    if resume is not None:
        position = restore(_for_this_rank(resume, memory, rngs, parallel), state, result, rngs, monitor, anytime)
        previous = result.train_seconds
    uses_replay = memory is not None and recipe.objective.uses_replay
    orderer = _orderer(recipe)
    amp = _precision(precision, device, resume)
    step = Step(state, hooks_, monitor, augment, repeats=getattr(orderer, "views", 1), views=views,
                two_views=recipe.two_views, parallel=parallel, precision=amp,
                stop=checkpointing.stop_requested if checkpointing is not None else None)
    return _Run(state, result, hooks_, step, rngs,
                [stream.joint()] if recipe.joint else stream.tasks, recipe.objective.draws if uses_replay else 0,
                scores, position, checkpointing, time.perf_counter(), previous, orderer, anytime)


def _for_this_rank(payload: dict, memory: Memory | None, rngs: dict[str, torch.Generator], parallel: bool) -> dict:
    """The checkpoint as this rank restores it: with several processes, or from a checkpoint of
    several, its own memory and generators (:func:`lifelong.distributed.for_this_rank`)."""
    if not parallel and "ranks" not in payload:
        return payload
    own = {k: g.get_state() for k, g in rngs.items() if k in ("augment", "views")}
    return distributed.for_this_rank(payload, None if memory is None else memory.state_dict(),
                                     memory is not None and shards(memory), own)


def _precision(precision: str | Precision | None, device: torch.device, resume: dict | None) -> Precision | None:
    """The step's precision (``None``: float32), its fp16 scaler restored from ``resume``."""
    amp = build_precision(precision, device) if isinstance(precision, str) else precision
    if amp is not None and amp.scaler is not None and resume is not None and "scaler" in resume:
        amp.scaler.load_state_dict(resume["scaler"])
    return amp


# What runs under several processes (lifelong.distributed): memories and plug-ins whose state is
# the same on every rank or is reduced across them (docs/DISTRIBUTED.md says how, for each); the
# others are refused until they are, and a user's plug-in runs when its class sets parallel_safe = True.
PARALLEL_MEMORIES = ("reservoir", "herding", "task-balanced", "first-task", "activations")
PARALLEL_PLUGINS = ("clip-grad", "nme", "refresh", "agem", "mix-memory", "head-warmup", "gpm", "cuber", "lora",
                    "exposed-eval", "adaptive-weights", "view-batch", "masked-knn", "sparse-rewiring", "error-memory")


def check_parallel(recipe: Recipe, batch_size: int, replay_batch_size: int, buffer_size: int,
                   epochs: int = 1) -> None:
    """Refuse, in one line, what several processes cannot train yet: a batch or replay batch
    the world size does not divide, a reservoir smaller than the number of processes, and
    memories or plug-ins outside :data:`PARALLEL_MEMORIES` and :data:`PARALLEL_PLUGINS` (a user's
    plug-in runs when its class declares ``parallel_safe = True``: its author's word that its state
    stays the same on every rank, or is reduced across them: docs/DISTRIBUTED.md)."""
    w = distributed.world()
    distributed.check_layout(batch_size, replay_batch_size, w)
    if recipe.memory is not None and recipe.memory not in PARALLEL_MEMORIES:
        raise ConfigError(f"method {recipe.name!r}: its memory {recipe.memory!r} does not run under several "
                          f"processes yet (those that do: {', '.join(PARALLEL_MEMORIES)}); run it in one process")
    other = next((p.name for p in recipe.plugins if getattr(p, "name", "") not in PARALLEL_PLUGINS
                  and getattr(p, "parallel_safe", False) is not True), None)
    if other is not None:
        raise ConfigError(f"method {recipe.name!r}: its plug-in {other!r} does not run under several processes yet "
                          f"(those that do: {', '.join(PARALLEL_PLUGINS)}, and a plug-in of your own whose class says "
                          f"parallel_safe = True); run it in one process")
    for plugin in recipe.plugins:  # e.g. view-batch's step over epochs, which the processes must share
        check = getattr(plugin, "check_processes", None)
        if check is not None:
            check(epochs, batch_size, w)
    if recipe.memory is not None and shards(MEMORIES[recipe.memory]) and buffer_size < w:
        raise ConfigError(f"{w} processes share the buffer of {buffer_size}: each needs at least one slot; "
                          f"use a buffer size of at least {w}")


def _check_model(stream: Stream, model: nn.Module, recipe: Recipe) -> None:
    """``ValueError`` for a model the recipe cannot train: on another device than the data, or
    without the cosine classifier or projection head the recipe needs; the recipe checked for a
    task-free stream."""
    first = next(model.parameters(), None)
    device = stream.source.train_x.device
    if first is not None and first.device != device:
        raise ValueError(f"the model is on {first.device} but the stream's data on {device}; move one of them")
    if recipe.head == "cosine" and not isinstance(getattr(model, "classifier", None), CosineLinear):
        raise ValueError(f"method {recipe.name!r} needs a cosine classifier: call "
                         f"lifelong.nets.set_head(model, 'cosine') before building the optimiser")
    if recipe.projection and not isinstance(getattr(model, "projection", None), nn.Module):
        raise ValueError(f"method {recipe.name!r} needs a projection head: call lifelong.nets.set_projection("
                         f"model, {list(recipe.projection)}) before building the optimiser")
    if stream.task_free:
        check_task_free(recipe, stream.name)


def _generators(seed: int, device: torch.device, recipe: Recipe) -> dict[str, torch.Generator]:
    """The loop's own generators, each from the run's seed: the batch order, the augmentation and,
    for a recipe with ``views``, the views' (created only then: other runs' checkpoints keep
    their keys)."""
    rngs = {"order": torch_generator(seed, "batch-order"),
            "augment": torch_generator(seed, distributed.stream_name("augment"), device)}
    if recipe.views != "none":
        rngs["views"] = torch_generator(seed, distributed.stream_name("views"), device)
    return rngs


def _augmentations(stream: Stream, recipe: Recipe, padding: int, rngs: dict[str, torch.Generator]
                   ) -> tuple[Callable | None, Callable | None]:
    """``(augment, views)`` of :class:`Step`: the benchmark's random crop and flip (with
    ``padding``) and the recipe's strong views, each drawing from its generator in ``rngs``
    (looked up at each call, so that a restored state is used); ``None`` when not used."""
    augment = views = None
    if padding:
        fill = stream.pad_value()
        augment = lambda inputs: random_crop_flip(inputs, padding, rngs["augment"], fill)  # noqa: E731
    if recipe.views != "none":
        mean, std, options = stream.source.mean, stream.source.std, VIEW_AUGMENTS[recipe.views]
        views = lambda inputs: strong_augment(inputs, rngs["views"], mean=mean, std=std, **options)  # noqa: E731
    return _in_image_space(stream, augment), _in_image_space(stream, views)


def _in_image_space(stream: Stream, augment: Callable | None) -> Callable | None:
    """``augment(inputs, tasks)``: on a stream whose inputs are permuted pixels (Permuted-MNIST),
    the permutation of each row's task is undone, the images augmented, and the permutation
    applied again, so that crops and flips move image pixels, not shuffled ones; elsewhere
    ``augment(inputs)``."""
    if augment is None:
        return None
    inverse = getattr(stream.domain, "inverse", None)
    if inverse is None:
        return lambda inputs, tasks: augment(inputs)
    return lambda inputs, tasks: stream.domain(augment(inverse(inputs, tasks)), tasks)


def _orderer(recipe: Recipe) -> Any:
    """The one plug-in that orders the epochs (``epoch_order``, e.g. view-batch replay), if any."""
    orderers = [p for p in recipe.plugins if hasattr(p, "epoch_order")]
    if len(orderers) > 1:
        raise ValueError(f"method {recipe.name!r}: only one plug-in may order the epochs, got "
                         f"{', '.join(p.name for p in orderers)}")
    return orderers[0] if orderers else None
