"""Weight-space terms (Wang et al., ICLR 2024, Table 1): the quadratic
``(θ − θ*)ᵀ Ω (θ − θ*)`` with a diagonal importance ``Ω``, the Bregman divergence of
``Ψ(θ) = θᵀΩθ``. The methods differ in ``Ω`` and in how it and the anchor ``θ*`` are kept:

- EWC (Kirkpatrick et al., PNAS 2017): ``Ω`` = diagonal empirical Fisher of each finished task,
  one anchor per task (``online=False``); online EWC (Schwarz et al., "Progress & compress",
  ICML 2018): ``Ω ← γ Ω + F``, anchored at the latest parameters (``online=True``).
- SI (Zenke et al., "Continual learning through synaptic intelligence", ICML 2017):
  ``Ω ← max(0, Ω + ω / (Δθ² + ξ))`` with ``ω`` the path integral ``−Σ_t g(t) · Δθ(t)`` of the
  task loss's gradient over the task.
- MAS (Aljundi et al., "Memory aware synapses", ECCV 2018): ``Ω`` = mean absolute gradient of
  the squared L2 norm of the output.
- L2: ``Ω = I``, anchored at the end of the previous task.

As in Mammoth, there is no factor ½: the term's weight is the λ (EWC, MAS) or c (SI) of the
papers' code.
"""
from __future__ import annotations

from typing import Iterator

import torch

from lifelong import distributed
from lifelong.objective.base import StepBatch, Term, check_choice, register_term
from lifelong.objective.importance import cross_entropy_fisher_loss, output_norm_loss, per_example_sums


class _Quadratic(torch.autograd.Function):
    """``Σ_i (θ_i − m_i)ᵀ diag(Ω_i) (θ_i − m_i)`` with its gradient ``2 Ω_i (θ_i − m_i)``, in a
    few multi-tensor operations: about half the time of building it from per-tensor autograd
    operations, which matters at batch size 10."""

    @staticmethod
    def forward(ctx, omega: list, mean: list, record: list | None, *params: torch.Tensor) -> torch.Tensor:
        diff = torch._foreach_sub(params, mean)
        weighted = torch._foreach_mul(diff, omega)
        ctx.weighted, ctx.record = weighted, record
        return sum(torch.dot(w.reshape(-1), d.reshape(-1)) for w, d in zip(weighted, diff))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grads = torch._foreach_mul(ctx.weighted, 2.0 * grad)
        if ctx.record is not None:  # the caller wants to know this term's share of the gradient
            ctx.record[:] = grads
        return (None, None, None, *grads)


class QuadraticPenalty:
    """``Σ_k (θ − θ*_k)ᵀ Ω_k (θ − θ*_k)`` for diagonal ``Ω_k``, kept as one quadratic.

    Several anchors (per-task EWC) are merged exactly: with ``Ω = Σ_k Ω_k`` and
    ``m = Σ_k Ω_k θ*_k / Ω`` the sum equals ``(θ − m)ᵀ Ω (θ − m) + c`` for a constant ``c``,
    so a step costs the same after one task or after twenty.
    """

    def __init__(self) -> None:
        self.omega: list[torch.Tensor] | None = None
        self.mean: list[torch.Tensor] | None = None
        self.const = 0.0
        self._s1: list[torch.Tensor] | None = None  # Σ Ω_k θ*_k
        self._s2 = 0.0  # Σ over elements of Σ_k Ω_k θ*_k²

    def value(self, params: list[torch.Tensor], record: list | None = None) -> torch.Tensor | None:
        """The penalty at ``params`` (``None`` before any anchor). When ``record`` is a list, the
        backward pass writes into it the gradient this penalty contributes to each parameter
        (upstream weights included)."""
        if self.omega is None:
            return None
        total = _Quadratic.apply(self.omega, self.mean, record, *params)
        return total + self.const if self.const else total

    def replace(self, omega: list[torch.Tensor], anchor: list[torch.Tensor], decay: float = 1.0) -> None:
        """Online form: ``Ω ← decay · Ω + omega`` and the anchor moves to ``anchor``."""
        if self.omega is not None and decay:
            omega = [decay * o + n for o, n in zip(self.omega, omega)]
        self.omega, self.mean, self.const = omega, [a.detach().clone() for a in anchor], 0.0

    def add_anchor(self, omega: list[torch.Tensor], anchor: list[torch.Tensor]) -> None:
        """Per-task form: add ``(θ − anchor)ᵀ diag(omega) (θ − anchor)`` to the sum."""
        anchor = [a.detach().clone() for a in anchor]
        if self.omega is None:
            self.omega, self.mean, self.const = omega, anchor, 0.0
            self._s1 = [o * a for o, a in zip(omega, anchor)]
            self._s2 = float(sum((o * a.square()).sum() for o, a in zip(omega, anchor)))
            return
        self.omega = [o + n for o, n in zip(self.omega, omega)]
        self._s1 = [s + n * a for s, n, a in zip(self._s1, omega, anchor)]
        self._s2 += float(sum((n * a.square()).sum() for n, a in zip(omega, anchor)))
        self.mean = [torch.where(o > 0, s / o.clamp_min(1e-30), m) for o, s, m in zip(self.omega, self._s1, self.mean)]
        self.const = self._s2 - float(sum((o * m.square()).sum() for o, m in zip(self.omega, self.mean)))

    def state_dict(self) -> dict:
        return {"omega": self.omega, "mean": self.mean, "const": self.const, "s1": self._s1, "s2": self._s2}

    def load_state_dict(self, state: dict) -> None:
        self.omega, self.mean, self.const = state["omega"], state["mean"], state["const"]
        self._s1, self._s2 = state["s1"], state["s2"]


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def task_batches(state, batch_size: int = 1000, max_examples: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The finished task's first ``max_examples`` (all) training examples (un-augmented), in
    order, in batches; with several processes, this rank's contiguous share of them."""
    task, stream = state.task, state.stream
    n = task.num_train if max_examples is None else min(task.num_train, max_examples)
    lo, hi = distributed.share(n)
    for start in range(lo, hi, batch_size):
        idx = task.train_idx[start:min(start + batch_size, hi)]
        ids = task.index if task.train_task is None else task.train_task[start:min(start + batch_size, hi)]
        yield stream.inputs("train", idx, ids), stream.labels("train", idx)


def task_sums(state, n: int, loss, kind: str) -> list[torch.Tensor]:
    """:func:`per_example_sums` over the finished task's first ``n`` training examples; with
    several processes, each rank's share summed across the ranks (the single-process sums up to
    the order of float additions)."""
    return distributed.sum_(per_example_sums(state.model, task_batches(state, max_examples=n), loss, kind))


def task_fisher(state, probability_weighted: bool = True, max_examples: int | None = None) -> list[torch.Tensor]:
    """The diagonal empirical Fisher of the finished task at the current parameters: the mean
    over its training examples of each example's squared gradient (weighted by the model's
    probability of the true label when ``probability_weighted``). Computed once per task end
    and shared through ``state.cache`` (EWC and refresh learning both need it)."""
    n = state.task.num_train if max_examples is None else min(state.task.num_train, max_examples)
    key = ("fisher", state.task.index, state.step, bool(probability_weighted), n)
    if key not in state.cache:
        sums = task_sums(state, n, cross_entropy_fisher_loss(probability_weighted), "square")
        state.cache[key] = [s / max(n, 1) for s in sums]
    return state.cache[key]


class _Penalised(Term):
    """Shared plumbing of the quadratic terms: the penalty and the model's parameter list."""

    def __init__(self) -> None:
        self.penalty = QuadraticPenalty()
        self.params: list[torch.Tensor] | None = None

    def begin_task(self, state) -> None:
        self.params = _params(state.model)

    def state_dict(self) -> dict:
        return {"penalty": self.penalty.state_dict()}

    def load_state_dict(self, state: dict, context=None) -> None:
        self.penalty.load_state_dict(state["penalty"])
        if context is not None:
            self.params = _params(context.model)

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        value = self.penalty.value(self.params) if self.params is not None else None
        return batch.logits.new_zeros(()) if value is None else value


@register_term
class EWC(_Penalised):
    """Elastic weight consolidation, per task or online (see the module docstring).

    ``probability_weighted``: weight each example's squared gradient by the model's probability
    of its true label, as Mammoth's implementation does (``False``: the plain empirical Fisher).
    ``max_examples``: estimate the Fisher on the task's first N training examples only.
    """

    name = "ewc"
    needs_task_boundaries = "its Fisher and anchor are computed at each task's end"

    def __init__(self, online: bool = False, gamma: float = 1.0, probability_weighted: bool = True,
                 max_examples: int | None = None) -> None:
        super().__init__()
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"`gamma` must lie in [0, 1], got {gamma}")
        self.online, self.gamma = bool(online), float(gamma)
        self.probability_weighted, self.max_examples = bool(probability_weighted), max_examples

    def end_task(self, state) -> None:
        params = _params(state.model)
        fisher = task_fisher(state, self.probability_weighted, self.max_examples)
        if self.online:
            self.penalty.replace(fisher, params, self.gamma)
        else:
            self.penalty.add_anchor(fisher, params)


@register_term
class MAS(_Penalised):
    """Memory aware synapses: ``Ω`` from the mean absolute per-example gradient of ``‖f(x)‖²``,
    accumulated over tasks (``Ω ← γ Ω + Ω_task``), anchored at the latest parameters."""

    name = "mas"
    needs_task_boundaries = "its importance and anchor are computed at each task's end"

    def __init__(self, gamma: float = 1.0, max_examples: int | None = None) -> None:
        super().__init__()
        self.gamma, self.max_examples = float(gamma), max_examples

    def end_task(self, state) -> None:
        n = state.task.num_train if self.max_examples is None else min(state.task.num_train, self.max_examples)
        sums = task_sums(state, n, output_norm_loss, "abs")
        self.penalty.replace([s / max(n, 1) for s in sums], _params(state.model), self.gamma)


@register_term
class L2(_Penalised):
    """``‖θ − θ*‖²`` with ``θ*`` the parameters at the end of the previous task."""

    name = "l2"
    needs_task_boundaries = "its anchor is set at each task's end"

    def end_task(self, state) -> None:
        params = _params(state.model)
        self.penalty.replace([torch.ones_like(p) for p in params], params, decay=0.0)


@register_term
class SI(_Penalised):
    """Synaptic intelligence (Zenke, Poole and Ganguli, ICML 2017, Eqs. 3-5).

    During a task, after each update, ``ω += −g · Δθ``: ``g`` the gradient of the task loss
    alone (the objective without this penalty: ``unreg_grads`` in Zenke et al.'s code,
    ``pathint/protocols.py``; the gradient before the penalty's is added in Mammoth's
    ``models/si.py``), ``Δθ`` the update the optimiser actually made (after clipping, projection,
    momentum or weight decay). At the task's end ``Ω ← max(0, Ω + ω / ((θ_end − θ_start)² + ξ))``
    (the ``relu`` of Zenke et al.'s code; Mammoth leaves it out), ``ω ← 0``, and the anchor moves
    to ``θ_end``. The penalty is ``Σ Ω (θ − θ_end)²``, weighted by ``c``; Mammoth also clips each
    gradient entry to [−1, 1] before the update, which the ``si`` preset does with the
    ``clip-grad`` plug-in.

    ``grad="objective"``: ``g`` is the gradient of the whole objective, the SI penalty included
    (Mammoth's 2020 code, which added ``lr · g²``, equal for plain SGD when nothing is clipped).
    ``nonnegative=False``: no ``max(0, ·)``, as Mammoth.
    """

    name = "si"
    needs_task_boundaries = "its importance is consolidated and its anchor set at each task's end"

    def __init__(self, xi: float = 1.0, grad: str = "task", nonnegative: bool = True) -> None:
        super().__init__()
        if not xi > 0:
            raise ValueError(f"`xi` must be positive, got {xi}")
        check_choice("grad", grad, ("task", "objective"))
        if not isinstance(nonnegative, bool):
            raise ValueError(f"`nonnegative` must be true or false, got {nonnegative!r}")
        self.xi, self.grad, self.nonnegative = float(xi), grad, nonnegative
        self.path: list[torch.Tensor] | None = None
        self.start: list[torch.Tensor] | None = None
        self._grads: list[torch.Tensor] | None = None
        self._own: list[torch.Tensor] = []  # this penalty's share of the last backward's gradient

    def begin_task(self, state) -> None:
        super().begin_task(state)
        if self.start is None:
            self.start = [p.detach().clone() for p in self.params]
        self.path = [torch.zeros_like(p) for p in self.params]

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        self._own = []
        record = self._own if self.grad == "task" else None
        value = self.penalty.value(self.params, record) if self.params is not None else None
        return batch.logits.new_zeros(()) if value is None else value

    @torch.no_grad()
    def after_backward(self, state, batch: StepBatch) -> None:
        # ω += −g · (θ_after − θ_before), split as + g·θ_before now and − g·θ_after later,
        # so that no copy of the parameters is needed
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        if self._own:  # the task loss's gradient: the total minus this penalty's share
            self._grads = torch._foreach_sub(grads, self._own)
        else:
            self._grads = torch._foreach_mul(grads, 1.0)  # a copy: later hooks may change .grad
        self._own = []
        torch._foreach_addcmul_(self.path, self._grads, [p.detach() for p in self.params])

    @torch.no_grad()
    def after_step(self, state, batch: StepBatch) -> None:
        torch._foreach_addcmul_(self.path, self._grads, [p.detach() for p in self.params], value=-1.0)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "path": self.path, "start": self.start}

    def load_state_dict(self, state: dict, context=None) -> None:
        super().load_state_dict(state, context)
        self.path, self.start = state["path"], state["start"]

    @torch.no_grad()
    def end_task(self, state) -> None:
        end = [p.detach().clone() for p in self.params]
        omega = [w / ((e - s).square() + self.xi) for w, e, s in zip(self.path, end, self.start)]
        if self.penalty.omega is not None:
            omega = [o + n for o, n in zip(self.penalty.omega, omega)]
        if self.nonnegative:
            omega = [o.clamp_min(0.0) for o in omega]
        self.penalty.replace(omega, end, decay=0.0)
        self.start = end
