"""The warm-up step of Learning without Forgetting (Li and Hoiem, "Learning without
forgetting", ECCV 2016, Sec. 3: "we first freeze θs and θo and train θn to convergence"), as
Mammoth's ``models/lwf.py`` (``begin_task``) does it in the code behind its published numbers:
before each task but the first, only the classifier's rows of the new task's classes are
trained, on the task's training data, with the features frozen (computed once, without
augmentation, batch-norm in evaluation mode), by plain SGD at the run's learning rate and batch size for the run's number of
epochs; the loss is the cross-entropy over the new classes' logits alone."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lifelong.plugins import register_plugin
from lifelong.seeding import torch_generator


@register_plugin
class HeadWarmup:
    """Train the new classes' classifier rows before each task after the first (see above).

    ``epochs``/``lr``: ``None`` takes the run's. The batch order comes from the run's seed."""

    name = "head-warmup"

    def __init__(self, epochs: int | None = None, lr: float | None = None) -> None:
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0):
            raise ValueError(f"`epochs` must be an integer >= 0 or null, got {epochs!r}")
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0):
            raise ValueError(f"`lr` must be a positive number or null, got {lr!r}")
        self.epochs, self.lr = epochs, None if lr is None else float(lr)
        self.steps = 0  # warm-up updates made so far (for tests and logs)

    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict, context=None) -> None:
        self.steps = int(state["steps"])

    def begin_task(self, state) -> None:
        task, stream, model = state.task, state.stream, state.model
        if task.index == 0 or not hasattr(model, "classifier"):
            return
        classifier = model.classifier
        params = [p for p in classifier.parameters() if p.requires_grad]
        device = task.train_idx.device
        columns = torch.tensor(sorted(task.classes), device=device)
        relabel = torch.full((stream.num_classes,), -1, dtype=torch.long, device=device)
        relabel[columns] = torch.arange(len(columns), device=device)
        lr = self.lr if self.lr is not None else float(state.optimizer.param_groups[0]["lr"])
        epochs = self.epochs if self.epochs is not None else state.epochs
        order = torch_generator(state.seed, f"head-warmup:{task.index}")
        was_training = model.training
        model.eval()
        try:  # the features are frozen, so they are computed once for the whole task
            with torch.no_grad():
                features = torch.cat([model.features(stream.inputs("train", task.train_idx[i:i + 1000], task.index))
                                      for i in range(0, task.num_train, 1000)])
        finally:
            model.train(was_training)
        targets = relabel[stream.labels("train", task.train_idx)]
        for _ in range(epochs):
            perm = torch.randperm(task.num_train, generator=order).to(device)
            for start in range(0, task.num_train, state.batch_size):
                rows = perm[start:start + state.batch_size]
                logits = classifier(features[rows]).index_select(1, columns)
                grads = torch.autograd.grad(F.cross_entropy(logits, targets[rows]), params)
                with torch.no_grad():
                    torch._foreach_add_(params, grads, alpha=-lr)
                self.steps += 1
