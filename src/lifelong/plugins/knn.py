"""SHARP's masked kNN classifier (Gurbuz et al., 2023, Sec. 3.4; BurakGurbuz97/SHARP-Continual-
Learning ``Source/neocortex.py``, ``Learner.create_ltm_representations``).

At the end of each task the plug-in keeps ``per_class`` representations (the backbone's
features, in eval mode) of each of the task's classes, from its first ``per_class`` training
examples, with a *mask*: the units of the representation that were valid when it was stored.
The classes the activation memory replays (those of the last ``recent_tasks`` tasks before) get
their representations recomputed from the stored activations through the late part, with their
own mask. An input is then classified by majority vote among its ``k`` nearest stored
representations, where its distance to a representation ``r`` of class ``c`` is

    d(q, r) = ‖ q[m_c] / ‖q[m_c]‖ − r[m_c] / ‖r[m_c]‖ ‖,

``m_c`` the mask stored with ``c``: the input is compared with each class only on that class's
units, each side L2-normalised after masking. Ties go to the smallest class index
(``torch.mode``).

The masks come from unit ages (SHARP's sparse network, :mod:`lifelong.plugins.sparse`, which
must come before this plug-in in the recipe so that a task's units are aged first): a class's representation is compared on
the units that were stable when it was stored, which no later task changes. A model without unit
ages (plain backbones, ``sharp-lite``) has every unit valid, so the masks are all ones.

Several processes (:mod:`lifelong.distributed`): the store is the same on every rank and equals
one process's. The finished task's representations come from the task's first examples (not a
rank's share) through the same model; the replayed classes' come from every rank's stored
activations, gathered in their one-process order
(:meth:`lifelong.hidden_replay.ActivationMemory.activations`); the masks from unit ages that
are the same on every rank (:mod:`lifelong.plugins.sparse`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lifelong.plugins import register_plugin


def knn_votes(query: torch.Tensor, stored: list[tuple[int, torch.Tensor, torch.Tensor]], k: int,
              num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(votes, nearest)``, both ``(N, num_classes)``: how many of the ``k`` nearest stored
    representations of each query are of each class, and the distance to each class's nearest
    (``inf`` for a class with none), under the masked normalised distance of the module
    docstring. ``stored``: ``(class, representations (n, d), mask (d,) bool)``."""
    dists, labels = [], []
    for c, reps, mask in stored:
        q = F.normalize(query[:, mask], p=2, dim=1)
        r = F.normalize(reps[:, mask], p=2, dim=1)
        dists.append(torch.cdist(q, r))
        labels.append(torch.full((len(reps),), c, dtype=torch.long, device=query.device))
    dist, label = torch.cat(dists, 1), torch.cat(labels)
    near = dist.topk(min(k, dist.shape[1]), dim=1, largest=False).indices
    votes = torch.zeros(len(query), num_classes, device=query.device)
    votes.scatter_add_(1, label[near], torch.ones(near.shape, device=query.device))
    nearest = torch.full((len(query), num_classes), float("inf"), device=query.device)
    nearest.scatter_reduce_(1, label.expand(len(query), -1), dist, reduce="amin")
    return votes, nearest


def knn_scores(votes: torch.Tensor, nearest: torch.Tensor) -> torch.Tensor:
    """Class scores whose arg-max is the kNN vote (ties to the smallest class): the votes; a
    class without a vote scores in (0, 0.5] by its nearest distance (normalised distances lie in
    [0, 2]), so that when evaluation leaves only some classes in (task-IL) the nearest of them
    wins; a class with no stored representation scores ``-inf``."""
    fallback = 0.5 * (1.0 - nearest / 2.01)
    scores = torch.where(votes > 0, votes, fallback)
    return scores.masked_fill(torch.isinf(nearest), float("-inf"))


@register_plugin
class MaskedKNN:
    """Evaluation by SHARP's masked kNN (see the module docstring). ``k``: neighbours
    (``ltm_k_nearest``, 5); ``per_class``: representations kept per class (``ltm_per_class``,
    25)."""

    name = "masked-knn"

    def __init__(self, k: int = 5, per_class: int = 25) -> None:
        for key, value in (("k", k), ("per_class", per_class)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{key}` must be an integer >= 1, got {value!r}")
        self.k, self.per_class = k, per_class
        self.stored: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}  # (task, class) -> (reps, mask)
        self.num_classes = 0

    def state_dict(self) -> dict:
        return {"stored": [(t, c, reps, mask) for (t, c), (reps, mask) in self.stored.items()],
                "num_classes": self.num_classes}

    def load_state_dict(self, state: dict, context=None) -> None:
        self.stored = {(int(t), int(c)): (reps, mask) for t, c, reps, mask in state["stored"]}
        self.num_classes = int(state["num_classes"])

    @staticmethod
    def valid_units(state, dim: int, min_age: int, device) -> torch.Tensor:
        """The units of the representation valid for a class stored now: those of age at least
        ``min_age`` when a plug-in keeps unit ages (``sparse-rewiring``'s ``units_of_age(min_age)``;
        or the model, ``model.valid_units``), else all."""
        ages = next((p.units_of_age for p in state.recipe.plugins if hasattr(p, "units_of_age")), None)
        ages = ages or getattr(state.model, "valid_units", None)
        mask = ages(min_age) if ages is not None else None
        if mask is None or not bool(mask.any()):  # the reference: no valid unit -> every unit
            return torch.ones(dim, dtype=torch.bool, device=device)
        return mask.to(device)

    @torch.no_grad()
    def end_task(self, state) -> None:
        model, task, memory = state.model, state.task, state.memory
        from lifelong.hidden_replay import first_of_class

        self.num_classes = state.stream.num_classes
        was_training = model.training
        model.eval()
        for c in task.classes:
            x = first_of_class(state, int(c), self.per_class)
            if len(x):
                reps = model.features(x)
                self.stored[(task.index, int(c))] = (reps, self.valid_units(state, reps.shape[1], 2, reps.device))
        split = getattr(memory, "split", None)
        if split is not None:  # the replayed classes, recomputed from their activations (learner.py)
            recent = range(memory.first_recent(task.index), task.index)
            for (t, c), acts in memory.activations(recent).items():
                reps = split.late(acts[: self.per_class])  # (the reference draws them in a random order)
                age = task.index - 1 - t  # 0 for the task just before
                self.stored[(t, c)] = (reps, self.valid_units(state, reps.shape[1], 3 + age, reps.device))
        model.train(was_training)

    @torch.no_grad()
    def scores(self, model, x: torch.Tensor) -> torch.Tensor:
        """:func:`knn_scores` of the kNN over the stored representations; before the first task
        ends there are none, and the model's logits are used."""
        if not self.stored:
            return model(x)
        stored = [(c, reps, mask) for (_, c), (reps, mask) in self.stored.items()]
        votes, nearest = knn_votes(model.features(x), stored, self.k, self.num_classes)
        return knn_scores(votes, nearest)
