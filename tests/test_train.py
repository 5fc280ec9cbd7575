import math

import pytest
import torch

from lifelong.data.streams import class_incremental
from lifelong.methods import Recipe, build_recipe
from lifelong.nets import build_backbone
from lifelong.objective import CrossEntropy, Objective, Term
from lifelong.optim import SGD
from lifelong.loop import train
from tests.conftest import make_source


def _run(recipe, seed=0, epochs=3, **kwargs):
    stream = class_incremental(make_source(num_classes=6, per_class_train=40), 3)
    torch.manual_seed(seed)
    model = build_backbone("mlp", (1, 8, 8), 6)
    opt = SGD(model.parameters(), lr=0.1)
    kwargs.setdefault("buffer_size", 50)
    result = train(stream, model, recipe, opt, seed=seed, epochs=epochs, batch_size=10, **kwargs)
    return result, model


def test_finetune_learns_each_task_then_forgets_it_in_class_il():
    result, _ = _run(build_recipe("finetune"))
    R = result.class_il
    assert len(R) == 3 and all(len(row) == 3 for row in R)
    assert all(R[i][i] > 90 for i in range(3))  # each task is learnt ...
    assert R[2][0] < 10 and R[2][1] < 10  # ... and earlier ones are forgotten (class-IL)
    assert result.status == "complete" and result.steps == 3 * 3 * 8


def test_replay_remembers_what_finetuning_forgets():
    er, _ = _run(build_recipe("er"))
    ft, _ = _run(build_recipe("finetune"))
    assert sum(er.class_il[-1][:2]) > sum(ft.class_il[-1][:2]) + 50


def test_joint_trains_once_on_everything():
    result, _ = _run(build_recipe("joint"))
    assert len(result.class_il) == 1 and result.class_il[0][0] > 90 and result.steps == 3 * 24


def test_same_seed_same_everything_and_other_seed_differs():
    a, model_a = _run(build_recipe("er"), seed=3)
    b, model_b = _run(build_recipe("er"), seed=3)
    c, model_c = _run(build_recipe("er"), seed=4)
    assert a.class_il == b.class_il and a.task_il == b.task_il
    for p, q in zip(model_a.state_dict().values(), model_b.state_dict().values()):
        assert torch.equal(p, q)
    assert any(not torch.equal(p, q) for p, q in zip(model_a.state_dict().values(), model_c.state_dict().values()))


class NaNAt(Term):
    name = "test-nan"

    def __init__(self, step):
        self.step, self.calls = step, 0

    def __call__(self, batch):
        self.calls += 1
        return batch.logits.sum() * (math.nan if self.calls > self.step else 0.0)


def test_non_finite_loss_stops_and_keeps_what_was_measured():
    recipe = Recipe("nan", Objective([(1.0, CrossEntropy()), (1.0, NaNAt(step=30))]))
    result, _ = _run(recipe)
    assert result.status == "diverged"
    assert "the loss became nan at task 2/3, step 30" in result.message
    assert len(result.class_il) == 1  # task 0 finished and was evaluated


class Recorder:
    """A plug-in that records what the loop shows it."""

    def __init__(self):
        self.calls = []
        self.replay_sizes = set()

    def begin_task(self, state):
        self.calls.append(("begin", state.task.index))

    def before_step(self, state, batch):
        assert batch.outputs is None  # before the forward
        self.calls.append("before")

    def after_backward(self, state, batch):
        assert all(p.grad is not None for p in state.model.parameters())
        if batch.replay is not None:
            self.replay_sizes.add(len(batch.replay["y"]))
        self.calls.append("backward")

    def after_step(self, state, batch):
        self.calls.append("after")

    def end_task(self, state):
        self.calls.append(("end", state.task.index))
        self.memory = state.memory


class StoresLogits(Term):
    name = "test-stores-logits"
    uses_replay = True
    stores = ("logits",)

    def __call__(self, batch):
        return batch.logits.new_zeros(())


def test_plugins_and_terms_see_every_step_and_the_memory_keeps_logits_and_tasks():
    rec = Recorder()
    recipe = Recipe("rec", Objective([(1.0, CrossEntropy("both")), (1.0, StoresLogits())]), memory="reservoir",
                    plugins=[rec])
    result, _ = _run(recipe, epochs=1, replay_batch_size=4)
    steps = [c for c in rec.calls if isinstance(c, str)]
    assert steps == ["before", "backward", "after"] * result.steps
    assert [c for c in rec.calls if isinstance(c, tuple)] == [("begin", 0), ("end", 0), ("begin", 1), ("end", 1),
                                                                ("begin", 2), ("end", 2)]
    assert rec.replay_sizes == {4}
    fields = rec.memory.fields
    assert fields["logits"].shape == (50, 6)
    assert set(fields["task"].tolist()) == {0, 1, 2}
    classes = {0: {0, 1}, 1: {2, 3}, 2: {4, 5}}
    assert all(int(y) in classes[int(t)] for y, t in zip(fields["y"], fields["task"]))


def test_events_are_reported():
    class Events:
        def __init__(self):
            self.log = []

        def task_start(self, task, steps):
            self.log.append(("start", task.index, steps))

        def step(self, loss):
            assert loss >= 0

        def task_end(self, task, class_il, task_il):
            self.log.append(("end", task.index, len(class_il)))

    events = Events()
    _run(build_recipe("finetune"), epochs=2, events=events)
    assert events.log == [("start", 0, 16), ("end", 0, 3), ("start", 1, 16), ("end", 1, 3), ("start", 2, 16),
                          ("end", 2, 3)]


def test_replay_method_needs_a_buffer():
    with pytest.raises(ValueError, match="needs a memory"):
        _run(build_recipe("er"), buffer_size=0)


def test_augmentation_runs_on_colour_images():
    stream = class_incremental(make_source(num_classes=4, channels=3, size=8), 2)
    model = build_backbone("resnet18", (3, 8, 8), 4)
    result = train(stream, model, build_recipe("er"), SGD(model.parameters(), lr=0.01), seed=0, batch_size=16,
                   buffer_size=20, augment_padding=2)
    assert result.status == "complete" and len(result.task_il) == 2
