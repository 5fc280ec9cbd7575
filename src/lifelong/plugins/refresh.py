"""Refresh learning (Wang et al., "A Unified and General Framework for Continual Learning",
ICLR 2024, Section 4): unlearn the current batch, then relearn it. Unlearning is gradient
*ascent* on the loss, preconditioned by the inverse of the diagonal Fisher, with Gaussian noise,
so that the parameters move away from directions that over-fit the batch without undoing what
the Fisher says is important for the past.

Two published forms, each a :class:`Refresh` configuration:

- ``form="paper"`` (the paper's update, run before the normal step that relearns the batch):
  ``J`` times ``θ ← θ + γ P ∇L(θ) + sqrt(2γ) · noise · sqrt(P) ⊙ ε``, ``ε ~ N(0, I)``,
  where ``L`` is the method's whole objective on the step's batch (``loss="objective"``) and
  ``P ≈ F⁻¹`` is the preconditioner below: Langevin dynamics on ``−L`` with metric ``F``.
  ``noise = 1`` is the exact ``N(0, 2γP)``; the default is 0.01, because at ``γ = 1e-4`` the
  exact noise (standard deviation 0.014 per weight at every refresh) wrecks the MNIST MLP:
  Split-MNIST ER-500 falls from 88 to 63% class-IL (docs/RESULTS.md).
- ``form="code"`` (the authors' released code, ``models/derpp.py`` at the HEAD of
  joey-wang123/CL-refresh-learning, DER++ only): at the start of every step (``every = 1``,
  ``when="before"``), before the normal step relearns the very same batch, one step of ascent
  on the current batch's cross-entropy (``loss="ce"``), the ascent direction rescaled per tensor
  to the tensor's own norm, ``θ ← θ + δ P ⊙ (‖θ‖/‖g‖ · g + noise · ε)`` with ``δ = 1e-5``
  (``gamma``) and ``noise = 1e-3``. The perturbation is not undone. (The repository's first
  commit ran it after the update; ``when="after"`` keeps that placement as an option.)

Preconditioner: ``P = 1 / (1 + damping · F)`` (``preconditioner="damped"``, the released code's,
``damping = 1e-3``) or ``P = 1 / (F + damping)`` (``"inverse"``, the paper's ``F⁻¹`` with
damping). ``F`` is the diagonal empirical Fisher (each example's squared gradient weighted by
the model's probability of its label) over the task's training data, computed at each task's
end and kept as ``F ← fisher_decay · F + F_task``: ``1e-5`` replaces it (the released code),
``1`` accumulates, values between decay it. Before the first task ends ``F = 0``.
Refresh runs every ``every`` steps: every second step in the paper form (the paper's setting),
every step in the code form (what the released code does).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lifelong import distributed
from lifelong.objective import StepBatch
from lifelong.objective.weight import task_fisher
from lifelong.plugins import register_plugin
from lifelong.seeding import torch_generator

FORMS = {
    "paper": {"gamma": 1e-4, "steps": 1, "noise": 0.01, "loss": "objective", "when": "before", "normalize": False,
              "every": 2},
    "code": {"gamma": 1e-5, "steps": 1, "noise": 1e-3, "loss": "ce", "when": "before", "normalize": True, "every": 1},
}

MAX_STEPS = 100  # unlearning steps per refresh: each is a forward and backward pass
MAX_EVERY = 1_000_000  # beyond, no benchmark's run would refresh at all

_KINDS = {"steps": "an integer", "every": "an integer", "gamma": "a number", "noise": "a number",
          "damping": "a number", "fisher_decay": "a number", "normalize": "true or false"}


def _check_kinds(settings: dict) -> None:
    """Counts are integers, constants numbers, ``normalize`` true or false: checked before any
    conversion, so that ``every: 1.5`` or ``normalize: maybe`` is an error, not 1 or true."""
    for key, wanted in _KINDS.items():
        value = settings[key]
        if wanted == "true or false":
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, int if wanted == "an integer" else (int, float)) and not isinstance(value, bool)
        if not ok:
            raise ValueError(f"`{key}` must be {wanted}, got {value!r}")


@register_plugin
class Refresh:
    """Unlearn-then-relearn around the normal step of any method (see the module docstring).

    Any argument left ``None`` takes the value of the chosen ``form``. The noise comes from a
    generator derived from the run's seed (``seed`` overrides it, for use outside a run).
    """

    name = "refresh"

    def __init__(self, form: str = "paper", gamma: float | None = None, steps: int | None = None,
                 noise: float | None = None, loss: str | None = None, when: str | None = None,
                 normalize: bool | None = None, damping: float = 1e-3, preconditioner: str = "damped",
                 fisher_decay: float = 1e-5, every: int | None = None, seed: int | None = None) -> None:
        if form not in FORMS:
            raise ValueError(f"`form` must be 'paper' or 'code', got {form!r}")
        chosen = {k: v for k, v in dict(gamma=gamma, steps=steps, noise=noise, loss=loss, when=when,
                                         normalize=normalize, every=every).items() if v is not None}
        settings = {**FORMS[form], **chosen}
        _check_kinds({**settings, "damping": damping, "fisher_decay": fisher_decay})
        self.form = form
        self.gamma, self.steps, self.noise = float(settings["gamma"]), int(settings["steps"]), float(settings["noise"])
        self.loss, self.when, self.normalize = settings["loss"], settings["when"], bool(settings["normalize"])
        self.damping, self.preconditioner = float(damping), preconditioner
        self.fisher_decay, self.every, self.seed = float(fisher_decay), int(settings["every"]), seed
        for name, value in (("gamma", self.gamma), ("noise", self.noise), ("damping", self.damping)):
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"`{name}` must be a finite number >= 0, got {value}")
        if self.steps < 1 or self.every < 1:
            raise ValueError("`steps` and `every` must be at least 1")
        if self.steps > MAX_STEPS:
            raise ValueError(f"`steps` must be at most {MAX_STEPS} unlearning steps per refresh, got {self.steps}")
        if self.every > MAX_EVERY:
            raise ValueError(f"`every` must be at most {MAX_EVERY} steps (a refresh that never runs), got {self.every}")
        if self.loss not in ("ce", "objective"):
            raise ValueError(f"`loss` must be 'ce' or 'objective', got {self.loss!r}")
        if self.when not in ("before", "after"):
            raise ValueError(f"`when` must be 'before' or 'after', got {self.when!r}")
        if preconditioner not in ("damped", "inverse"):
            raise ValueError(f"`preconditioner` must be 'damped' or 'inverse', got {preconditioner!r}")
        if preconditioner == "inverse" and self.damping <= 0:
            raise ValueError("the 'inverse' preconditioner needs `damping` > 0")
        if not 0 <= self.fisher_decay <= 1:
            raise ValueError(f"`fisher_decay` must lie in [0, 1], got {self.fisher_decay}")
        self.fisher: list[torch.Tensor] | None = None
        self._precond: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
        self._params: list[torch.Tensor] | None = None
        self._buffers: list[torch.Tensor] = []
        self.generator: torch.Generator | None = None
        self.calls = 0
        self.refreshes = 0

    def settings(self) -> dict:
        """The constants in use, for the run's config and metrics."""
        return {"form": self.form, "gamma": self.gamma, "steps": self.steps, "noise": self.noise, "loss": self.loss,
                "when": self.when, "normalize": self.normalize, "damping": self.damping,
                "preconditioner": self.preconditioner, "fisher_decay": self.fisher_decay, "every": self.every}

    def state_dict(self) -> dict:
        return {"fisher": self.fisher, "calls": self.calls, "refreshes": self.refreshes,
                "generator": None if self.generator is None else self.generator.get_state()}

    def load_state_dict(self, state: dict, context=None) -> None:
        self.fisher, self._precond = state["fisher"], None
        self.calls, self.refreshes = int(state["calls"]), int(state["refreshes"])
        self.generator = None
        if state["generator"] is not None:
            device = next(context.model.parameters()).device
            self.generator = torch_generator(self._seed(context), "refresh", device)
            self.generator.set_state(state["generator"])

    def _seed(self, state) -> int:
        return int(self.seed if self.seed is not None else getattr(state, "seed", 0))

    # -- hooks ---------------------------------------------------------------------------
    def before_step(self, state, batch: StepBatch) -> None:
        if self.when == "before":
            self._maybe_refresh(state, batch)

    def after_step(self, state, batch: StepBatch) -> None:
        if self.when == "after":
            self._maybe_refresh(state, batch)

    @torch.no_grad()
    def end_task(self, state) -> None:
        new = task_fisher(state, probability_weighted=True)
        self.fisher = new if self.fisher is None else [self.fisher_decay * f + s for f, s in zip(self.fisher, new)]
        self._precond = None

    # -- the update ----------------------------------------------------------------------
    def preconditioners(self, params: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``P`` and ``sqrt(P)`` per parameter tensor, cached until the Fisher changes
        (before any Fisher exists, ``F = 0``)."""
        if self._precond is None or len(self._precond[0]) != len(params):
            fisher = self.fisher if self.fisher is not None else [torch.zeros_like(p) for p in params]
            if self.preconditioner == "damped":
                precond = [1.0 / (1.0 + self.damping * f) for f in fisher]
            else:
                precond = [1.0 / (f + self.damping) for f in fisher]
            self._precond = (precond, [pc.sqrt() for pc in precond])
        return self._precond

    def _maybe_refresh(self, state, batch: StepBatch) -> None:
        self.calls += 1
        if (self.calls - 1) % self.every:
            return
        if self.generator is None:
            device = next(state.model.parameters()).device
            self.generator = torch_generator(self._seed(state), "refresh", device)
        for _ in range(self.steps):
            self.unlearn(state, batch)
        self.refreshes += 1

    def batch_loss(self, state, batch: StepBatch) -> torch.Tensor:
        """The loss that unlearning climbs: the batch's cross-entropy or the whole objective."""
        model = state.model
        if self.loss == "ce":
            return F.cross_entropy(model(batch.x), batch.y)
        return state.recipe.objective(batch.probe(model))

    def unlearn(self, state, batch: StepBatch) -> None:
        """One unlearning step on ``batch``; batch-norm statistics are left as they were."""
        model = state.model
        if self._params is None:
            self._params = [p for p in model.parameters() if p.requires_grad]
            self._buffers = list(model.buffers())
        params, buffers = self._params, self._buffers
        saved = [b.clone() for b in buffers]
        with torch.enable_grad():
            grads = torch.autograd.grad(self.batch_loss(state, batch), params, allow_unused=True)
        for b, v in zip(buffers, saved):
            b.copy_(v)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
        distributed.mean_(grads)  # several processes: every rank climbs the same (global batch's) gradient
        precond, root = self.preconditioners(params)
        with torch.no_grad():
            if self.normalize:  # released code: ascent rescaled to each tensor's own norm
                ratios = torch.stack(torch._foreach_norm(params)) / (torch.stack(torch._foreach_norm(grads)) + 1e-20)
                steps = torch._foreach_mul(grads, ratios.tolist())
                if self.noise:
                    torch._foreach_add_(steps, self._normal(params), alpha=self.noise)
                torch._foreach_addcmul_(params, precond, steps, value=self.gamma)
            else:  # paper: a Langevin step with metric F
                torch._foreach_addcmul_(params, precond, grads, value=self.gamma)
                if self.noise and self.gamma:
                    scale = math.sqrt(2.0 * self.gamma) * self.noise
                    torch._foreach_addcmul_(params, root, self._normal(params), value=scale)

    def _normal(self, like: list[torch.Tensor]) -> list[torch.Tensor]:
        """Standard normal noise shaped like ``like``, drawn in one call."""
        total = sum(p.numel() for p in like)
        flat = torch.randn(total, generator=self.generator, device=like[0].device, dtype=like[0].dtype)
        return [chunk.view_as(p) for chunk, p in zip(flat.split([p.numel() for p in like]), like)]
