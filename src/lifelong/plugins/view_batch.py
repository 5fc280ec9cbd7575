"""View-batch replay (Kang et al., "Do Your Best and Get Enough Rest for Continual Learning",
CVPR 2025, Sec. 3.2): a batch holds ``R`` views of each of fewer examples, so that every example
is seen again only after a longer rest (the recall interval grows ``R``-fold) and, when seen, is
learnt from ``R`` views at once. Its companion loss, the one-to-many self-distillation between
the views, is the ``view-kl`` term (:class:`lifelong.objective.output.ViewKL`).

Two forms (``form``):

- ``"epochs"``, the reference's sampler (``ViewBatchReplay`` in
  ``datasets/utils/continual_dataset.py`` of hankyul2/ViewBatchModel): the epochs of a task go in
  cycles of ``R``. A cycle draws one permutation of the training set; epoch ``e`` visits its
  slice ``e mod R`` of ``n // R`` examples, each ``R`` times back to back. Over a cycle every
  example is visited once (as ``R`` views), the remainder of ``n mod R`` examples of that
  permutation excepted. The batch size counts *views*, as the reference's data loader does, so a
  step holds ``batch_size / R`` examples and an epoch has as many steps as without the plug-in.
- ``"online"``, for one pass over the stream (``epochs < R``, where the sampler above would never
  show most examples): the epoch's order is the loop's own permutation, and each incoming batch of
  ``batch_size`` examples is trained on as ``batch_size · R`` views in its one step. The batch size
  counts *examples* here, as an online protocol fixes how many new examples arrive per step.
- ``"auto"`` (default): ``"online"`` when the run has fewer epochs than ``R``, else ``"epochs"``.

Only the current training set is repeated: replayed examples that a method draws from its memory
at each step (ER, DER++) come as single copies, while iCaRL's exemplars, which ``mix-memory`` puts
into the training set, are repeated as in the reference (where they are part of the data set).
The memory is offered each example once per step, its first view's logits where it stores them.

The 2nd..R-th views are re-augmented (``augment``) on top of the loop's own augmentation (random
crop and flip where the benchmark has it): AutoAugment's CIFAR-10 policy or RandAugment, per
image (:mod:`lifelong.data.auto_augment`), as the reference (``--prog-aug 2``), or the
reference's progressive uniform noise (``--prog-aug 1``: view ``k`` gets ``U[0, 1) · noise · k /
(R - 1)`` added to its normalised pixels). ``"auto"``: RandAugment for images of 64 pixels and
more (the reference's choice for Tiny-ImageNet), else AutoAugment (its choice for CIFAR).
"""
from __future__ import annotations

import math

import torch

from lifelong import distributed
from lifelong.data.auto_augment import policy_transform, strong_augment
from lifelong.errors import ConfigError
from lifelong.objective import StepBatch
from lifelong.plugins import register_plugin
from lifelong.seeding import torch_generator

FORMS = ("auto", "epochs", "online")
AUGMENTS = ("auto", "none", "autoaugment", "randaugment", "noise")
MAX_REPEATS = 64
CACHE_KEY = "view-batch"  # in ``state.cache``: ``{"epoch": e, "online": bool}`` for the view-kl term


@register_plugin
class ViewBatch:
    """View-batch replay for any method (see the module docstring). The re-augmentation draws
    from a generator derived from the run's seed (``seed`` overrides it, for use outside a run),
    kept in checkpoints; the order of the ``"epochs"`` form is a function of the seed, the task and
    the cycle, so it needs no state."""

    name = "view-batch"

    def __init__(self, repeats: int = 4, form: str = "auto", augment: str = "auto", noise: float = 0.2,
                 seed: int | None = None) -> None:
        if isinstance(repeats, bool) or not isinstance(repeats, int) or not 2 <= repeats <= MAX_REPEATS:
            raise ValueError(f"`repeats` must be a whole number of views in 2..{MAX_REPEATS}, got {repeats!r}")
        if form not in FORMS:
            raise ValueError(f"`form` must be one of {', '.join(map(repr, FORMS))}, got {form!r}")
        if augment not in AUGMENTS:
            raise ValueError(f"`augment` must be one of {', '.join(map(repr, AUGMENTS))}, got {augment!r}")
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not (math.isfinite(noise) and noise >= 0):
            raise ValueError(f"`noise` must be a finite number >= 0, got {noise!r}")
        self.views, self.form, self.augment, self.noise, self.seed = repeats, form, augment, float(noise), seed
        self.generator: torch.Generator | None = None
        self._transform = None

    def settings(self) -> dict:
        return {"repeats": self.views, "form": self.form, "augment": self.augment, "noise": self.noise}

    def online(self, state) -> bool:
        """Whether the run takes the online form (``form="auto"``: fewer epochs than views)."""
        return self.form == "online" or (self.form == "auto" and state.epochs < self.views)

    def _seed(self, state) -> int:
        return int(self.seed if self.seed is not None else getattr(state, "seed", 0))

    # -- the order of the examples (called by the loop) ----------------------------------
    def plan(self, state, n: int, batch_size: int) -> tuple[int, int]:
        """``(examples an epoch visits, examples per step)`` for a training set of ``n``."""
        if self.online(state):
            return n, batch_size
        if batch_size % self.views:
            raise ValueError(f"view-batch replay over epochs: the batch size counts views, so it must be a multiple "
                             f"of the {self.views} repeats, got {batch_size}")
        self._check_step(batch_size, distributed.world())
        return n // self.views, batch_size // self.views

    def check_processes(self, epochs: int, batch_size: int, world: int) -> None:
        """One line (:class:`ConfigError`) when ``world`` processes cannot share a step evenly:
        over epochs a step holds ``batch_size / R`` examples (the online form's, the batch size,
        is checked with the batch itself)."""
        if not (self.form == "online" or (self.form == "auto" and epochs < self.views)):
            self._check_step(batch_size, world)

    def _check_step(self, batch_size: int, world: int) -> None:
        per_step = batch_size // self.views
        if per_step % world:
            raise ConfigError(f"view-batch replay over epochs: {world} processes cannot share the {per_step} examples "
                              f"of a step (a batch of {batch_size} views / {self.views}); use a batch size that is a "
                              f"multiple of {self.views * world}")

    def epoch_order(self, state, n: int, epoch: int, order: torch.Generator) -> torch.Tensor:
        """The positions in the training set that epoch ``epoch`` visits (each then trained on as
        ``R`` views): the loop's permutation (online), or slice ``epoch mod R`` of the permutation of
        the cycle ``epoch // R`` (the reference's sampler)."""
        online = self.online(state)
        state.cache[CACHE_KEY] = {"epoch": epoch, "online": online}
        if online:
            return torch.randperm(n, generator=order)
        cycle, part = divmod(epoch, self.views)
        perm = torch.randperm(n, generator=torch_generator(self._seed(state),
                                                           f"view-batch-order:{state.task.index}:{cycle}"))
        size = n // self.views
        return perm[part * size:(part + 1) * size]

    # -- the re-augmentation of the 2nd..R-th views ---------------------------------------
    def before_step(self, state, batch: StepBatch) -> None:
        if self.augment == "none" or batch.repeats != self.views or len(batch.y) == 0:
            return
        current = batch.x.unflatten(0, (-1, self.views))  # (examples, views, C, H, W)
        copies = current[:, 1:]
        if self.augment == "noise":
            copies = copies + self._uniform(state, copies) * self._noise_scale(copies)
        else:
            shape = copies.shape
            copies = strong_augment(copies.flatten(0, 1), self._policy(state), self._draws(state),
                                    *self._statistics(state, copies)).view(shape)
        current = torch.cat([current[:, :1], copies], 1).flatten(0, 1)
        batch.inputs = torch.cat([current, batch.inputs[len(batch.y):]])

    def _draws(self, state) -> torch.Generator:
        if self.generator is None:
            self.generator = torch_generator(self._seed(state), "view-batch-augment")
        return self.generator

    def _uniform(self, state, like: torch.Tensor) -> torch.Tensor:
        """``U[0, 1)`` noise shaped like ``like``, drawn on the CPU from the plug-in's generator."""
        return torch.rand(like.shape, generator=self._draws(state)).to(like.device, like.dtype)

    def _noise_scale(self, copies: torch.Tensor) -> torch.Tensor:
        """``noise · k / (R - 1)`` for view ``k = 1..R-1`` (the reference's progressive noise)."""
        k = torch.arange(1, self.views, device=copies.device, dtype=copies.dtype)
        return (self.noise * k / (self.views - 1)).view(1, -1, *([1] * (copies.dim() - 2)))

    def _policy(self, state):
        if self._transform is None:
            policy = self.augment
            if policy == "auto":
                policy = "randaugment" if min(state.stream.source.image_shape[1:]) >= 64 else "autoaugment"
            self._transform = policy_transform(policy)
        return self._transform

    @staticmethod
    def _statistics(state, like: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        source = state.stream.source
        if source.mean is None:
            return None, None
        shape = (1, -1, 1, 1)
        return (torch.tensor(source.mean, device=like.device).view(shape),
                torch.tensor(source.std, device=like.device).view(shape))

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"generator": None if self.generator is None else self.generator.get_state()}

    def load_state_dict(self, state: dict, context=None) -> None:
        self.generator = None
        if state["generator"] is not None:
            self.generator = torch_generator(self._seed(context), "view-batch-augment")
            self.generator.set_state(state["generator"])
