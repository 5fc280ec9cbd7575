"""SHARP's sparse network with unit ages and rewiring (Gurbuz et al., "SHARP: Sparsity and Hidden
Activation RePlay for Neuro-Inspired Continual Learning", 2023, Sec. 3.1-3.2, after NISPA;
BurakGurbuz97/SHARP-Continual-Learning ``Source/architecture.py``, ``Source/rewire.py``,
``Source/learner.py``, ``Source/train_and_eval.py``).

The trainable layers (``nn.Linear`` and ``nn.Conv2d`` of the backbone's ``features``, after the
activation memory's frozen split when there is one) keep a fixed fraction of their connections
(``pruning``: 60% removed at random when training starts; biases kept; convolutions channel by
channel; the network's first convolution dense, as ``random_prune(skip_first_conv=True)``).
Each output unit of such a layer has an *age*: 0 plastic, 1 candidate, 2 and more stable.

Each task is trained in ``phases`` phases (the reference's ``max_phases`` phases of
``phase_epochs`` epochs; here the task's steps, ``epochs · ⌈n / batch size⌉``, split evenly). At
the start of phase ``p`` (1-based):

1. **Selection** (``Network.select_u0_u1_units``, ``pick_top_neurons``): the first
   ``selection_examples`` training examples of the task go through the network in eval mode; a
   unit's activation is its ReLU'd output summed over the examples (and over positions, for a
   convolution). Per layer, the smallest set of units by decreasing activation whose sum reaches
   the fraction ``s_p = max(½(1 + cos(π t / tau)), min_selection)`` of the layer's total, with
   ``t = max(p, 2)`` (the reference's first phase uses ``t = 2``, as does its second), is
   picked; plastic and candidate units that are picked become candidates (1), the others plastic
   (0); stable units keep their age.
2. **Drop** (``Network.create_drop_masks``, ``drop_connections``): every connection from a
   plastic unit of layer ``l`` to a unit of layer ``l + 1`` that is not plastic is removed (a
   convolution's channel feeding a linear layer owns its block of ``H·W`` flattened inputs).
3. **Grow** (``Growth._random_grow``): the same number of connections per layer is added at
   random among the absent connections into the layer's plastic units (from any unit of the layer
   before), with zero weights; when there are fewer, all of them (the density then falls, as in
   the reference).

With ``reset_optimizer`` the optimiser's state (momentum) is cleared at each phase start, as the
reference creates a new optimiser for each phase. During training the plastic units of the last
layer output zero (``MaskedOut_U0``), so the representation is made of candidate and stable
units. At a task's end (``Learner.end_episode``) every non-plastic unit ages by one
(``promote_units``); units older than ``short_term_tasks + 1`` are *frozen*: their incoming
weights and biases get no gradient and keep their values (``update_freeze_masks``,
``reset_frozen_gradients``); with ``reinit``, the rows of plastic units are re-drawn
(Kaiming-normal, fan-out of the rows drawn, zero bias; ``re_initialize_u0``).

:meth:`SparseRewiring.units_of_age` gives the masked kNN (:mod:`lifelong.plugins.knn`) the units
of the last layer at least a given age: a finished task's classes are compared on the units
stable at its end (age 2), the replayed classes of a task ``a`` tasks older on those of age
``3 + a`` (``Learner.create_ltm_representations``).

Pruned weights are held at zero by masking the gradient after the backward and the weights after
each update (the reference multiplies the weights by the mask in every forward; the two agree
for any optimiser whose update of a zero gradient is zero, and the re-masking also covers
momentum and weight decay). Frozen units likewise get their values back after each update. A
plug-in that moves the weights inside a step (refresh learning's unlearning) moves pruned and
frozen weights until the step's end, when they are restored.

Several processes (:mod:`lifelong.distributed`): every decision is the same on every rank, with
nothing to reduce. The initial pruning, the random growth and the re-initialisation draw from
one generator seeded alike on every rank (``sparse-rewiring``, the same name on all ranks); the
selection's activations are computed by every rank over the task's first examples (not its share
of a batch) with the same model (the gradients are averaged), so they are one process's; the
phases count the steps that run (:func:`lifelong.distributed.steps`: a last batch smaller than
the number of ranks is skipped), the same on every rank; the masks act on the averaged
gradients. The checkpoint's state is rank 0's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from lifelong import distributed
from lifelong.plugins import register_plugin
from lifelong.seeding import numpy_generator

SPARSE = (nn.Linear, nn.Conv2d)


def selection_fraction(phase: int, tau: float, minimum: float) -> float:
    """``max(½(1 + cos(π·max(phase, 2)/tau)), minimum)``: the share of a layer's activation mass
    whose units are picked at the start of phase ``phase`` (1-based; ``get_tau_schedule``'s
    cosine, evaluated at 2 for the first phase as ``learn_next_episode`` does)."""
    t = max(int(phase), 2)
    return max(0.5 * (1.0 + math.cos(t * math.pi / tau)), minimum)


def top_units(activation: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boolean mask of the smallest set of units, taken by decreasing activation (ties by index),
    whose activations sum to at least ``fraction`` of the total (at least one unit;
    ``pick_top_neurons``)."""
    order = torch.sort(activation, descending=True, stable=True).indices
    cumulative = torch.cumsum(activation[order].double(), 0)
    total = cumulative[-1]
    count = int((cumulative < total * fraction).sum()) + 1
    picked = torch.zeros(len(activation), dtype=torch.bool, device=activation.device)
    picked[order[: min(count, len(activation))]] = True
    return picked


@dataclass
class SparseLayer:
    """One rewired layer: ``mask`` (bool) of its connections, ``(out, in)`` for a linear layer
    and ``(out, in channels)`` for a convolution; ``ages`` of its output units; ``group``: the
    inputs each unit of the layer before owns (``H·W`` for a linear layer after a convolution,
    else 1)."""

    name: str
    module: nn.Module
    mask: torch.Tensor
    ages: torch.Tensor
    group: int = 1

    def weight_mask(self) -> torch.Tensor:
        """The mask in the weight's shape (a convolution's spread over its kernel)."""
        m = self.mask.to(self.module.weight.dtype)
        return m if m.dim() == self.module.weight.dim() else m[:, :, None, None].expand_as(self.module.weight)

    def source_columns(self, plastic: torch.Tensor) -> torch.Tensor:
        """The input columns that come from the given units of the layer before."""
        return plastic.repeat_interleave(self.group) if self.group != 1 else plastic


def drop_connections(layer: SparseLayer, source_plastic: torch.Tensor) -> int:
    """Remove the connections from plastic units of the layer before (``source_plastic``) into
    units of ``layer`` that are not plastic; return how many were removed."""
    cols = layer.source_columns(source_plastic)
    drop = layer.mask & (layer.ages != 0)[:, None] & cols[None, :]
    layer.mask &= ~drop
    return int(drop.sum())


def grow_connections(layer: SparseLayer, quota: int, rng: np.random.Generator) -> torch.Tensor:
    """Add ``quota`` connections at random among the absent ones into ``layer``'s plastic units
    (all of them when there are fewer), with zero weights; return the mask of those added."""
    possible = (layer.ages == 0)[:, None] & ~layer.mask
    where = torch.nonzero(possible.flatten()).squeeze(1).cpu().numpy()
    if quota <= 0 or len(where) == 0:
        return torch.zeros_like(layer.mask)
    if len(where) > quota:
        where = rng.choice(where, size=quota, replace=False)
    grown = torch.zeros(layer.mask.numel(), dtype=torch.bool, device=layer.mask.device)
    grown[torch.as_tensor(where, device=layer.mask.device)] = True
    grown = grown.view_as(layer.mask)
    layer.mask |= grown
    with torch.no_grad():
        w = layer.module.weight
        w.masked_fill_(grown if w.dim() == 2 else grown[:, :, None, None].expand_as(w), 0.0)
    return grown


def reset_optimizer_state(optimizer) -> None:
    """Forget the optimiser's running state (momentum, squared averages), as a new optimiser
    would start: ``reset_state()`` where the optimiser has it, else ``state.clear()``."""
    reset = getattr(optimizer, "reset_state", None)
    if callable(reset):
        reset()
    elif isinstance(getattr(optimizer, "state", None), dict):
        optimizer.state.clear()


def _trainable_part(state) -> nn.Module:
    split = getattr(state.memory, "split", None)
    if split is not None:
        return split.late
    features = getattr(state.model, "features", None)
    if features is None:
        raise ValueError("sparse-rewiring needs a backbone with a `features` module (every lifelong backbone has one)")
    return features


@register_plugin
class SparseRewiring:
    """SHARP's sparse network (see the module docstring). Options, with the reference's names:
    ``pruning`` (``prune_perc`` / 100; 0.6), ``phases`` (``max_phases``; 10 on Split-MNIST),
    ``min_selection`` (``min_activation_perc`` / 100; 0.9 on Split-MNIST), ``tau``
    (``tau_param``; 30), ``short_term_tasks`` (``stm_num_tasks``; 1: a unit is frozen once it has
    been stable through the task after its own), ``reinit`` (``reinit``; true),
    ``selection_examples`` (1024), ``reset_optimizer`` (true: a new optimiser per phase)."""

    name = "sparse-rewiring"
    needs_task_boundaries = "it splits each task into phases and ages its units at each task's end"

    def __init__(self, pruning: float = 0.6, phases: int = 10, min_selection: float = 0.9, tau: float = 30.0,
                 short_term_tasks: int = 1, reinit: bool = True, selection_examples: int = 1024,
                 reset_optimizer: bool = True) -> None:
        def number(key, value, ok, what):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
                raise ValueError(f"`{key}` must be {what}, got {value!r}")

        number("pruning", pruning, lambda v: 0 <= v < 1, "a number in [0, 1)")
        number("min_selection", min_selection, lambda v: 0 < v <= 1, "a number in (0, 1]")
        number("tau", tau, lambda v: v > 0 and math.isfinite(v), "a positive number")
        for key, value, low in (("phases", phases, 1), ("short_term_tasks", short_term_tasks, 0),
                                ("selection_examples", selection_examples, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 100000:
                raise ValueError(f"`{key}` must be an integer in {low}..100000, got {value!r}")
        for key, value in (("reinit", reinit), ("reset_optimizer", reset_optimizer)):
            if not isinstance(value, bool):
                raise ValueError(f"`{key}` must be true or false, got {value!r}")
        self.pruning, self.phases, self.min_selection, self.tau = float(pruning), phases, float(min_selection), float(tau)
        self.short_term_tasks, self.reinit, self.selection_examples = short_term_tasks, reinit, selection_examples
        self.reset_optimizer = reset_optimizer
        self.layers: list[SparseLayer] = []
        self.rng: np.random.Generator | None = None
        self.task_first_step = 0  # the run's step at which the task in progress began
        self.task_steps = 1  # steps of the task in progress
        self.frozen_values: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.rewirings: list[dict] = []  # per phase start: task, phase, fraction, dropped, grown (for logs, tests)
        self._masking_output = False
        self._handle = None

    # -- building and restoring -----------------------------------------------------------------
    def _find_layers(self, state) -> list[tuple[str, nn.Module, int]]:
        part = _trainable_part(state)
        names = {id(m): n for n, m in state.model.named_modules()}
        found, previous = [], None
        for module in part.modules():
            if isinstance(module, SPARSE):
                group = 1
                if isinstance(module, nn.Linear) and isinstance(previous, nn.Conv2d):
                    group = max(1, module.in_features // previous.out_channels)
                found.append((names[id(module)], module, group))
                previous = module
        if not found:
            raise ValueError("sparse-rewiring found no linear or convolutional layer to rewire in the trainable part")
        return found

    def _build(self, state) -> None:
        self.rng = numpy_generator(state.seed, "sparse-rewiring")
        first_conv = next((m for m in state.model.modules() if isinstance(m, nn.Conv2d)), None)
        for name, module, group in self._find_layers(state):
            shape = tuple(module.weight.shape[:2])
            if module is first_conv:
                mask = torch.ones(shape, dtype=torch.bool)
            else:
                mask = torch.from_numpy(self.rng.random(shape) >= self.pruning)
            mask = mask.to(module.weight.device)
            ages = torch.zeros(shape[0], dtype=torch.long, device=module.weight.device)
            self.layers.append(SparseLayer(name, module, mask, ages, group))
        self._apply_masks()
        self._snapshot_frozen()
        self._hook_output()

    def _hook_output(self) -> None:
        if self._handle is None:
            self._handle = self.layers[-1].module.register_forward_hook(self._mask_plastic_output)

    def _mask_plastic_output(self, module, inputs, output):
        """``MaskedOut_U0``: the last layer's plastic units output zero (no gradient through them)."""
        if not self._masking_output:
            return output
        keep = (self.layers[-1].ages != 0).to(output.dtype)
        return output * (keep if output.dim() == 2 else keep[:, None, None])

    def state_dict(self) -> dict:
        return {"layers": [(l.name, l.mask, l.ages, l.group) for l in self.layers],
                "rng": None if self.rng is None else self.rng.bit_generator.state,
                "task_first_step": self.task_first_step, "task_steps": self.task_steps,
                "rewirings": list(self.rewirings)}

    def load_state_dict(self, state: dict, context=None) -> None:
        self.task_first_step, self.task_steps = int(state["task_first_step"]), int(state["task_steps"])
        self.rewirings = list(state.get("rewirings", []))
        if context is None or not state["layers"]:
            return
        self.rng = numpy_generator(context.seed, "sparse-rewiring")
        if state["rng"] is not None:
            self.rng.bit_generator.state = state["rng"]
        model = context.model
        self.layers = [SparseLayer(name, model.get_submodule(name), mask.to(torch.bool), ages.to(torch.long), int(group))
                       for name, mask, ages, group in state["layers"]]
        self._snapshot_frozen()  # frozen weights never change once frozen, so the restored ones are theirs
        self._hook_output()
        self._masking_output = True

    # -- the hooks --------------------------------------------------------------------------------
    def begin_task(self, state) -> None:
        if not self.layers:
            self._build(state)
        self._masking_output = True
        self.task_first_step = state.step

    def training_set(self, state, train_set):
        self.task_steps = max(1, state.epochs * distributed.steps(train_set.num_train, max(1, state.batch_size)))
        return train_set

    def phase_starts(self) -> list[int]:
        """The task's step (from 0) at which each phase begins: ``⌈k·S/P⌉`` for phase ``k + 1``."""
        return [math.ceil(k * self.task_steps / self.phases) for k in range(self.phases)]

    def before_step(self, state, batch) -> None:
        step = state.step - self.task_first_step
        for k, start in enumerate(self.phase_starts()):
            if start == step:
                self.rewire(state, k + 1)

    def after_backward(self, state, batch) -> None:
        for layer, frozen in zip(self.layers, self._frozen_rows()):
            w, b = layer.module.weight, layer.module.bias
            if w.grad is not None:
                w.grad.mul_(layer.weight_mask())
                if frozen.any():
                    w.grad[frozen] = 0
            if b is not None and b.grad is not None and frozen.any():
                b.grad[frozen] = 0

    @torch.no_grad()
    def after_step(self, state, batch) -> None:
        self._restore_frozen()
        self._apply_masks()

    @torch.no_grad()
    def end_task(self, state) -> None:
        for layer in self.layers:  # promote_units: every non-plastic unit ages by one
            layer.ages[layer.ages != 0] += 1
        self._snapshot_frozen()
        if self.reinit:
            self._reinitialise_plastic()
        self._apply_masks()

    # -- rewiring ---------------------------------------------------------------------------------
    @torch.no_grad()
    def rewire(self, state, phase: int) -> None:
        """Selection, drop and grow at the start of ``phase`` (1-based; see the module docstring)."""
        fraction = selection_fraction(phase, self.tau, self.min_selection)
        activation = self._activations(state)
        for layer, act in zip(self.layers, activation):
            picked = top_units(act, fraction)
            open_ = layer.ages <= 1  # plastic and candidate units are chosen again
            layer.ages[open_ & picked] = 1
            layer.ages[open_ & ~picked] = 0
        dropped, grown = [0], [0]
        for before, layer in zip(self.layers, self.layers[1:]):
            quota = drop_connections(layer, before.ages == 0)
            dropped.append(quota)
            grown.append(int(grow_connections(layer, quota, self.rng).sum()))
        self._apply_masks()
        if self.reset_optimizer:
            reset_optimizer_state(state.optimizer)
        self.rewirings.append({"task": state.task.index, "phase": phase, "fraction": fraction,
                               "dropped": dropped, "grown": grown})

    def _activations(self, state) -> list[torch.Tensor]:
        """Each layer's units' ReLU'd outputs summed over the task's first examples (eval mode,
        the plastic output units not masked)."""
        task, model = state.task, state.model
        idx = task.train_idx[: self.selection_examples]
        ids = None if task.train_task is None else task.train_task[: self.selection_examples]
        x = state.stream.inputs("train", idx, task.index if ids is None else ids)
        sums = [torch.zeros(len(l.ages), device=l.ages.device) for l in self.layers]

        def hook(i):
            def record(module, inputs, output):
                a = torch.relu(output)
                sums[i] += a.sum(dim=0) if a.dim() == 2 else a.sum(dim=(0, 2, 3))
            return record

        handles = [l.module.register_forward_hook(hook(i)) for i, l in enumerate(self.layers)]
        was_training, masking = model.training, self._masking_output
        model.eval()
        self._masking_output = False
        try:
            for s in range(0, len(x), 1024):
                model.features(x[s:s + 1024])
        finally:
            for h in handles:
                h.remove()
            model.train(was_training)
            self._masking_output = masking
        return sums

    # -- masks, freezing, re-initialisation --------------------------------------------------------
    def _apply_masks(self) -> None:
        with torch.no_grad():
            for layer in self.layers:
                layer.module.weight.mul_(layer.weight_mask())

    def _frozen_rows(self) -> list[torch.Tensor]:
        return [layer.ages > self.short_term_tasks + 1 for layer in self.layers]

    def _snapshot_frozen(self) -> None:
        self.frozen_values = [(l.module.weight.detach().clone(),
                               None if l.module.bias is None else l.module.bias.detach().clone()) for l in self.layers]

    def _restore_frozen(self) -> None:
        for layer, frozen, (w0, b0) in zip(self.layers, self._frozen_rows(), self.frozen_values):
            if frozen.any():
                layer.module.weight[frozen] = w0[frozen]
                if b0 is not None:
                    layer.module.bias[frozen] = b0[frozen]

    def _reinitialise_plastic(self) -> None:
        for layer in self.layers:
            rows = torch.nonzero(layer.ages == 0).squeeze(1)
            if len(rows) == 0:
                continue
            w = layer.module.weight
            block = torch.empty((len(rows),) + tuple(w.shape[1:]), dtype=w.dtype, device=w.device)
            fan_out = block.shape[0] * (block[0][0].numel() if block.dim() > 2 else 1)
            g = torch.Generator().manual_seed(int(self.rng.integers(2 ** 62)))
            block.copy_(torch.randn(block.shape, generator=g) * math.sqrt(2.0 / fan_out))
            w[rows] = block
            if layer.module.bias is not None:
                layer.module.bias[rows] = 0.0

    def units_of_age(self, min_age: int) -> torch.Tensor | None:
        """The last layer's units of age at least ``min_age`` (what the masked kNN compares a
        class on)."""
        if not self.layers:
            return None
        return self.layers[-1].ages >= min_age
