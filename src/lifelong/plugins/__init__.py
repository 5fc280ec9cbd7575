"""Step-level plug-ins: objects that change how a step is taken, for any method.

A plug-in (or a term) defines any of these methods; the loop calls those it has, memory first,
then terms, then plug-ins, each in recipe order:

- ``begin_task(state)`` / ``end_task(state)``: around each task.
- ``training_set(state, task) -> Task``: the examples the task trains on (called after
  ``begin_task``, and again when a run resumes mid-task, so it must depend only on the state at
  the task's start); iCaRL's ``mix-memory`` adds the exemplars here.
- ``before_step(state, batch)``: before the forward of a step (refresh learning unlearns here).
- ``after_backward(state, batch)``: gradients are in ``.grad``; change them in place (A-GEM
  projects them here).
- ``after_step(state, batch)``: after the optimiser's update.

A plug-in may also define ``scores(model, x)``: evaluation then ranks classes by these scores
instead of the model's logits (iCaRL's nearest-mean-of-exemplars classifier).

``state`` is the loop's :class:`lifelong.train.TrainState`; ``batch`` the step's
:class:`lifelong.objective.StepBatch`. Plug-ins are registered by name with
:func:`register_plugin` so that recipes and YAML files can use them.
"""
from __future__ import annotations

from lifelong.registry import registrar

HOOKS = ("begin_task", "training_set", "end_task", "before_step", "after_backward", "after_step")

PLUGINS: dict[str, type] = {}


register_plugin = registrar(PLUGINS, "plug-in")

from lifelong.plugins.agem import AGEM  # noqa: E402  (registers itself)
from lifelong.plugins.clip import ClipGrad  # noqa: E402
from lifelong.plugins.mix import MixMemory  # noqa: E402
from lifelong.plugins.nme import NearestMeanOfExemplars  # noqa: E402
from lifelong.plugins.refresh import Refresh  # noqa: E402
from lifelong.plugins.warmup import HeadWarmup  # noqa: E402

__all__ = ["AGEM", "ClipGrad", "HOOKS", "HeadWarmup", "MixMemory", "NearestMeanOfExemplars", "PLUGINS", "Refresh",
           "register_plugin"]
