"""Weight-space terms: the quadratic's shape, the Fisher and MAS importances against their
closed forms on a linear softmax model, SI's path integral on a hand-worked path."""
import pytest
import torch
import torch.nn.functional as F

from lifelong.data.streams import class_incremental
from lifelong.objective import EWC, MAS, SI, QuadraticPenalty, StepBatch
from lifelong.objective.importance import cross_entropy_fisher_loss, output_norm_loss, per_example_sums
from lifelong.loop import TrainState
from tests.conftest import make_source

g = torch.Generator().manual_seed(0)


def test_quadratic_is_zero_at_the_anchor_and_exactly_quadratic_around_it():
    anchor = [torch.randn(3, 4, generator=g), torch.randn(4, generator=g)]
    omega = [torch.rand(3, 4, generator=g), torch.rand(4, generator=g)]
    pen = QuadraticPenalty()
    pen.replace(omega, anchor)
    assert pen.value(anchor).item() == 0.0
    d = [torch.randn(3, 4, generator=g), torch.randn(4, generator=g)]
    base = pen.value([a + e for a, e in zip(anchor, d)])
    for t in (0.5, 2.0, -3.0):
        assert torch.allclose(pen.value([a + t * e for a, e in zip(anchor, d)]), t * t * base, rtol=1e-5)
    expected = sum((o * e * e).sum() for o, e in zip(omega, d))
    assert torch.allclose(base, expected)


def test_per_task_anchors_merge_exactly():
    anchors = [[torch.randn(5, generator=g)] for _ in range(3)]
    omegas = [[torch.rand(5, generator=g)] for _ in range(3)]
    pen = QuadraticPenalty()
    for o, a in zip(omegas, anchors):
        pen.add_anchor(o, a)
    theta = torch.randn(5, generator=g, requires_grad=True)
    explicit = sum((o[0] * (theta - a[0]).square()).sum() for o, a in zip(omegas, anchors))
    merged = pen.value([theta])
    assert torch.allclose(merged, explicit, rtol=1e-5)
    g1, = torch.autograd.grad(merged, theta)
    g2, = torch.autograd.grad(explicit, theta)
    assert torch.allclose(g1, g2, atol=1e-5)


def test_online_decay_accumulates_importance():
    pen = QuadraticPenalty()
    pen.replace([torch.full((2,), 2.0)], [torch.zeros(2)])
    pen.replace([torch.full((2,), 1.0)], [torch.ones(2)], decay=0.5)
    assert pen.omega[0].tolist() == [2.0, 2.0] and pen.mean[0].tolist() == [1.0, 1.0]


def _linear_data(n=12, d=5, c=3):
    x = torch.randn(n, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    model = torch.nn.Linear(d, c)
    return model, x, y


def _closed_form_fisher(model, x, y, weighted):
    p = F.softmax(model(x), 1).detach()
    e = p - F.one_hot(y, p.shape[1]).float()  # dCE/dlogits per example
    w = p.gather(1, y.unsqueeze(1)).squeeze(1) if weighted else torch.ones(len(y))
    return (w[:, None, None] * e[:, :, None].square() * x[:, None, :].square()).sum(0), (w[:, None] * e.square()).sum(0)


@pytest.mark.parametrize("weighted", [True, False])
def test_fisher_of_a_linear_softmax_model_matches_its_closed_form(weighted):
    model, x, y = _linear_data()
    sums = per_example_sums(model, [(x[:7], y[:7]), (x[7:], y[7:])], cross_entropy_fisher_loss(weighted), "square")
    W, b = _closed_form_fisher(model, x, y, weighted)
    assert torch.allclose(sums[0], W, atol=1e-6) and torch.allclose(sums[1], b, atol=1e-6)


class Scaled(torch.nn.Module):
    """A linear model with one extra non-linear-layer parameter: forces the vmap path."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.scale = inner, torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.inner(x) * self.scale


def test_general_path_agrees_with_the_fast_path():
    model, x, y = _linear_data()
    fast = per_example_sums(model, [(x, y)], cross_entropy_fisher_loss(True), "square")
    general = per_example_sums(Scaled(model), [(x, y)], cross_entropy_fisher_loss(True), "square")
    # parameters() lists the module's own `scale` first, then the linear layer's weight and bias
    assert torch.allclose(general[1], fast[0], atol=1e-6) and torch.allclose(general[2], fast[1], atol=1e-6)


def test_mas_importance_matches_its_closed_form():
    model, x, _ = _linear_data()
    sums = per_example_sums(model, [(x, torch.zeros(len(x)))], output_norm_loss, "abs")
    f = model(x).detach()  # d||f||^2 / dW = 2 f x^T per example
    assert torch.allclose(sums[0], (2 * f.abs())[:, :, None].mul(x.abs()[:, None, :]).sum(0), atol=1e-5)
    assert torch.allclose(sums[1], (2 * f.abs()).sum(0), atol=1e-5)


def _state(model, stream, task):
    return TrainState(model, None, stream, None, None, 10, task=task)


def test_ewc_end_task_stores_the_mean_fisher_and_anchor():
    stream = class_incremental(make_source(num_classes=4, per_class_train=5), 2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    term = EWC(online=True, gamma=1.0)
    state = _state(model, stream, stream.tasks[0])
    term.begin_task(state)
    term.end_task(state)
    x = stream.inputs("train", stream.tasks[0].train_idx, 0).flatten(1)
    W, b = _closed_form_fisher(model[1], x, stream.labels("train", stream.tasks[0].train_idx), True)
    assert torch.allclose(term.penalty.omega[0], W / 10, atol=1e-6)
    assert torch.equal(term.penalty.mean[0], model[1].weight.detach())
    batch = StepBatch(model, 1, x[:2], torch.zeros(2, dtype=torch.long), [], model(x[:2]))
    assert term(batch).item() == 0.0  # at the anchor


def test_si_importance_on_a_hand_worked_path():
    theta = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    model = torch.nn.Module()
    model.theta = theta
    term = SI(xi=0.5)
    state = _state(model, None, None)
    term.begin_task(state)
    lr, grads = 0.1, [torch.tensor([1.0, 0.0]), torch.tensor([2.0, -1.0]), torch.tensor([-1.0, 3.0])]
    for grad in grads:  # plain SGD steps with given gradients
        theta.grad = grad.clone()
        term.after_backward(state, None)
        with torch.no_grad():
            theta -= lr * theta.grad
        term.after_step(state, None)
    # omega = sum_t -g_t * delta_t = lr * sum_t g_t^2
    omega = lr * sum(gr.square() for gr in grads)
    assert torch.allclose(term.path[0], omega)
    total = -lr * sum(grads)  # theta_end - theta_start
    term.end_task(state)
    assert torch.allclose(term.penalty.omega[0], omega / (total.square() + 0.5))
    assert torch.allclose(term.penalty.mean[0], theta.detach())
