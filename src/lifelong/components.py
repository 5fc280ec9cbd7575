"""The one protocol of a run's components: memories, terms and plug-ins.

A component defines any of the hooks below; the loop calls those it has, memory first, then
terms, then plug-ins, each in recipe order:

- ``begin_task(state)`` / ``end_task(state)``: around each task.
- ``training_set(state, task) -> Task``: the examples the task trains on (called after
  ``begin_task``, and again when a run resumes mid-task, so it must depend only on the state at
  the task's start); iCaRL's ``mix-memory`` adds the exemplars here.
- ``before_step(state, batch)``: before the forward of a step (refresh learning unlearns here).
- ``after_backward(state, batch)``: gradients are in ``.grad``; change them in place (A-GEM
  projects them here, ``clip-grad`` clips them).
- ``after_step(state, batch)``: after the optimiser's update.
- ``reweight(terms, values) -> multipliers``: called by the objective each time it is computed,
  with its ``(weight, term)`` pairs and each term's unweighted value (detached); returns one
  multiplier per term (:class:`lifelong.objective.Objective`). GeRe's dynamic margin weight and
  the ``adaptive-weights`` plug-in (RECAP) set the terms' weights this way. The objective is also
  computed outside the step (refresh learning's unlearning step), so a hook that keeps a history
  of the values records it in ``after_step``, from ``state.recipe.objective.values``.

``state`` is the loop's :class:`lifelong.loop.TrainState`; ``batch`` the step's
:class:`lifelong.objective.StepBatch`.

A component that keeps anything between steps or tasks saves it with ``state_dict() -> dict``
and restores it with ``load_state_dict(state, context)`` (``context``: the run's ``TrainState``,
for components that need the model or the seed), so that a resumed run equals an uninterrupted
one. One that defines a hook but holds nothing worth saving says so with ``stateless = True``;
a run with checkpoints refuses a component with hooks and neither, rather than resume it with
fresh state.

A component that cannot work without task boundaries (it computes what it needs at a task's
end, or acts from the second task on) says why in ``needs_task_boundaries`` (a class or
instance attribute: a clause such as ``"its Fisher is computed at each task's end"``; ``None``
or absent: it works on a task-free stream, :mod:`lifelong.data.taskfree`, where the loop calls
``begin_task`` once at the start and ``end_task`` once at the stream's end). A run on a
task-free stream refuses it before training (:func:`lifelong.loop.check_task_free`).
"""
from __future__ import annotations

from typing import Any, Iterable

HOOKS = ("begin_task", "training_set", "end_task", "before_step", "after_backward", "after_step", "reweight")


def hooks(components: Iterable[Any], name: str) -> list:
    """The bound ``name`` hooks of the components that define it, in order."""
    if name not in HOOKS:
        raise ValueError(f"unknown hook {name!r}; hooks: {', '.join(HOOKS)}")
    return [getattr(c, name) for c in components if hasattr(c, name)]


def describe(component: Any) -> str:
    kind = getattr(component, "name", "") or type(component).__name__
    return f"{type(component).__name__} ({kind!r})" if getattr(component, "name", "") else kind


def boundary_need(component: Any) -> str | None:
    """Why ``component`` (a memory class, term or plug-in) needs task boundaries: its
    ``needs_task_boundaries``, or ``None`` when it works without them."""
    reason = getattr(component, "needs_task_boundaries", None)
    return str(reason) if reason else None


def check_resumable(components: Iterable[Any]) -> None:
    """Raise ``ValueError`` for the first component with hooks but neither ``state_dict`` and
    ``load_state_dict`` nor ``stateless = True``: a checkpoint could not restore it."""
    for component in components:
        used = [h for h in HOOKS if hasattr(component, h)]
        if not used or getattr(component, "stateless", False):
            continue
        missing = [m for m in ("state_dict", "load_state_dict") if not hasattr(component, m)]
        if missing:
            raise ValueError(
                f"{describe(component)} keeps state through {', '.join(used)} but has no {' or '.join(missing)}, "
                f"so a resumed run would start it afresh; give it state_dict() and load_state_dict(state, context), "
                f"or set `stateless = True` if it holds nothing between steps")
