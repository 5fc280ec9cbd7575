"""Output-space terms: each one's defining property, and the named ones against the Bregman form."""
import math

import torch
import torch.nn.functional as F

from lifelong.data.streams import class_incremental
from lifelong.objective import Bregman, CrossEntropy, Distillation, ICaRLDistillation, LogitMSE, StepBatch
from lifelong.objective.output import bregman, negative_entropy, squared_norm
from lifelong.loop import TrainState
from tests.conftest import make_source

g = torch.Generator().manual_seed(0)


def _batch(n=4, m=3, classes=5, logits=None, stored=None, model=None):
    outputs = torch.randn(n + m, classes, generator=g) if logits is None else logits
    replay = {"y": torch.randint(0, classes, (m,), generator=g), "x": torch.zeros(m, 2),
              "logits": torch.randn(m, classes, generator=g) if stored is None else stored}
    return StepBatch(model, 0, torch.zeros(n + m, 2), torch.randint(0, classes, (n,), generator=g), [replay], outputs)


def test_bregman_of_the_named_potentials():
    p, q = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    assert torch.allclose(bregman(squared_norm, p, q), 0.5 * (p - q).pow(2).sum(1), atol=1e-6)
    P, Q = p.softmax(1), q.softmax(1)
    kl = (P * (P.log() - Q.log())).sum(1)
    assert torch.allclose(bregman(negative_entropy, P, Q), kl, atol=1e-6)


def test_der_is_zero_at_the_stored_logits_and_a_scaled_bregman_divergence():
    b = _batch()
    stored = b.replay["logits"]
    at_target = _batch(logits=torch.cat([torch.randn(4, 5), stored]), stored=stored)
    assert LogitMSE()(at_target).item() == 0.0
    value = LogitMSE()(b)
    div = bregman(squared_norm, b.replay["logits"], b.replay_logits).mean()
    assert torch.allclose(value, 2 / 5 * div)  # MSE averages over the 5 classes too
    assert torch.allclose(Bregman("squared-norm")(b), div)


def test_der_gradient_pulls_towards_the_stored_logits():
    b = _batch()
    b.outputs.requires_grad_(True)
    LogitMSE()(b).backward()
    grad = b.outputs.grad[4:]
    assert torch.allclose(grad, 2 * (b.replay_logits - b.replay["logits"]) / grad.numel())
    assert torch.count_nonzero(b.outputs.grad[:4]) == 0


class _State:
    def __init__(self, model, stream, task):
        self.model, self.stream, self.task = model, stream, task


def test_lwf_distillation_is_the_kl_bregman_divergence_at_temperature():
    # a domain-incremental-like stream: every task has all classes, so all logits are distilled
    source = make_source(num_classes=4)
    stream = class_incremental(source, 1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    lwf, breg = Distillation(temperature=2.0), Bregman("negative-entropy", target="teacher", link="softmax",
                                                       temperature=2.0)
    state = _State(model, stream, stream.tasks[0])
    for term in (lwf, breg):
        term.begin_task(state) if hasattr(term, "begin_task") else None
        term.end_task(state)  # the teacher is the model as it is now
    lwf.begin_task(state)
    with torch.no_grad():
        model[1].weight.add_(torch.randn(4, 64, generator=g) * 0.1)  # the student moves away
    x = stream.inputs("train", torch.arange(8), 0)
    b = StepBatch(model, 1, x, torch.zeros(8, dtype=torch.long), [], model(x))
    assert torch.allclose(lwf(b), breg(b), atol=1e-6)  # mean KL, no T² (Li and Hoiem; Mammoth)
    teacher = lwf.teacher(x)
    p_old, log_q = F.softmax(teacher / 2, 1), F.log_softmax(b.logits / 2, 1)
    manual = (p_old * (p_old.log() - log_q)).sum(1).mean()  # written out: catches a T² left in
    assert torch.allclose(lwf(b), manual, atol=1e-7)
    scaled = Distillation(temperature=2.0, scale_by_t2=True)
    scaled.__dict__.update({k: v for k, v in lwf.__dict__.items() if k != "scale_by_t2"})
    assert torch.allclose(scaled(b), 4.0 * manual, atol=1e-7)
    # Mammoth's cross-entropy form -Σ p_old log q has the same gradient (it differs by a constant)
    b.outputs = b.outputs.detach().requires_grad_(True)
    g1, = torch.autograd.grad(lwf(b), b.outputs)
    g2, = torch.autograd.grad(-(p_old * F.log_softmax(b.outputs / 2, 1)).sum(1).mean(), b.outputs)
    assert torch.allclose(g1, g2, atol=1e-7)


def test_lwf_is_zero_on_the_first_task():
    b = _batch()
    assert Distillation()(b).item() == 0.0


def _begin(term, classes_per_task, task_index, num_classes=6):
    class Task:
        index = task_index
        classes = classes_per_task[task_index]

    class Stream:
        pass

    Stream.num_classes = num_classes
    state = _State(torch.nn.Linear(1, 1), Stream, Task)
    for t in range(task_index + 1):
        Task.index, Task.classes = t, classes_per_task[t]
        term.begin_task(state)
    return state


def test_er_ace_masks_only_past_classes_of_the_current_batch():
    term = CrossEntropy(mask="past")
    _begin(term, [(0, 1), (2, 3), (4, 5)], 1)
    outputs = torch.randn(3, 6, generator=g, requires_grad=True)
    b = StepBatch(None, 1, torch.zeros(3, 2), torch.tensor([2, 3, 2]), [], outputs)
    term(b).backward()
    assert torch.count_nonzero(outputs.grad[:, :2]) == 0  # past classes 0, 1 get no push
    assert torch.count_nonzero(outputs.grad[:, 2:]) == 3 * 4  # current and future classes do


def test_ce_draws_and_sources():
    b = _batch()
    second = {"y": torch.tensor([1, 2]), "x": torch.zeros(2, 2)}
    b.replays.append(second)
    b.inputs = torch.zeros(9, 2)
    b.outputs = torch.randn(9, 5, generator=g)
    assert torch.allclose(CrossEntropy("replay", draw=1)(b), F.cross_entropy(b.outputs[7:], second["y"]))
    both = CrossEntropy("both", draw=1)(b)
    assert torch.allclose(both, F.cross_entropy(torch.cat([b.outputs[:4], b.outputs[7:]]), torch.cat([b.y, second["y"]])))


def test_icarl_targets_mix_old_model_sigmoids_and_new_one_hot_labels():
    term = ICaRLDistillation(on="current")
    state = _begin(term, [(0, 1), (2, 3), (4, 5)], 0)

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[2.0, -1.0, 0.5, 0.0, 3.0, 1.0]]).expand(len(x), 6)

    state.model = Fixed()
    term.end_task(state)  # teacher = Fixed
    _begin(term, [(0, 1), (2, 3), (4, 5)], 1)
    # the student's logits are not zero: at zero, BCE with logits is log 2 whatever the targets
    outputs = torch.tensor([[0.3, -0.7, 1.1, -0.2, 0.9, 0.4], [-1.3, 0.6, 0.2, 0.8, -0.5, 1.5]], requires_grad=True)
    b = StepBatch(None, 1, torch.zeros(2, 2), torch.tensor([3, 2]), [], outputs)
    value = term(b)
    # columns: old classes 0, 1 (targets sigmoid(2), sigmoid(-1) from the teacher), current 2, 3
    # (one-hot); 4, 5 left out. Written out: mean over the 2 x 4 entries of
    # -(t log s(z) + (1 - t) log(1 - s(z)))
    t_old = [1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(1.0))]
    targets = [[*t_old, 0.0, 1.0], [*t_old, 1.0, 0.0]]
    z = outputs.detach()[:, :4].tolist()
    manual = -sum(t * math.log(1 / (1 + math.exp(-v))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-v)))
                  for zr, tr in zip(z, targets) for v, t in zip(zr, tr)) / 8
    assert abs(value.item() - manual) < 1e-6  # catches old-class targets from the student itself
    value.backward()
    assert torch.count_nonzero(outputs.grad[:, 4:]) == 0
    expected_grad = (torch.sigmoid(outputs.detach()[:, :4]) - torch.tensor(targets)) / 8
    assert torch.allclose(outputs.grad[:, :4], expected_grad, atol=1e-7)
