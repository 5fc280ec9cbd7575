"""ReLoop2's error memory (Zhu et al., "ReLoop2: Building Self-Adaptive Recommendation Models via
Responsive Error Compensation Loop", KDD 2023): a non-parametric, constant-size memory of the
model's recent errors that corrects its predictions without a gradient step.

The slow learner is the model; the fast learner is the memory. Each observed example is written
as a key, the model's hidden representation ``h = features(x)`` (L2-normalised), and a value, its
residual ``e = y − ŷ``. At prediction the memory estimates the expected error of a new input
from the stored errors nearest to it and compensates the output (the paper's error compensation,
its Sec. 3):

    ê(x) = Σ_{i ∈ top-k(x)} w_i · e_i,   w = softmax(cos(h, h_i) / τ) over the k nearest
    ŷ'(x) = ŷ(x) + λ · ê(x)

The memory is an LSH table: ``bits`` random hyperplanes (sign random projections, Charikar 2002)
hash a key to one of ``2**bits`` buckets, and the nearest errors are looked for in the query's
bucket only (O(slots) per query). Each bucket holds ``slots`` entries and overwrites its oldest
first (FIFO), so the footprint is fixed, ``2**bits · slots · (d + C)`` numbers, however long the
stream. The paper's CTR form has a scalar ``y ∈ {0, 1}`` and ``ŷ = σ(logit)``; for a classifier
over ``C`` classes we use the probability residual ``e = onehot(y) − softmax(z)`` and compensate
the probabilities, ``p' = softmax(z) + λ·ê`` (which still sums to 1; the class is ``argmax p'``).
Only the paper's abstract could be read; the sketch's exact layout and the weighting are
documented as ours in docs/METHODS.md ("Error memory").

:class:`ErrorMemory` is the data structure; :class:`ErrorMemoryPlugin` (``error-memory``) wraps it
for a run: evaluation ranks classes by ``p'`` (its ``scores``), and during training each incoming
batch's errors, as predicted before the step learns from it, are written (ReLoop2's loop: the
deployed model predicts, the feedback arrives, the error is stored); with several processes
the ranks' errors are gathered first, so that every rank writes the whole batch's
(:func:`every_rank`). The prequential protocol of
:mod:`lifelong.prequential` refreshes it while predicting a drifting stream.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from lifelong import distributed
from lifelong.plugins import register_plugin

MAX_BITS = 20


def check_settings(bits: int, slots: int, k: int, temperature: float, lam: float) -> None:
    """Raise ``ValueError`` (one line) for settings the memory cannot use."""
    def whole(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def real(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if not whole(bits) or not 1 <= bits <= MAX_BITS:
        raise ValueError(f"`bits` (the hash size: 2**bits buckets) must be an integer in 1..{MAX_BITS}, got {bits!r}")
    if not whole(slots) or slots < 1:
        raise ValueError(f"`slots` (errors kept per bucket) must be an integer >= 1, got {slots!r}")
    if not whole(k) or k < 1:
        raise ValueError(f"`k` (nearest errors used) must be an integer >= 1, got {k!r}")
    if not real(temperature) or temperature <= 0:
        raise ValueError(f"`temperature` must be a positive number, got {temperature!r}")
    if not real(lam) or not 0.0 <= lam <= 1.0:
        raise ValueError(f"`lam` (the compensation weight λ) must lie in [0, 1], got {lam!r}")


class ErrorMemory:
    """A fixed-size LSH memory of (key, residual) pairs; see the module docstring.

    The tables are allocated at the first :meth:`write` or :meth:`estimate`, when the key size
    ``d`` and the number of classes ``C`` are known; from then on their shapes never change
    (:attr:`nbytes` is constant). ``seed`` fixes the hyperplanes: two memories with the same seed
    hash alike.
    """

    def __init__(self, bits: int = 6, slots: int = 64, k: int = 16, temperature: float = 0.1, lam: float = 0.5,
                 seed: int = 0) -> None:
        check_settings(bits, slots, k, temperature, lam)
        self.bits, self.slots, self.k = int(bits), int(slots), int(k)
        self.temperature, self.lam, self.seed = float(temperature), float(lam), int(seed)
        self.planes: torch.Tensor | None = None  # (d, bits) Gaussian hyperplane normals
        self.keys: torch.Tensor | None = None  # (2**bits, slots, d), unit rows
        self.values: torch.Tensor | None = None  # (2**bits, slots, C) residuals
        self.writes: torch.Tensor | None = None  # (2**bits,) long: errors ever written to each bucket

    @property
    def buckets(self) -> int:
        return 2 ** self.bits

    @property
    def capacity(self) -> int:
        return self.buckets * self.slots

    @property
    def nbytes(self) -> int:
        """Bytes the tables take (0 before they are allocated)."""
        parts = (self.planes, self.keys, self.values, self.writes)
        return sum(t.numel() * t.element_size() for t in parts if t is not None)

    def __len__(self) -> int:
        return 0 if self.writes is None else int(self.writes.clamp(max=self.slots).sum())

    def _allocate(self, dim: int, num_classes: int, device: torch.device) -> None:
        if self.keys is not None:
            if self.keys.shape[2] != dim or self.values.shape[2] != num_classes:
                raise ValueError(f"the error memory holds keys of size {self.keys.shape[2]} and {self.values.shape[2]} "
                                 f"classes; got {dim} and {num_classes}")
            return
        self._hyperplanes(dim, device)
        self.keys = torch.zeros(self.buckets, self.slots, dim, device=device)
        self.values = torch.zeros(self.buckets, self.slots, num_classes, device=device)
        self.writes = torch.zeros(self.buckets, dtype=torch.long, device=device)

    def _hyperplanes(self, dim: int, device: torch.device) -> torch.Tensor:
        """The ``(d, bits)`` hyperplane normals, drawn from N(0, 1) with :attr:`seed` on first use."""
        if self.planes is None:
            generator = torch.Generator().manual_seed(self.seed)
            self.planes = torch.randn(dim, self.bits, generator=generator).to(device)
        if self.planes.shape[0] != dim:
            raise ValueError(f"the error memory hashes keys of size {self.planes.shape[0]}, got {dim}")
        return self.planes

    def bucket(self, keys: torch.Tensor) -> torch.Tensor:
        """The bucket of each key: the bits ``[h·r_j > 0]`` of the ``bits`` hyperplanes, read as
        a binary number (sign random projection, Charikar 2002)."""
        signs = (keys @ self._hyperplanes(keys.shape[1], keys.device) > 0).long()
        return (signs << torch.arange(self.bits, device=keys.device)).sum(1)

    @torch.no_grad()
    def write(self, features: torch.Tensor, residuals: torch.Tensor) -> None:
        """Store each row's normalised ``features`` and ``residuals`` in its bucket, in order,
        overwriting the bucket's oldest entry when it is full (FIFO)."""
        keys = F.normalize(features.float(), dim=1)
        self._allocate(keys.shape[1], residuals.shape[1], keys.device)
        buckets = self.bucket(keys)
        # rank of each row among the rows of the batch that share its bucket, in batch order
        order = torch.argsort(buckets, stable=True)
        sorted_b = buckets[order]
        first = torch.searchsorted(sorted_b, sorted_b, right=False)
        rank = torch.empty_like(buckets)
        rank[order] = torch.arange(len(buckets), device=keys.device) - first
        count = torch.bincount(buckets, minlength=self.buckets)
        keep = rank >= count[buckets] - self.slots  # more rows than slots: the last ones win
        b, r = buckets[keep], rank[keep]
        position = (self.writes[b] + r) % self.slots
        self.keys[b, position] = keys[keep]
        self.values[b, position] = residuals[keep].to(self.values.dtype)
        self.writes += count

    @torch.no_grad()
    def estimate(self, features: torch.Tensor) -> torch.Tensor:
        """``ê``: per row, the softmax(cos/τ)-weighted mean residual of the ``k`` stored errors
        in its bucket nearest to it by cosine; zero where the bucket is empty."""
        query = F.normalize(features.float(), dim=1)
        if self.keys is None:  # nothing written yet: no classes known, no error to compensate
            return torch.zeros(len(query), 0, device=query.device)
        buckets = self.bucket(query)
        keys, values = self.keys[buckets], self.values[buckets]  # (n, slots, d), (n, slots, C)
        sims = torch.einsum("nd,nsd->ns", query, keys)
        filled = torch.arange(self.slots, device=query.device) < self.writes[buckets].clamp(max=self.slots).unsqueeze(1)
        sims = sims.masked_fill(~filled, float("-inf"))
        top, index = sims.topk(min(self.k, self.slots), dim=1)
        weights = torch.softmax(top / self.temperature, dim=1).nan_to_num(0.0)  # an empty bucket: all -inf
        chosen = values.gather(1, index.unsqueeze(2).expand(-1, -1, values.shape[2]))
        return torch.einsum("nk,nkc->nc", weights, chosen)

    @torch.no_grad()
    def correct(self, features: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """``p' = p + λ·ê``: the model's probabilities compensated by the memory."""
        if self.keys is None:
            return probs
        return probs + self.lam * self.estimate(features).to(probs.dtype)

    @staticmethod
    def residuals(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``onehot(y) − p``: the error of the probabilities ``p`` on labels ``y``."""
        return F.one_hot(y, probs.shape[1]).to(probs.dtype) - probs

    def state_dict(self) -> dict:
        return {"planes": self.planes, "keys": self.keys, "values": self.values, "writes": self.writes}

    def load_state_dict(self, state: dict) -> None:
        self.planes, self.keys, self.values, self.writes = (state[k] for k in ("planes", "keys", "values", "writes"))


def predict(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, softmax probabilities)`` of ``model`` on ``x`` (one forward)."""
    features = model.features(x)
    return features, torch.softmax(model.classifier(features).float(), dim=1)


def every_rank(features: torch.Tensor, residuals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The errors of the whole global batch: with several processes each rank predicts its own
    share, and the ranks' ``(features, residuals)`` rows are gathered in rank order
    (:func:`lifelong.distributed.cat_ranks` of both side by side), which is the batch's
    own order, so that every rank writes the same rows in the same order as one process
    (:mod:`lifelong.distributed`). One process: unchanged."""
    if not distributed.parallel():
        return features, residuals
    both = distributed.cat_ranks(torch.cat([features.float(), residuals.float()], dim=1))
    return both[:, : features.shape[1]], both[:, features.shape[1]:]


@register_plugin
class ErrorMemoryPlugin:
    """``error-memory``: evaluation scores are ReLoop2's compensated probabilities ``p'``; each
    training batch's errors (predicted in evaluation mode before the step) are written first
    (``during_training: false`` leaves the memory to the prequential protocol).

    Options: ``bits`` (hash size, ``2**bits`` buckets), ``slots`` per bucket, ``k`` nearest
    errors, ``temperature`` τ of the similarity softmax, ``lam`` λ in [0, 1], ``seed`` of the
    hyperplanes."""

    name = "error-memory"

    def __init__(self, bits: int = 6, slots: int = 64, k: int = 16, temperature: float = 0.1, lam: float = 0.5,
                 seed: int = 0, during_training: bool = True) -> None:
        if not isinstance(during_training, bool):
            raise ValueError(f"`during_training` must be true or false, got {during_training!r}")
        self.memory = ErrorMemory(bits, slots, k, temperature, lam, seed)
        self.during_training = during_training

    def state_dict(self) -> dict:
        return self.memory.state_dict()

    def load_state_dict(self, state: dict, context=None) -> None:
        self.memory.load_state_dict(state)

    @torch.no_grad()
    def before_step(self, state, batch) -> None:
        if not self.during_training:
            return
        model = state.model
        was_training = model.training
        model.eval()
        x, y = batch.x, batch.y
        if batch.repeats > 1:  # view-batch replay: each example once, its first view
            x, y = x[:: batch.repeats], y[:: batch.repeats]
        features, probs = predict(model, x)
        model.train(was_training)
        features, residuals = every_rank(features, ErrorMemory.residuals(probs, y))
        self.memory.write(features, residuals)

    @torch.no_grad()
    def scores(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        features, probs = predict(model, x)
        return self.memory.correct(features, probs)
