"""Step-level plug-ins: objects that change how a step is taken, for any method.

A plug-in defines any of these methods; the loop calls those it has, in the plug-ins' order:

- ``begin_task(state)`` / ``end_task(state)``: around each task.
- ``before_step(state, batch)``: before the forward of a step (refresh learning unlearns here).
- ``after_backward(state, batch)``: gradients are in ``.grad``; change them in place (A-GEM
  projects them here).
- ``after_step(state, batch)``: after the optimiser's update.

``state`` is the loop's :class:`lifelong.train.TrainState`; ``batch`` the step's
:class:`lifelong.objective.StepBatch`. Concrete plug-ins arrive with the methods that use them.
"""

HOOKS = ("begin_task", "end_task", "before_step", "after_backward", "after_step")
