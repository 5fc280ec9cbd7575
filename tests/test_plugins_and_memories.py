import numpy as np
import torch

from lifelong.data.streams import class_incremental
from lifelong.memory import HerdingBuffer, TaskBalancedBuffer, herding
from lifelong.plugins import AGEM, NearestMeanOfExemplars
from lifelong.plugins.agem import project
from lifelong.loop import TrainState
from tests.conftest import make_source

g = torch.Generator().manual_seed(0)


def test_projection_leaves_no_conflict_with_the_memory_gradient():
    for _ in range(50):
        grads = [torch.randn(4, 3, generator=g), torch.randn(3, generator=g)]
        ref = [torch.randn(4, 3, generator=g), torch.randn(3, generator=g)]
        before = sum((a * b).sum() for a, b in zip(grads, ref))
        original = [t.clone() for t in grads]
        projected = project(grads, ref)
        after = sum((a * b).sum() for a, b in zip(grads, ref))
        assert projected == bool(before < 0)
        assert after >= -1e-5
        if not projected:
            assert all(torch.equal(a, b) for a, b in zip(grads, original))
        else:
            assert abs(after) < 1e-4  # projected onto the plane orthogonal to ref


def test_agem_plugin_projects_the_model_gradient():
    stream = class_incremental(make_source(num_classes=4, per_class_train=10), 2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    memory = TaskBalancedBuffer(8, np.random.default_rng(0))
    state = TrainState(model, None, stream, None, memory, 8, task=stream.tasks[0])
    memory.end_task(state)
    assert len(memory) == 4 and set(memory.fields["y"].tolist()) <= {0, 1}
    x = stream.inputs("train", stream.tasks[1].train_idx[:10], 1)
    y = stream.labels("train", stream.tasks[1].train_idx[:10])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    plugin = AGEM()
    plugin.after_backward(state, None)
    sample = memory.fields
    ref = torch.autograd.grad(torch.nn.functional.cross_entropy(model(sample["x"][:4]), sample["y"][:4]),
                              list(model.parameters()))
    dot = sum((p.grad * r).sum() for p, r in zip(model.parameters(), ref))
    assert dot >= -1e-5


def test_herding_picks_the_documented_exemplars():
    # 1-d features 0, 1, 2, 3, 10 (mean 3.2). Step k picks the point that keeps the running mean
    # closest to 3.2: 3 (3.0), then 2 (2.5), then 1 (2.0), then 10 (4.0), then 0.
    features = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0]])
    assert herding(features, 5).tolist() == [3, 2, 1, 4, 0]
    assert herding(features, 2).tolist() == [3, 2]


class Identity(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Flatten()
        self.classifier = torch.nn.Identity()

    def forward(self, x):
        return self.features(x)


def test_herding_buffer_is_class_balanced_and_keeps_the_head_of_old_orders():
    stream = class_incremental(make_source(num_classes=4, per_class_train=10), 2)
    memory = HerdingBuffer(8, np.random.default_rng(0))
    state = TrainState(Identity(), None, stream, None, memory, 8, task=stream.tasks[0])
    memory.end_task(state)
    first = memory.fields["y"][: len(memory)].tolist()
    assert sorted(first) == [0, 0, 0, 0, 1, 1, 1, 1]
    kept0 = memory.fields["x"][:2].clone()
    state.task = stream.tasks[1]
    memory.end_task(state)
    assert len(memory) == 8 and sorted(memory.fields["y"].tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(memory.fields["x"][:2], kept0)  # class 0 keeps its first two exemplars


def test_nearest_mean_of_exemplars_scores():
    stream = class_incremental(make_source(num_classes=4, per_class_train=10), 2)
    memory = HerdingBuffer(8, np.random.default_rng(0))
    model = Identity()
    state = TrainState(model, None, stream, None, memory, 8, task=stream.tasks[0])
    memory.end_task(state)
    nme = NearestMeanOfExemplars()
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(nme.scores(model, x), model(x))  # no means yet: the model's logits
    nme.end_task(state)
    scores = nme.scores(model, x)
    assert torch.isinf(scores[:, 2:]).all() and torch.isfinite(scores[:, :2]).all()  # classes 2, 3 unseen
    # an exemplar of class 1 is nearest to the mean of class 1
    ex = memory.fields["x"][memory.fields["y"][: len(memory)] == 1][:1]
    assert int(nme.scores(model, ex).argmax()) == 1
