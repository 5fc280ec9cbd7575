"""Terms and the objective that sums them (Wang et al., "A Unified and General Framework for
Continual Learning", ICLR 2024, Eq. 1)::

    L(θ) = CE(f_θ(x), y) + Σ_k α_k D_Φk(f_θ(x_k), z_k) + Σ_j β_j D_Ψj(θ, θ_old)

A term is a small object with ``__call__(batch) -> scalar``. It may declare

- ``uses_replay``: it reads replayed samples; ``draw``: which independent replay draw
  (0, 1, ...) it reads, so that DER++ can take its two terms from two separate samples;
- ``stores``: extra fields the memory keeps with each example (``"logits"`` for DER,
  ``"features"`` for HPCR's similarity distillation);
- ``needs_features``: it reads the backbone's features (:attr:`StepBatch.features`), not only
  the logits (MVP's adaptive feature scaling, HPCR);
- ``taps``: names of layers whose outputs in the step's forward it reads
  (:attr:`StepBatch.activations`; GeRe's threshold-margin term);

and it may define any hook of :mod:`lifelong.plugins` (``begin_task``, ``end_task``,
``before_step``, ``after_backward``, ``after_step``) to keep its own state: EWC computes its
Fisher at ``end_task``, SI integrates its path in ``after_step``.

New kinds of terms are registered by name with :func:`register_term` and can then be used in
recipes and YAML files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import torch
import torch.nn as nn

from lifelong.registry import registrar


@dataclass
class StepBatch:
    """What the terms see at one step.

    ``inputs``: the current batch followed by every replay draw, after augmentation: the one
    input of the step's forward; ``outputs``: the model's output on it. ``y``: the current
    labels; ``replays``: the memory samples, one dict per draw (``x`` as stored, ``y``,
    ``task``, ``index`` and any stored fields). :attr:`x`, :attr:`logits`,
    :meth:`replay_inputs` and :meth:`replay_outputs` cut ``inputs`` and ``outputs`` into their
    parts. ``task``: the current task's index. ``separate``: the model sees the current batch and
    each replay draw in forwards of their own (:meth:`forward`).

    ``views``: a second, augmented copy of :attr:`inputs` in the same layout (PCR's strongly
    augmented views), or ``None``. With views, :attr:`outputs` (and :attr:`features`) hold the
    rows of :attr:`inputs` followed by those of :attr:`views`, so that :attr:`logits` and
    :meth:`replay_outputs` still mean the un-augmented rows. ``keep_features``: the forward also
    keeps the backbone's ``features`` (``model.classifier(model.features(x))`` is the output).
    ``repeats``: the current batch holds each example this many times back to back (view-batch
    replay, :mod:`lifelong.plugins.view_batch`); ``y`` then repeats each label as often.

    ``split``: with hidden-activation replay (:mod:`lifelong.hidden_replay`), the backbone's
    :class:`lifelong.nets.split.FrozenSplit`: each replay draw's ``x`` is then an activation of
    the frozen early part, :attr:`inputs` holds the current batch only, and the forward runs the
    current batch through the whole network and the replayed activations through the late part
    only; :attr:`outputs` keeps its layout (current rows, then each draw's).
    ``taps``: layer names (``model.named_modules()``'s) whose outputs the forward keeps, by forward
    hooks that live for that forward only, in :attr:`activations` (``name -> rows``, in the row
    order of :attr:`outputs`).
    """

    model: nn.Module
    task: int
    inputs: torch.Tensor
    y: torch.Tensor
    replays: list[dict[str, torch.Tensor]] = field(default_factory=list)
    outputs: torch.Tensor | None = None
    separate: bool = False
    views: torch.Tensor | None = None
    keep_features: bool = False
    features: torch.Tensor | None = None
    repeats: int = 1
    split: Any = None
    taps: tuple[str, ...] = ()
    activations: dict[str, torch.Tensor] = field(default_factory=dict)

    def forward(self, model: nn.Module | None = None) -> torch.Tensor:
        """The model's output on :attr:`inputs` (then :attr:`views`, if any): one forward over
        the concatenation (the default, as Mammoth's ER), or with ``separate`` one forward per
        part, current batch first, as Mammoth's DER, DER++ and ER-ACE do; a part's views go with
        the part (PCR's ``pcrForward`` of a batch and its augmented copy). The two differ only
        through batch-norm statistics. With ``keep_features`` it sets :attr:`features` too."""
        model = self.model if model is None else model
        if self.taps:
            return self._tapped_forward(model)
        if self.split is not None:
            return self._forward_hidden(model)
        if self.views is None and not self.keep_features:
            if not self.separate or not self.replays:
                return model(self.inputs)
            sizes = [len(self.y)] + [len(r["y"]) for r in self.replays]
            return torch.cat([model(part) for part in self.inputs.split(sizes)])
        parts = [self.inputs] if not self.separate or not self.replays else \
            list(self.inputs.split([len(self.y)] + [len(r["y"]) for r in self.replays]))
        sizes = [len(p) for p in parts]
        if self.views is not None:  # each part with its views, in one forward
            parts = [torch.cat([p, v]) for p, v in zip(parts, self.views.split(sizes))]
        results = [_with_features(model, p) if self.keep_features else (model(p), None) for p in parts]

        def join(i: int) -> torch.Tensor:  # plain rows of every part, then their views' rows
            rows = [r[i][:n] for r, n in zip(results, sizes)]
            if self.views is not None:
                rows += [r[i][n:] for r, n in zip(results, sizes)]
            return rows[0] if len(rows) == 1 else torch.cat(rows)

        outputs, features = join(0), (join(1) if self.keep_features else None)
        self.features = features
        return outputs

    def _forward_hidden(self, model: nn.Module) -> torch.Tensor:
        """The forward with hidden-activation replay (SHARP's ``forward`` and ``forward_memo``):
        the current batch through the frozen early part, then it and every replayed activation
        through the late part and the classifier, in one forward (or one per part with
        ``separate``)."""
        from lifelong.nets.split import frozen_split

        split = self.split if model is self.model else frozen_split(model, self.split.after)
        parts = [split.hidden(self.inputs)] + [r["x"] for r in self.replays]
        if not self.separate and len(parts) > 1:
            parts = [torch.cat(parts)]
        features = [split.late(p) for p in parts]
        features = features[0] if len(features) == 1 else torch.cat(features)
        if self.keep_features:
            self.features = features
        return model.classifier(features)
    def _tapped_forward(self, model: nn.Module) -> torch.Tensor:
        """:meth:`forward` with the layers of :attr:`taps` kept in :attr:`activations`: one
        output per part (the whole batch, or each part with ``separate``), joined as the
        outputs are (plain rows of every part, then their views' rows)."""
        from lifelong.objective.taps import tapped

        names, self.taps = self.taps, ()
        try:
            with tapped(model, names) as kept:
                outputs = self.forward(model)
        finally:
            self.taps = names
        sizes = [len(self.y)] + [len(r["y"]) for r in self.replays] if self.separate and self.replays \
            else [len(self.inputs)]
        for name, parts in kept.items():
            if len(parts) != len(sizes):
                raise ValueError(f"layer {name!r} ran {len(parts)} times in a forward of {len(sizes)} part(s); "
                                 f"name a layer that runs once per forward")
            rows = [p[:n] for p, n in zip(parts, sizes)]
            if self.views is not None:
                rows += [p[n:] for p, n in zip(parts, sizes)]
            self.activations[name] = rows[0] if len(rows) == 1 else torch.cat(rows)
        return outputs

    def probe(self, model: nn.Module | None = None) -> "StepBatch":
        """A copy of this batch with its own forward through ``model`` (refresh learning's)."""
        copy = StepBatch(self.model, self.task, self.inputs, self.y, self.replays, separate=self.separate,
                         views=self.views, keep_features=self.keep_features, repeats=self.repeats, split=self.split,
                         taps=self.taps)
        copy.outputs = copy.forward(model)
        return copy

    @property
    def labels(self) -> torch.Tensor:
        """The label of every row of :attr:`outputs`: current, each replay draw, and again for
        the views."""
        y = torch.cat([self.y] + [r["y"] for r in self.replays]) if self.replays else self.y
        return y if self.views is None else torch.cat([y, y])

    def replay_rows(self, k: int, of: torch.Tensor) -> torch.Tensor | None:
        """The rows of replay draw ``k`` in ``of`` (:attr:`outputs` or :attr:`features`), followed
        by those of its view when there are views (``None`` if there is no such draw)."""
        if k >= len(self.replays):
            return None
        span = self._span(k)
        if self.views is None:
            return of[span]
        n = len(self.inputs)
        return torch.cat([of[span], of[span.start + n:span.stop + n]])

    def _forward_keeping_features(self, model: nn.Module) -> torch.Tensor:
        parts = [self.inputs]
        if self.separate and self.replays:
            parts = list(self.inputs.split([len(self.y)] + [len(r["y"]) for r in self.replays]))
        features = [model.features(part) for part in parts]
        outputs = [model.classifier(f) for f in features]
        self.features = features[0] if len(parts) == 1 else torch.cat(features)
        return outputs[0] if len(parts) == 1 else torch.cat(outputs)

    @property
    def x(self) -> torch.Tensor:
        return self.inputs[: len(self.y)]

    @property
    def logits(self) -> torch.Tensor:
        return self.outputs[: len(self.y)]

    @property
    def replay(self) -> dict[str, torch.Tensor] | None:
        """The first replay draw, or ``None`` when nothing was replayed."""
        return self.replays[0] if self.replays else None

    @property
    def replay_logits(self) -> torch.Tensor | None:
        return self.replay_outputs(0)

    def draw(self, k: int) -> dict[str, torch.Tensor] | None:
        return self.replays[k] if k < len(self.replays) else None

    def _span(self, k: int) -> slice:
        start = len(self.y) + sum(len(r["y"]) for r in self.replays[:k])
        return slice(start, start + len(self.replays[k]["y"]))

    def replay_inputs(self, k: int) -> torch.Tensor | None:
        """The (augmented) inputs of replay draw ``k`` as they went into the forward (with
        :attr:`split`, the replayed activations)."""
        if k >= len(self.replays):
            return None
        return self.replays[k]["x"] if self.split is not None else self.inputs[self._span(k)]

    def replay_outputs(self, k: int) -> torch.Tensor | None:
        """The model's output on replay draw ``k`` (``None`` if there is no such draw)."""
        return self.outputs[self._span(k)] if k < len(self.replays) else None


def _with_features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    features = model.features(x)
    return model.classifier(features), features


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise a ``ValueError`` naming the option and its choices unless ``value`` is one of them."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")


class Term:
    """Base of the objective's terms: shared defaults only, no behaviour to inherit."""

    name: ClassVar[str] = ""
    uses_replay: bool = False
    draw: int = 0
    stores: ClassVar[tuple[str, ...]] = ()
    needs_task_boundaries: str | None = None  # why it cannot work on a task-free stream (lifelong.components)
    needs_features: ClassVar[bool] = False

    def __call__(self, batch: StepBatch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


TERMS: dict[str, type] = {}


register_term = registrar(TERMS, "term")


class Objective:
    """``L = Σ_k w_k · term_k(batch)`` (Wang et al., 2024, Eq. 1).

    ``weighers``: callables ``(terms, values) -> multipliers`` that scale the terms at each call
    (set by the loop from the components' ``reweight`` hooks, :mod:`lifelong.components`):
    ``terms`` are the ``(weight, term)`` pairs, ``values`` each term's unweighted value at this
    call (detached), and the loss is then ``Σ_k m_k · w_k · term_k`` with ``m_k`` the product of
    every weigher's ``k``-th multiplier (a number or a 0-dimensional tensor, treated as a
    constant). ``values``: each term's unweighted value (detached) at the last call, kept when a
    weigher is set or ``observe`` is true; otherwise ``None``. Without weighers (the default)
    the sum is the plain one above."""

    def __init__(self, terms: Sequence[tuple[float, Any]]) -> None:
        if not terms:
            raise ValueError("an objective needs at least one term")
        self.terms = list(terms)
        replay_terms = [term for _, term in self.terms if term.uses_replay]
        self.uses_replay = bool(replay_terms)
        self.draws = 1 + max((term.draw for term in replay_terms), default=-1)
        self.stores = tuple(sorted({f for _, term in self.terms for f in term.stores}))
        self.needs_features = any(getattr(term, "needs_features", False) for _, term in self.terms) \
            or "features" in self.stores
        self.taps = tuple(dict.fromkeys(name for _, term in self.terms for name in getattr(term, "taps", ())))
        self.weighers: list = []
        self.observe = False
        self.values: list[torch.Tensor] | None = None

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        if self.weighers or self.observe:
            return self._weighed(batch)
        total = None
        for weight, term in self.terms:
            value = term(batch) * weight
            total = value if total is None else total + value
        return total

    def _weighed(self, batch: StepBatch) -> torch.Tensor:
        values = [term(batch) for _, term in self.terms]
        self.values = [v.detach() for v in values]
        multipliers: list[Any] = [1.0] * len(values)
        for weigh in self.weighers:
            multipliers = [m * w for m, w in zip(multipliers, weigh(self.terms, self.values))]
        total = None
        for (weight, _), value, m in zip(self.terms, values, multipliers):
            value = value * weight
            if not (isinstance(m, float) and m == 1.0):
                value = value * (m.detach() if isinstance(m, torch.Tensor) else m)
            total = value if total is None else total + value
        return total
