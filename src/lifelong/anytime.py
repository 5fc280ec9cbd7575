"""Anytime evaluation: the accuracy on the classes seen so far, every K training examples and at
every task end, while the model trains.

Anytime inference is the evaluation protocol of Koh et al., "Online Continual Learning on Class
Incremental Blurry Task Configuration with Anytime Inference" (ICLR 2022, CLIB), kept by Moon et
al. for Si-Blurry (ICCV 2023). This follows the reference trainer, ``methods/_trainer.py`` and
``methods/er_baseline.py`` (``online_evaluate``) of ``KHU-AGI/Si-Blurry``, read and rewritten:

- *Exposed classes* are the classes of the training examples seen so far (the stream's batches,
  not the replayed ones), over the whole run: a class once seen stays exposed.
- The counter of examples seen runs over the whole run. After each step, when it has gone
  *past* the next multiple of K (strictly: ``seen > next``, as the reference's
  ``samples_cnt > num_eval``), the model is evaluated and the next multiple is K further on; at
  most one evaluation per step. At each task end (after the task-end hooks) it is evaluated
  again; these task-end evaluations are not part of the periodic curve.
- An evaluation is on the test examples of the exposed classes, each counted once (a blurry
  class's test examples belong to several tasks); the logits of classes not yet exposed are
  masked out (the reference adds ``-inf`` to them), and the accuracy is over examples (correct
  over all of them), with the accuracy of each exposed class beside it.

The metrics of the curve (A_auc, A_last, A_avg, F_last) are pure functions in
:mod:`lifelong.metrics`. In a domain-incremental stream (a fixed input shift per task) a class
is exposed per task: the evaluation covers each seen task's shifted test set for the classes
seen in that task.

The evaluation runs with the model in eval mode and under ``no_grad``, draws no random number
and changes no state of the training: a run trains the same weights with or without it.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import torch
import torch.nn as nn

from lifelong import distributed
from lifelong.data.streams import Stream

DEFAULT_EVERY = 1000  # examples between evaluations by default (the reference's eval_period in its scripts)
CACHE_BYTES = 256 << 20  # test inputs up to this size are prepared once (float), not at every evaluation
STREAM_PREFIXES = ("si-blurry-", "task-free-")  # benchmarks evaluated anytime by default


def default_every(benchmark: str, online: bool, every: int | None = None) -> int | None:
    """The anytime evaluation period of a run: ``every`` when given, else :data:`DEFAULT_EVERY`
    for an online run or a blurry or task-free stream (by benchmark name), else ``None`` (off)."""
    if every is not None:
        return every
    return DEFAULT_EVERY if online or benchmark.startswith(STREAM_PREFIXES) else None


class AnytimeEvaluation:
    """The evaluation schedule and the curve it measures; :func:`lifelong.loop.train` calls
    :meth:`after_step` after every step and :meth:`task_end` after every task's end hooks.

    ``curve``: one entry per evaluation, ``{"examples_seen", "task", "kind"`` (``"periodic"`` or
    ``"task_end"``), ``"accuracy"`` (percent; ``None`` when no exposed class has a test example),
    ``"exposed_classes"`` (how many), ``"per_class"`` (percent per class, ``None`` for a class not
    exposed or without test examples)``}``. ``seconds``: the time spent evaluating.
    """

    def __init__(self, stream: Stream, every: int, scores: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
                 batch_size: int = 1000) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"eval_every must be a positive integer, got {every!r}")
        self.stream, self.every, self.scores, self.batch_size = stream, every, scores, batch_size
        device = stream.source.test_y.device
        self.by_task = stream.domain is not None  # a class is exposed per task: each has its own inputs
        self.exposed = torch.zeros(stream.num_tasks if self.by_task else 1, stream.num_classes, dtype=torch.bool,
                                   device=device)
        self.seen, self.next_at = 0, every
        self.curve: list[dict[str, Any]] = []
        self.seconds = 0.0
        self._tests = [_TestSet(stream, idx, t, stream.num_classes) for t, idx in enumerate(
            [t.test_idx for t in stream.tasks] if self.by_task else
            [torch.unique(torch.cat([t.test_idx for t in stream.tasks]))])]
        size = sum(len(t.idx) for t in self._tests) * 4 * math.prod(stream.source.image_shape)
        self._cache = size <= CACHE_BYTES  # prepared inputs kept, made at the first evaluation

    def after_step(self, model: nn.Module, task: int, y: torch.Tensor, task_ids: torch.Tensor) -> None:
        """Expose the classes of the batch's ``y`` (seen as tasks ``task_ids``), count its
        examples, and evaluate when the count has passed the next multiple of ``every``."""
        self.exposed[task_ids if self.by_task else 0, y] = True
        self.seen += len(y) if not distributed.parallel() else self._shared(len(y))
        if self.seen > self.next_at:
            self._evaluate(model, task, "periodic")
            self.next_at += self.every

    def _shared(self, n: int) -> int:
        """Several processes (each ``y`` a rank's share of the batch): the classes exposed on any
        rank and the examples of the whole batch, in one all-reduce; every rank then evaluates
        alike, the whole test set (the same model on every rank: the same curve)."""
        both = torch.cat([self.exposed.reshape(-1).long(), torch.tensor([n], device=self.exposed.device)])
        distributed.sum_([both])
        self.exposed = both[:-1].reshape(self.exposed.shape) > 0
        return int(both[-1])

    def task_end(self, model: nn.Module, task: int) -> None:
        self._evaluate(model, task, "task_end")

    @torch.no_grad()
    def _evaluate(self, model: nn.Module, task: int, kind: str) -> None:
        started = time.perf_counter()
        was_training = model.training
        model.eval()
        classes = self.stream.num_classes
        shown = self.exposed.any(0)
        correct = torch.zeros(classes, dtype=torch.long, device=shown.device)
        total = torch.zeros(classes, dtype=torch.long, device=shown.device)
        for t, tests in enumerate(self._tests):
            for x, y in tests.batches(self.exposed[t], self.batch_size, self._cache):
                logits = model(x) if self.scores is None else self.scores(model, x)
                predicted = logits.masked_fill(~shown, float("-inf")).argmax(1)
                correct += torch.bincount(y[predicted == y], minlength=classes)
                total += torch.bincount(y, minlength=classes)
        model.train(was_training)
        right, count = correct.tolist(), total.tolist()
        n = sum(count)
        self.curve.append({
            "examples_seen": self.seen, "task": task, "kind": kind,
            "accuracy": 100.0 * sum(right) / n if n else None,
            "exposed_classes": int(shown.sum()),
            "per_class": [100.0 * r / c if c else None for r, c in zip(right, count)],
        })
        self.seconds += time.perf_counter() - started

    def report(self) -> dict[str, Any]:
        """What a run's results keep: the period, the curve and the evaluation time."""
        return {"eval_every": self.every, "curve": [dict(p) for p in self.curve], "eval_seconds": self.seconds}

    def state_dict(self) -> dict[str, Any]:
        return {"exposed": self.exposed.clone(), "seen": self.seen, "next_at": self.next_at, "seconds": self.seconds,
                "curve": [dict(p) for p in self.curve]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.exposed = state["exposed"].to(self.exposed.device).clone()
        self.seen, self.next_at, self.seconds = int(state["seen"]), int(state["next_at"]), float(state["seconds"])
        self.curve = [dict(p) for p in state["curve"]]


class _TestSet:
    """The test examples of one task of inputs (all of them when the tasks share their inputs),
    sorted by class once, so that the examples of consecutive exposed classes are one slice."""

    def __init__(self, stream: Stream, idx: torch.Tensor, task: int, num_classes: int) -> None:
        labels = stream.labels("test", idx)
        order = torch.sort(labels, stable=True).indices
        self.stream, self.task = stream, task
        self.idx, self.labels = idx[order], labels[order]
        counts = torch.bincount(self.labels, minlength=num_classes)
        self.bounds = [0] + torch.cumsum(counts, 0).tolist()  # class c: positions bounds[c]..bounds[c + 1]
        self.inputs: torch.Tensor | None = None

    def batches(self, exposed: torch.Tensor, batch_size: int, cache: bool):
        """``(x, y)`` of the examples of the ``exposed`` classes, at most ``batch_size`` at a time."""
        if cache and self.inputs is None:
            self.inputs = self.stream.inputs("test", self.idx, self.task)
        flags = exposed.tolist()
        c = 0
        while c < len(flags):
            if not flags[c]:
                c += 1
                continue
            first = c
            while c < len(flags) and flags[c]:
                c += 1
            for start in range(self.bounds[first], self.bounds[c], batch_size):
                end = min(start + batch_size, self.bounds[c])
                x = self.inputs[start:end] if cache else self.stream.inputs("test", self.idx[start:end], self.task)
                yield x, self.labels[start:end]
