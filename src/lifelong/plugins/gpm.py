"""Gradient projection on the input subspaces of finished tasks: GPM and CUBER.

**GPM** (Saha, Garg and Roy, "Gradient Projection Memory for Continual Learning", ICLR 2021;
reference code ``sahagobinda/GPM``, ``main_pmnist.py``, ``main_cifar100.py``,
``main_five_dataset.py``). A layer computes ``W a`` from its input ``a``; an update ``ΔW`` with
``ΔW a = 0`` for every input ``a`` an old task gives the layer leaves that task's outputs as they
were. At each task's end, per layer, the inputs of ``examples`` random training examples form the
representation matrix ``R`` (columns: one input each; for a convolution, every receptive-field
patch, im2col); its left singular vectors, kept up to an energy threshold ``ε_th``, extend the
layer's basis ``M`` (Eq. 5 after the first task; Eq. 8-9, on the residual ``R − M Mᵀ R``,
after later ones). While learning the next tasks the gradient of each layer's weight, seen as a
matrix ``G`` (out × in; a convolution's ``out × (C·k·k)``), loses its component in the span of
``M``: ``G ← G − G M Mᵀ`` (Eq. 10; the projection acts on the input side, as the reference's
``grad.view(out, -1) @ feature_mat``).

- A layer's bias is its weight on a constant input 1: the representation gets a row of ones and
  ``[W | b]`` is projected as one matrix (exact: ``[ΔW | Δb] [a; 1] = 0``). The reference's
  networks have no biases in projected layers.
- Parameters outside the ``nn.Linear`` and ``nn.Conv2d`` layers (batch norm's scale and shift)
  get a zero gradient from the second task on, as the reference's ``fill_(0)`` of the 1-d
  parameters.
- Energy criterion as the reference code: after the first task, the ``r`` leading vectors
  whose cumulative share of ``‖R‖²_F`` stays *below* ``ε_th`` (``np.sum(np.cumsum(ratio) <
  threshold)``: one vector fewer than the paper's Eq. 5); after later ones, starting from the
  share the basis already captures, ``(‖R‖² − ‖R̂‖²) / ‖R‖²``, the residual's vectors are added,
  largest first, until the share reaches ``ε_th`` (Eq. 9). Shares are of squared singular
  values.
- Thresholds: ``threshold`` for every layer, ``first_threshold`` for the first projected layer
  (P-MNIST: 0.95, then 0.99), plus ``threshold_step`` per finished task (CIFAR-100: 0.97 +
  0.003·t).

The singular vectors come from the eigen-decomposition of ``R Rᵀ`` in double precision (the
same vectors and squared singular values as the SVD of ``R``), accumulated over examples, so a
convolution's ``C·k·k × N·L`` patch matrix is never held at once.

**CUBER** (Lin, Yang, Fan and Zhang, "Beyond Not-Forgetting: Continual Learning with Backward
Knowledge Transfer", NeurIPS 2022). GPM keeps the basis of each finished task ``j`` as its own
block ``S_j`` (the vectors task ``j`` added; the blocks are orthogonal). At the start of task
``t``, per layer ``l`` and old task ``j``, with ``g`` the gradient of task ``t``'s loss on
``examples`` of its training examples at the current model and ``g_j`` the gradient of task
``j``'s loss stored at ``j``'s end:

- sufficient projection: ``‖g S_j S_jᵀ‖ > ε ‖g‖`` (``epsilon``; the trust-region test of the
  authors' TRGP code, ``LYang-666/TRGP``, ``eplison_1 = 0.2`` on P-MNIST);
- positive correlation: ``⟨g S_j S_jᵀ, g_j⟩ > 0`` (descending task ``t``'s loss in ``S_j``
  also descends task ``j``'s, to first order).

Where both hold the step keeps its component in ``S_j`` (task ``j``'s model is changed there: the
chance of backward transfer); elsewhere the component is removed, as GPM. With ``beta > 0`` the
gradient of the kept blocks also gets ``beta · g_j S_j S_jᵀ``: the gradient of
``beta · Σ_j ⟨g_j, Proj_{S_j}(W − W_{t−1})⟩``, task ``j``'s loss linearised at its end.

CUBER's reference code was not available; the tests and their thresholds follow the paper's
abstract, the research notes and the authors' TRGP code, and the regulariser is our reading
(off by default). docs/METHODS.md lists the differences.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from lifelong.errors import ConfigError
from lifelong.plugins import register_plugin
from lifelong.seeding import torch_generator

CHUNK = 64  # examples per forward when collecting representations
PATCH_CHUNK = 8  # examples per im2col slice inside a convolution's hook


def first_rank(energies: torch.Tensor, threshold: float) -> int:
    """After the first task (Eq. 5, as the reference code): how many leading vectors have a
    cumulative share of the energy (``energies``: squared singular values, largest first) below
    ``threshold``."""
    total = energies.sum()
    if total <= 0:
        return 0
    return int((torch.cumsum(energies / total, 0) < threshold).sum())


def residual_rank(total: float, residual: torch.Tensor, threshold: float) -> int:
    """After a later task (Eq. 9): from the share ``(total − Σ residual) / total`` the basis
    already captures, add the residual's vectors (``residual``: their squared singular values,
    largest first) until the share reaches ``threshold``; how many were added."""
    if total <= 0:
        return 0
    captured = (total - float(residual.sum())) / total
    r = 0
    for share in (residual / total).tolist():
        if captured >= threshold:
            break
        captured += share
        r += 1
    return r


def project_out(grad: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``G − G U Uᵀ``: ``grad`` (out × in) without its component in the span of the orthonormal
    columns of ``basis`` (in × r), on the input side."""
    return grad - (grad @ basis) @ basis.T


def _eigen(gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared singular values (largest first) and left singular vectors of a matrix ``R``
    from ``gram = R Rᵀ``: the SVD of a symmetric positive semi-definite matrix is its
    eigen-decomposition (``eigh`` fails to converge on some rank-deficient Gram matrices)."""
    vectors, values, _ = torch.linalg.svd(gram)
    return values, vectors


def update_basis(gram: torch.Tensor, columns: int, old: torch.Tensor | None, threshold: float) -> torch.Tensor:
    """The vectors one task adds to a layer's basis (GPM, Eq. 5 / Eq. 8-9): ``gram = R Rᵀ`` of
    its representation matrix with ``columns`` columns, ``old`` the basis so far (``None``
    before the first task). Returns a ``(d, r)`` block, ``r`` possibly 0; at most ``d`` vectors
    in all are kept."""
    d = gram.shape[0]
    keep = min(d, columns)  # the reference's SVD has min(d, n) singular values
    if old is None or old.shape[1] == 0:
        energies, vectors = _eigen(gram)
        if old is None:
            r = first_rank(energies[:keep], threshold)
            return vectors[:, :r]
        total = float(gram.trace())
        r = residual_rank(total, energies[:keep], threshold)
        return vectors[:, :r]
    total = float(gram.trace())
    rest = torch.eye(d, dtype=gram.dtype, device=gram.device) - old @ old.T
    residual = rest @ gram @ rest  # R̂ R̂ᵀ with R̂ = (I − M Mᵀ) R
    energies, vectors = _eigen((residual + residual.T) / 2)
    r = residual_rank(total, energies[:keep], threshold)
    return vectors[:, : min(r, d - old.shape[1])]


class _Layer:
    """A projected layer: ``nn.Linear`` or ``nn.Conv2d``, its weight (and bias) as one matrix
    ``out × d`` (``d``: inputs, or ``C·k·k`` patch entries, plus 1 for the bias)."""

    def __init__(self, name: str, module: nn.Module) -> None:
        self.name, self.module = name, module
        weight = module.weight
        self.inputs = weight[0].numel()
        self.d = self.inputs + (module.bias is not None)
        self.gram: torch.Tensor | None = None
        self.columns = 0

    def params(self) -> list[torch.Tensor]:
        return [self.module.weight] + ([self.module.bias] if self.module.bias is not None else [])

    def matrix(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """``[W | b]`` of ``tensors`` shaped like the weight (and bias)."""
        w = tensors[0].reshape(tensors[0].shape[0], -1)
        return torch.cat([w, tensors[1].reshape(-1, 1)], 1) if len(tensors) > 1 else w

    def grad(self) -> torch.Tensor | None:
        grads = [p.grad for p in self.params()]
        return None if any(g is None for g in grads) else self.matrix(grads)

    def set_grad(self, matrix: torch.Tensor) -> None:
        weight = self.module.weight
        weight.grad.copy_(matrix[:, : self.inputs].reshape(weight.shape))
        if self.module.bias is not None:
            self.module.bias.grad.copy_(matrix[:, self.inputs])

    def record(self, a: torch.Tensor) -> None:
        """Add the inputs ``a`` of a forward to ``R Rᵀ`` (one column per input or patch)."""
        if isinstance(self.module, nn.Conv2d):
            m = self.module
            for part in a.split(PATCH_CHUNK):
                cols = F.unfold(part, m.kernel_size, m.dilation, m.padding, m.stride)  # (N, C·k·k, L)
                self._add(cols.transpose(1, 2).reshape(-1, self.inputs))
        else:
            self._add(a.reshape(-1, self.inputs))

    def _add(self, rows: torch.Tensor) -> None:
        rows = rows.double()
        if self.d > self.inputs:
            rows = torch.cat([rows, rows.new_ones(len(rows), 1)], 1)
        gram = rows.T @ rows
        self.gram = gram if self.gram is None else self.gram + gram
        self.columns += len(rows)


def _layers(model: nn.Module) -> tuple[list[_Layer], list[torch.Tensor]]:
    """The projected layers, in module order, and the other trainable parameters."""
    layers = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.groups != 1 or module.padding_mode != "zeros" or isinstance(module.padding, str):
                raise ConfigError(f"gpm: convolution {name!r} has groups, a padding mode or a string padding "
                                  f"that the projection does not support (groups=1, zero padding by numbers only)")
            layers.append(_Layer(name, module))
        elif isinstance(module, nn.Linear):
            layers.append(_Layer(name, module))
    if not layers:
        raise ConfigError("gpm: the model has no nn.Linear or nn.Conv2d layer whose gradient could be projected")
    covered = {id(p) for layer in layers for p in layer.params()}
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in covered]
    return layers, others


def _check_fraction(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"`{key}` must be an energy threshold in (0, 1], got {value!r}")
    return float(value)


def _sample(state, examples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and labels of ``examples`` random training examples of the task in progress (the
    same draw whenever asked: it depends on the seed and the task only)."""
    task = state.task
    n = len(task.train_idx)
    order = torch.randperm(n, generator=torch_generator(state.seed, f"gpm-sample-{task.index}"))[: min(examples, n)]
    order = order.to(task.train_idx.device)
    idx = task.train_idx[order]
    ids = task.index if task.train_task is None else task.train_task[order]
    return state.stream.inputs("train", idx, ids), state.stream.labels("train", idx)


class _Eval:
    """The model in evaluation mode inside the block (batch norm uses its running statistics
    and does not update them), its mode restored after."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.training = model, model.training

    def __enter__(self) -> nn.Module:
        self.model.eval()
        return self.model

    def __exit__(self, *exc) -> None:
        self.model.train(self.training)


@register_plugin
class GPM:
    """Gradient Projection Memory (Saha et al., ICLR 2021, Eq. 5, 8-10; see the module
    docstring). Defaults are the reference's Permuted-MNIST settings: 300 examples, thresholds
    0.95 for the first layer and 0.99 for the others."""

    name = "gpm"
    needs_task_boundaries = "its bases are computed at each task's end"

    def __init__(self, threshold: float = 0.99, first_threshold: float | None = 0.95, threshold_step: float = 0.0,
                 examples: int = 300) -> None:
        self.threshold = _check_fraction("threshold", threshold)
        self.first_threshold = None if first_threshold is None else _check_fraction("first_threshold",
                                                                                    first_threshold)
        if isinstance(threshold_step, bool) or not isinstance(threshold_step, (int, float)) \
                or not math.isfinite(threshold_step) or threshold_step < 0:
            raise ValueError(f"`threshold_step` must be a number >= 0, got {threshold_step!r}")
        self.threshold_step = float(threshold_step)
        if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
            raise ValueError(f"`examples` must be a whole number >= 1, got {examples!r}")
        self.examples = examples
        self.tasks_done = 0
        self.blocks: list[list[torch.Tensor]] = []  # per layer, per finished task: (d, r_j), float64
        self._layers: list[_Layer] | None = None
        self._others: list[torch.Tensor] = []
        self._projectors: list[torch.Tensor | None] | None = None

    # -- thresholds and bases ----------------------------------------------------------------
    def layer_threshold(self, layer: int, task: int) -> float:
        """``ε_th`` of layer ``layer`` (from 0) at the end of task ``task`` (from 0)."""
        base = self.first_threshold if layer == 0 and self.first_threshold is not None else self.threshold
        return base + self.threshold_step * task

    def basis(self, layer: int) -> torch.Tensor | None:
        """The layer's whole basis (its blocks side by side), or ``None`` before any task ends."""
        blocks = self.blocks[layer] if self.blocks else []
        return torch.cat(blocks, 1) if blocks else None

    def _bind(self, model: nn.Module) -> None:
        if self._layers is None:
            self._layers, self._others = _layers(model)
            if not self.blocks:
                self.blocks = [[] for _ in self._layers]

    def _device(self) -> torch.device:
        return self._layers[0].module.weight.device

    # -- hooks -------------------------------------------------------------------------------
    def begin_task(self, state) -> None:
        self._bind(state.model)  # refuses an unsupported model before the first step

    @torch.no_grad()
    def end_task(self, state) -> None:
        self._bind(state.model)
        x, _ = _sample(state, self.examples)
        self._collect(state.model, x)
        for i, layer in enumerate(self._layers):
            old = self.basis(i)
            block = update_basis(layer.gram, layer.columns, old, self.layer_threshold(i, state.task.index))
            self.blocks[i].append(block.contiguous())
            layer.gram, layer.columns = None, 0
        self.tasks_done += 1
        self._projectors = None

    def _collect(self, model: nn.Module, x: torch.Tensor) -> None:
        """``R Rᵀ`` of every layer's inputs on ``x``, in evaluation mode."""
        handles = [layer.module.register_forward_pre_hook(lambda m, args, layer=layer: layer.record(args[0]))
                   for layer in self._layers]
        try:
            with _Eval(model):
                for part in x.split(CHUNK):
                    model(part)
        finally:
            for h in handles:
                h.remove()

    def projectors(self) -> list[torch.Tensor | None]:
        """Per layer, the basis whose span the gradient loses (float32, on the model's
        device), or ``None``; cached until the bases change."""
        if self._projectors is None:
            device = self._device()
            self._projectors = [None if b is None or b.shape[1] == 0 else b.to(device, torch.float32)
                                for b in map(self.basis, range(len(self._layers)))]
        return self._projectors

    @torch.no_grad()
    def after_backward(self, state, batch) -> None:
        if self.tasks_done == 0:
            return
        self._bind(state.model)
        for layer, basis, extra in zip(self._layers, self.projectors(), self.additions()):
            if basis is None and extra is None:
                continue
            grad = layer.grad()
            if grad is None:
                continue
            if basis is not None:
                grad = project_out(grad, basis)
            if extra is not None:
                grad = grad + extra
            layer.set_grad(grad)
        for p in self._others:  # batch norm's scale and shift: frozen from the second task on
            if p.grad is not None:
                p.grad.zero_()

    def additions(self) -> list[torch.Tensor | None]:
        """What is added to each layer's projected gradient (none for GPM)."""
        return [None] * len(self._layers)

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"tasks_done": self.tasks_done, "blocks": [[b.cpu() for b in layer] for layer in self.blocks]}

    def load_state_dict(self, state: dict, context=None) -> None:
        self.tasks_done = int(state["tasks_done"])
        self._layers, self._projectors = None, None
        self.blocks = [list(layer) for layer in state["blocks"]]
        if context is not None:
            self._bind(context.model)
            if len(self.blocks) != len(self._layers):
                raise ValueError(f"{self.name}: the checkpoint has bases for {len(self.blocks)} layers, "
                                 f"the model {len(self._layers)}")
            device = self._device()
            self.blocks = [[b.to(device) for b in layer] for layer in self.blocks]


def _gradients(model: nn.Module, layers: list[_Layer], x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Per layer, the gradient matrix ``[∂W | ∂b]`` of the mean cross-entropy on ``(x, y)``, in
    evaluation mode; the parameters' ``.grad`` are left alone."""
    with _Eval(model), torch.enable_grad():
        params = [p for layer in layers for p in layer.params()]
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
    out, at = [], 0
    for layer in layers:
        n = len(layer.params())
        out.append(layer.matrix(grads[at:at + n]).detach())
        at += n
    return out


@register_plugin
class CUBER(GPM):
    """CUBER (Lin et al., NeurIPS 2022; see the module docstring): GPM whose projection keeps,
    per layer, the blocks of the old tasks that pass the sufficient-projection and the
    positive-correlation tests at the task's start."""

    name = "cuber"
    needs_task_boundaries = "its bases and old-task gradients are taken at each task's end and its tests at each start"

    def __init__(self, threshold: float = 0.99, first_threshold: float | None = 0.95, threshold_step: float = 0.0,
                 examples: int = 300, epsilon: float = 0.2, beta: float = 0.0) -> None:
        super().__init__(threshold, first_threshold, threshold_step, examples)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 <= epsilon < 1:
            raise ValueError(f"`epsilon` (the sufficient-projection ratio) must lie in [0, 1), got {epsilon!r}")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0:
            raise ValueError(f"`beta` must be a number >= 0, got {beta!r}")
        self.epsilon, self.beta = float(epsilon), float(beta)
        self.old_grads: list[list[torch.Tensor]] = []  # per layer, per finished task: (out, d) at its end
        self.keep: list[list[bool]] = []  # per layer, per old task: kept for the task in progress
        self._additions: list[torch.Tensor | None] | None = None

    def decide(self, grads: list[torch.Tensor]) -> list[list[bool]]:
        """Per layer and old task: do both tests hold for the new task's gradients ``grads``?"""
        keep = []
        for i, g in enumerate(grads):
            row = []
            for block, old in zip(self.blocks[i], self.old_grads[i]):
                if block.shape[1] == 0:
                    row.append(False)
                    continue
                u = block.to(g.device, torch.float32)
                inside = (g @ u) @ u.T
                sufficient = float(inside.norm()) > self.epsilon * float(g.norm())
                positive = float((inside * old).sum()) > 0.0
                row.append(sufficient and positive)
            keep.append(row)
        return keep

    @torch.no_grad()
    def begin_task(self, state) -> None:
        self._bind(state.model)
        if self.tasks_done == 0:
            self.keep = [[] for _ in self._layers]
            return
        x, y = _sample(state, self.examples)
        self.keep = self.decide(_gradients(state.model, self._layers, x, y))
        self._projectors = self._additions = None

    @torch.no_grad()
    def end_task(self, state) -> None:
        self._bind(state.model)
        x, y = _sample(state, self.examples)
        grads = _gradients(state.model, self._layers, x, y)
        if not self.old_grads:
            self.old_grads = [[] for _ in self._layers]
        for i, g in enumerate(grads):
            self.old_grads[i].append(g)
        super().end_task(state)
        self._additions = None

    def projectors(self) -> list[torch.Tensor | None]:
        """Per layer, the blocks not kept (their span is removed from the gradient)."""
        if self._projectors is None:
            device, out = self._device(), []
            for i in range(len(self._layers)):
                keep = self.keep[i] if i < len(self.keep) else []
                removed = [b for j, b in enumerate(self.blocks[i]) if not (j < len(keep) and keep[j])]
                removed = [b for b in removed if b.shape[1]]
                out.append(torch.cat(removed, 1).to(device, torch.float32) if removed else None)
            self._projectors = out
        return self._projectors

    def additions(self) -> list[torch.Tensor | None]:
        """Per layer, ``beta · Σ_kept g_j S_j S_jᵀ`` (``None`` where nothing is kept or beta is 0)."""
        if self._additions is None:
            out = []
            for i in range(len(self._layers)):
                keep = self.keep[i] if i < len(self.keep) else []
                extra = None
                for j, kept in enumerate(keep):
                    if kept and self.beta:
                        u = self.blocks[i][j].to(self.old_grads[i][j].device, torch.float32)
                        term = self.beta * ((self.old_grads[i][j] @ u) @ u.T)
                        extra = term if extra is None else extra + term
                out.append(extra)
            self._additions = out
        return self._additions

    def kept(self) -> list[list[bool]]:
        """Per layer and old task, whether the task in progress keeps that task's block."""
        return [list(row) for row in self.keep]

    def state_dict(self) -> dict:
        return {**super().state_dict(), "old_grads": [[g.cpu() for g in layer] for layer in self.old_grads],
                "keep": [list(row) for row in self.keep]}

    def load_state_dict(self, state: dict, context=None) -> None:
        super().load_state_dict(state, context)
        self.keep = [[bool(k) for k in row] for row in state["keep"]]
        self._additions = None
        device = self._device() if self._layers is not None else None
        self.old_grads = [[g if device is None else g.to(device) for g in layer] for layer in state["old_grads"]]
