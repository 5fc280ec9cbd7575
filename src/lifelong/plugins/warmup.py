"""The warm-up step of Learning without Forgetting (Li and Hoiem, "Learning without
forgetting", ECCV 2016, Sec. 3: "we first freeze θs and θo and train θn to convergence"), as
Mammoth's ``models/lwf.py`` (``begin_task``) does it in the code behind its published numbers:
before each task but the first, only the classifier's rows of the classes the task
introduces are trained, on the task's training data, with the features frozen (computed once, without
augmentation, batch-norm in evaluation mode), by plain SGD at the run's learning rate and batch size for the run's number of
epochs; the loss is the cross-entropy over the new classes' logits alone."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lifelong.config import UPPER_BOUNDS
from lifelong.plugins import register_plugin
from lifelong.seeding import torch_generator


@register_plugin
class HeadWarmup:
    """Train the classifier rows of the classes a task introduces, before each task after the
    first (see above). In a domain-incremental stream no task introduces classes, and nothing is
    warmed up: there are no new-task parameters (Li and Hoiem's θn) to warm up.

    ``epochs``/``lr``: ``None`` takes the run's. The batch order comes from the run's seed."""

    name = "head-warmup"
    needs_task_boundaries = "it trains the classifier rows of a task's new classes at the task's start"

    def __init__(self, epochs: int | None = None, lr: float | None = None) -> None:
        limit = UPPER_BOUNDS["epochs"]
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or not 0 <= epochs <= limit):
            raise ValueError(f"`epochs` must be an integer in 0..{limit} or null, got {epochs!r}")
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0):
            raise ValueError(f"`lr` must be a positive number or null, got {lr!r}")
        self.epochs, self.lr = epochs, None if lr is None else float(lr)
        self.steps = 0  # warm-up updates made so far (for tests and logs)
        self.seen: set[int] = set()  # classes of the tasks begun so far

    def state_dict(self) -> dict:
        return {"steps": self.steps, "seen": sorted(self.seen)}

    def load_state_dict(self, state: dict, context=None) -> None:
        self.steps, self.seen = int(state["steps"]), set(state.get("seen", ()))

    def begin_task(self, state) -> None:
        task, stream, model = state.task, state.stream, state.model
        new = sorted(set(task.classes) - self.seen)
        first = not self.seen
        self.seen |= set(task.classes)
        if first or not new:
            return
        if not (hasattr(model, "features") and hasattr(model, "classifier")):
            raise TypeError("head-warmup needs a model with `features` and `classifier` modules "
                            "(all lifelong backbones have them)")
        classifier = model.classifier
        params = [p for p in classifier.parameters() if p.requires_grad]
        device = task.train_idx.device
        columns = torch.tensor(new, device=device)
        relabel = torch.full((stream.num_classes,), -1, dtype=torch.long, device=device)
        relabel[columns] = torch.arange(len(columns), device=device)
        lr = self.lr if self.lr is not None else float(state.optimizer.param_groups[0]["lr"])
        epochs = self.epochs if self.epochs is not None else state.epochs
        order = torch_generator(state.seed, f"head-warmup:{task.index}")
        targets = relabel[stream.labels("train", task.train_idx)]
        idx = task.train_idx[targets >= 0]  # the examples of the new classes (all, in class-IL)
        targets = targets[targets >= 0]
        was_training = model.training
        model.eval()
        try:  # the features are frozen, so they are computed once for the whole task
            with torch.no_grad():
                features = torch.cat([model.features(stream.inputs("train", idx[i:i + 1000], task.index))
                                      for i in range(0, len(idx), 1000)])
        finally:
            model.train(was_training)
        for _ in range(epochs):
            perm = torch.randperm(len(idx), generator=order).to(device)
            for start in range(0, len(idx), state.batch_size):
                rows = perm[start:start + state.batch_size]
                logits = classifier(features[rows]).index_select(1, columns)
                grads = torch.autograd.grad(F.cross_entropy(logits, targets[rows]), params)
                with torch.no_grad():
                    torch._foreach_add_(params, grads, alpha=-lr)
                self.steps += 1
