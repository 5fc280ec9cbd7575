"""RECAP's adaptive weights over the corpora of a batch (Phan et al., "Beyond Reasoning Gains:
Mitigating General Capabilities Forgetting in Large Reasoning Models", arXiv 2510.21978, 2025,
Sec. 4, Eq. 1, Algorithms 1 and 2; no reference code was found). The weights themselves are
:func:`lifelong.plugins.adaptive_weights.recap_weights`, the image side's.

Each window of a batch comes from one corpus: the current corpus (or, in a joint task, one of its
members) or, with ``--replay``, an earlier corpus. The objectives are the corpora: ``L_j`` is the
mean next-token loss of the batch's windows of corpus ``j``. Each corpus keeps the last ``2W``
values of ``L_j`` (unweighted, detached), recorded on the steps whose batch holds windows of it;
the history of a corpus runs on from its own training into its replay. On a step whose batch
holds the corpora ``P``, all with ``2W`` values (this step's included), and more than one of
them, ``λ_j`` (mean 1 over ``P``) is ``recap_weights`` of their histories; otherwise every ``λ_j``
is 1. The loss is::

    L = Σ_{j ∈ P} λ_j · (n_j / B) · L_j

with ``n_j`` the batch's windows of corpus ``j`` out of ``B``: uniform weights give the plain
batch mean, so the replay fraction keeps its meaning (the paper's ``(1/K) Σ λ_k L_k`` would give
a 5% replay half of the loss)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lifelong.errors import ConfigError
from lifelong.plugins.adaptive_weights import recap_weights


def check_recap(window: int, temperature: float) -> None:
    """A :class:`ConfigError` for a negative window or a temperature that is not a positive number."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise ConfigError(f"--recap (RECAP's window W in steps; 0: off) must be a whole number >= 0, got {window!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not math.isfinite(temperature) or temperature <= 0:
        raise ConfigError(f"--recap-temperature must be a number > 0, got {temperature!r}")


def window_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean next-token cross-entropy of each window (``B``) of ``logits`` (``B x T x V``)."""
    ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
    return ce.view(targets.shape).mean(1)


class CorpusWeights:
    """The histories of the ``n_corpora`` corpora's losses and the step's reweighted loss."""

    def __init__(self, n_corpora: int, window: int, temperature: float) -> None:
        check_recap(window, temperature)
        self.window, self.temperature = window, float(temperature)
        self.history = torch.zeros(n_corpora, 2 * window)  # oldest first
        self.counts = [0] * n_corpora  # values recorded per corpus
        self.last: dict[int, float] | None = None  # the λ of the latest reweighted step

    def loss(self, per_window: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        """The step's loss from each window's loss and its corpus; records the step's values."""
        present = sorted(set(sources.tolist()))
        masks = [sources == j for j in present]
        values = torch.stack([per_window[m].mean() for m in masks])
        shares = torch.stack([m.sum() for m in masks]).to(values.dtype) / len(sources)
        rows = torch.cat([self.history[present, 1:], values.detach().unsqueeze(1).to(self.history.dtype)], 1)
        ready = len(present) > 1 and all(self.counts[j] + 1 >= 2 * self.window for j in present)
        lam = recap_weights(rows, self.window, self.temperature) if ready else torch.ones(len(present))
        self.history[present] = rows
        for j in present:
            self.counts[j] += 1
        if ready:
            self.last = dict(zip(present, lam.tolist()))
        return (lam.to(values.dtype) * shares * values).sum()

    def weights(self) -> list[float | None]:
        """Each corpus's λ at the latest reweighted step (``None`` for one not in it, or all before one)."""
        last = self.last or {}
        return [last.get(j) for j in range(len(self.counts))]

    def state_dict(self) -> dict:
        return {"history": self.history, "counts": list(self.counts), "last": self.last}

    def load_state_dict(self, state: dict) -> None:
        self.history, self.counts = state["history"].clone(), [int(c) for c in state["counts"]]
        self.last = state.get("last")  # absent from checkpoints written before it was kept
