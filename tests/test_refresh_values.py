"""Value tests of the refresh plug-in (Wang et al., ICLR 2024, Section 4): each unlearning step
against the update written out here, with gradients of a hand-written loss on explicit weights.
Every setting is passed explicitly, so that the tests do not depend on the defaults. Each test
says which plausible wrong variant of the implementation it catches."""
import copy
import io
import math
import types

import pytest
import torch
import torch.nn as nn

from lifelong.data.streams import class_incremental
from lifelong.objective import CrossEntropy, LogitMSE, Objective, StepBatch
from lifelong.plugins import Refresh
from lifelong.loop import TrainState
from tests.conftest import make_source

D, H, C = 4, 5, 3


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _refresh(**changes):
    """A plug-in with every setting given explicitly."""
    settings = dict(form="paper", gamma=0.05, steps=1, noise=0.0, loss="ce", when="before", normalize=False,
                    damping=0.5, preconditioner="damped", fisher_decay=1e-5, every=1, seed=0)
    settings.update(changes)
    return Refresh(**settings)


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, H), nn.Tanh(), nn.Linear(H, C))


def _hand_forward(w, x):
    w1, b1, w2, b2 = w
    return torch.tanh(x @ w1.t() + b1) @ w2.t() + b2


def _hand_ce(logits, y):
    """Mean over rows of log Σ_c exp z_c − z_y, by an explicit loop."""
    total = 0.0
    for i in range(len(y)):
        row = logits[i]
        top = row.max()
        total = total + top + torch.log(torch.exp(row - top).sum()) - row[int(y[i])]
    return total / len(y)


def _hand_loss(w, batch, loss):
    """``ce``: the current batch's cross-entropy; ``objective``: CE + 0.5 · mean over examples and
    classes of the squared distance of the replayed outputs to their stored logits (the objective
    built by :func:`_state`)."""
    n = len(batch.y)
    if loss == "ce":
        return _hand_ce(_hand_forward(w, batch.inputs[:n]), batch.y)
    out = _hand_forward(w, batch.inputs)
    z = batch.replays[0]["logits"]
    mse = sum((out[n + i, c] - z[i, c]) ** 2 for i in range(len(z)) for c in range(C)) / (len(z) * C)
    return _hand_ce(out[:n], batch.y) + 0.5 * mse


def _hand_grad(params, batch, loss):
    w = [p.detach().clone().requires_grad_(True) for p in params]
    return [g.detach() for g in torch.autograd.grad(_hand_loss(w, batch, loss), w)]


def _batch(model, seed=1, n=5, m=3):
    g = _gen(seed)
    x = torch.randn(n, D, generator=g)
    replay = {"x": torch.randn(m, D, generator=g), "y": torch.randint(0, C, (m,), generator=g),
              "logits": 3.0 * torch.randn(m, C, generator=g)}
    return StepBatch(model, 1, torch.cat([x, replay["x"]]), torch.randint(0, C, (n,), generator=g), [replay])


def _state(model, stream=None, task=None):
    recipe = types.SimpleNamespace(objective=Objective([(1.0, CrossEntropy()), (0.5, LogitMSE())]), plugins=[])
    return TrainState(model, None, stream, recipe, None, 3, task=task)


def _fisher(params, seed=2):
    g = _gen(seed)
    return [0.2 + 4.8 * torch.rand(p.shape, generator=g) for p in params]


def _precond(fisher, kind, damping):
    if kind == "damped":
        return [1.0 / (1.0 + damping * f) for f in fisher]
    return [1.0 / (f + damping) for f in fisher]


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _close(got, want, atol=1e-6):
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=atol), (a - b).abs().max()


@pytest.mark.parametrize("preconditioner", ["damped", "inverse"])
@pytest.mark.parametrize("loss", ["ce", "objective"])
def test_paper_step_is_preconditioned_gradient_ascent(preconditioner, loss):
    # catches: the wrong preconditioner (F instead of F⁻¹, damping in the wrong place), descent
    # instead of ascent, γ missing, the objective's replay terms left out when loss="objective"
    # (or included when loss="ce")
    model = _mlp()
    batch = _batch(model)
    plugin = _refresh(form="paper", gamma=0.05, noise=0.0, loss=loss, normalize=False, damping=0.5,
                      preconditioner=preconditioner)
    params = list(model.parameters())
    fisher = _fisher(params)
    plugin.fisher = fisher  # set before any step: no preconditioner is cached yet
    before = _params(model)
    grads = _hand_grad(before, batch, loss)
    other = _hand_grad(before, batch, "objective" if loss == "ce" else "ce")
    assert sum((a - b).abs().sum() for a, b in zip(grads, other)) > 1e-3  # the two losses differ
    P = _precond(fisher, preconditioner, 0.5)
    plugin.unlearn(_state(model), batch)
    _close(_params(model), [t + 0.05 * pc * g for t, pc, g in zip(before, P, grads)])


def test_paper_steps_recompute_the_gradient_at_each_step():
    # catches: J steps that reuse the first step's gradient (or take one step J times as long),
    # and a preconditioner cached from a Fisher that was replaced
    model = _mlp(1)
    batch = _batch(model, seed=3)
    plugin = _refresh(form="paper", gamma=0.2, steps=2, noise=0.0, loss="ce", when="before", normalize=False,
                      damping=1.0, preconditioner="inverse", every=1)
    fisher = _fisher(list(model.parameters()), seed=4)
    plugin.fisher = fisher
    P = _precond(fisher, "inverse", 1.0)
    theta = _params(model)
    for _ in range(2):
        grads = _hand_grad(theta, batch, "ce")
        theta = [t + 0.2 * pc * g for t, pc, g in zip(theta, P, grads)]
    plugin.before_step(_state(model), batch)
    _close(_params(model), theta)
    # a new Fisher at a task end must take effect at the next step, decayed old plus the task's
    stream = class_incremental(make_source(num_classes=C, per_class_train=2, per_class_test=1, size=2), 1)
    flat = nn.Sequential(nn.Flatten(), model)  # the same parameters, on 2x2 images
    task_state = TrainState(flat, None, stream, None, None, 3, task=stream.tasks[0])
    ended = _refresh(form="paper", gamma=0.2, steps=1, noise=0.0, loss="ce", when="before", normalize=False,
                     damping=1.0, preconditioner="inverse", fisher_decay=0.5, every=1)
    ended.fisher = [f.clone() for f in fisher]
    ended.unlearn(_state(model), batch)  # P of the old Fisher, possibly cached
    task_fisher = [torch.zeros_like(p) for p in model.parameters()]
    idx = stream.tasks[0].train_idx
    for i in idx:  # Mammoth's estimator: mean_i p(y_i|x_i) (∂ log p(y_i|x_i)/∂θ)²
        z = flat(stream.inputs("train", i.view(1), 0))[0]
        logp = z[int(stream.labels("train", i.view(1)))] - torch.log(torch.exp(z).sum())
        grads = torch.autograd.grad(logp, list(model.parameters()))
        task_fisher = [t + torch.exp(logp).item() * g * g / len(idx) for t, g in zip(task_fisher, grads)]
    ended.end_task(task_state)
    new = [0.5 * f + t for f, t in zip(fisher, task_fisher)]
    _close(ended.fisher, new, atol=1e-7)
    theta = _params(model)
    grads = _hand_grad(theta, batch, "ce")
    ended.unlearn(_state(model), batch)
    _close(_params(model), [t + 0.2 * pc * g for t, pc, g in zip(theta, _precond(new, "inverse", 1.0), grads)])


def _noise_run(seed, noise, form, global_seed=0, precond_values=(0.0, 3.0, 15.0)):
    """One refresh of a Linear(200, 200) from a fixed start; the parameters after it and P."""
    torch.manual_seed(7)
    model = nn.Linear(200, 200)
    g = _gen(8)
    x, y = torch.randn(4, 200, generator=g), torch.randint(0, 200, (4,), generator=g)
    choice = torch.randint(0, len(precond_values), (200, 200), generator=_gen(9))
    fisher = [torch.tensor(precond_values)[choice], torch.zeros(200)]
    plugin = _refresh(form=form, gamma=0.02, steps=1, noise=noise, loss="ce",
                      when="before" if form == "paper" else "after", normalize=form == "code", damping=1.0,
                      preconditioner="damped", every=1, seed=seed)
    plugin.fisher = fisher
    torch.manual_seed(global_seed)  # the noise must come from the plug-in's own generator
    state = TrainState(model, None, None, types.SimpleNamespace(objective=None, plugins=[]), None, 4)
    batch = StepBatch(model, 0, x, y, [])
    (plugin.before_step if form == "paper" else plugin.after_step)(state, batch)
    return model.weight.detach().clone(), 1.0 / (1.0 + fisher[0]), choice


@pytest.mark.parametrize("form", ["paper", "code"])
def test_noise_has_the_documented_scale_per_element(form):
    # catches: noise at 10x (or any other) scale, noise scaled by P instead of sqrt(P) (paper) or
    # by sqrt(P) instead of P (code), sqrt(2γ) missing (paper) or γ missing (code), noise drawn from
    # the global generator (not reproducible from the seed), the same noise for every seed
    noisy, P, choice = _noise_run(seed=1, noise=0.5, form=form)
    clean, _, _ = _noise_run(seed=1, noise=0.0, form=form)
    if form == "paper":
        scale = math.sqrt(2 * 0.02) * 0.5 * P.sqrt()  # N(0, 2γ · noise² · P)
    else:
        scale = 0.02 * 0.5 * P  # γ · P ⊙ noise · ε
    eps = (noisy - clean) / scale
    for group in range(3):  # P = 1, 1/4, 1/16
        e = eps[choice == group]
        assert len(e) > 10000
        assert abs(e.mean().item()) < 0.03
        assert abs(e.std().item() - 1.0) < 0.03, (group, e.std().item())
    same, _, _ = _noise_run(seed=1, noise=0.5, form=form, global_seed=123)
    assert torch.equal(same, noisy)
    other, _, _ = _noise_run(seed=2, noise=0.5, form=form)
    e2 = (other - clean) / scale
    assert abs(torch.corrcoef(torch.stack([eps.flatten(), e2.flatten()]))[0, 1].item()) < 0.05


@pytest.mark.parametrize("loss", ["ce", "objective"])
def test_code_step_is_rescaled_per_tensor(loss):
    # catches: the ascent direction not rescaled per tensor (θ + γPg), rescaled by one global
    # ratio, rescaled by ‖g‖/‖θ‖, the preconditioner left out, descent instead of ascent
    model = _mlp(2)
    batch = _batch(model, seed=5)
    plugin = _refresh(form="code", gamma=0.01, steps=1, noise=0.0, loss=loss, when="after", normalize=True,
                      damping=0.3, preconditioner="damped")
    fisher = _fisher(list(model.parameters()), seed=6)
    plugin.fisher = fisher
    P = _precond(fisher, "damped", 0.3)
    before = _params(model)
    grads = _hand_grad(before, batch, loss)
    plugin.unlearn(_state(model), batch)
    want = []
    for t, pc, g in zip(before, P, grads):
        ratio = torch.sqrt((t * t).sum()) / torch.sqrt((g * g).sum())
        want.append(t + 0.01 * pc * ratio * g)
    _close(_params(model), want, atol=1e-7)


def test_code_step_has_norm_gamma_times_the_tensor_norm_without_a_fisher():
    # catches: missing per-tensor rescaling (the step would have norm γ‖g_l‖), a global rescaling
    # (one ratio for all tensors), rescaling to ‖g‖ / ‖θ‖
    model = _mlp(3)
    batch = _batch(model, seed=7)
    plugin = _refresh(form="code", gamma=0.01, steps=1, noise=0.0, loss="ce", when="after", normalize=True,
                      damping=1e-3, preconditioner="damped")
    before = _params(model)  # no Fisher yet: F = 0 and P = 1
    grads = _hand_grad(before, batch, "ce")
    plugin.unlearn(_state(model), batch)
    norms = []
    for t, a, g in zip(before, _params(model), grads):
        step = a - t
        theta_norm = torch.sqrt((t * t).sum())
        assert torch.allclose(torch.sqrt((step * step).sum()), 0.01 * theta_norm, rtol=1e-4)
        cos = (step * g).sum() / (torch.sqrt((step * step).sum()) * torch.sqrt((g * g).sum()))
        assert cos > 1 - 1e-5  # along the gradient: ascent
        norms.append(theta_norm.item())
    assert max(norms) > 1.5 * min(norms)  # tensors of different norms: a global ratio would fail


@pytest.mark.parametrize("form", ["paper", "code"])
@pytest.mark.parametrize("loss", ["ce", "objective"])
def test_batch_norm_buffers_are_restored(form, loss):
    # catches: running statistics (or the batch counter) updated by the unlearning forward,
    # buffers restored to a copy taken after the forward, the model left in eval mode
    torch.manual_seed(10)
    model = nn.Sequential(nn.Linear(D, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, C))
    model.train()
    for k in range(3):  # non-trivial running statistics
        model(torch.randn(8, D, generator=_gen(20 + k)) * 2 + 1)
    batch = _batch(model, seed=11)
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    assert int(buffers["1.num_batches_tracked"]) == 3
    before = _params(model)
    plugin = _refresh(form=form, gamma=0.05, steps=2, noise=0.1, loss=loss,
                      when="before" if form == "paper" else "after", normalize=form == "code", damping=0.5, preconditioner="damped", every=1, seed=3)
    state = _state(model)
    (plugin.before_step if form == "paper" else plugin.after_step)(state, batch)
    for name, b in model.named_buffers():
        assert torch.equal(b, buffers[name]), name
    assert all(not torch.equal(a, b) for a, b in zip(before, _params(model)))
    assert model.training


def _roundtrip(state_dict):
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("form", ["paper", "code"])
def test_resumed_plugin_continues_identically(form):
    # catches: a state that leaves out the Fisher, the step counter (refreshing at other steps)
    # or the noise generator's position (noise restarting from the seed), or that does not survive
    # a weights-only checkpoint
    stream = class_incremental(make_source(num_classes=4, per_class_train=3, per_class_test=1, size=2), 2)
    settings = dict(form=form, gamma=0.05, steps=1, noise=0.3, loss="ce", when="before" if form == "paper" else "after",
                    normalize=form == "code", damping=0.5, preconditioner="damped", fisher_decay=0.5, every=2, seed=4)
    torch.manual_seed(12)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, H), nn.Tanh(), nn.Linear(H, 4))
    g = _gen(13)
    x, y = torch.rand(3, 1, 2, 2, generator=g), torch.tensor([0, 1, 1])

    def step(plugin, state):
        (plugin.before_step if form == "paper" else plugin.after_step)(state, StepBatch(state.model, 0, x, y, []))

    a = _refresh(**settings)
    state_a = TrainState(model, None, stream, None, None, 3, task=stream.tasks[0])
    a.end_task(state_a)
    for _ in range(3):  # refreshes at calls 1 and 3
        step(a, state_a)
    saved = _roundtrip(a.state_dict())
    model_b = copy.deepcopy(model)
    fresh_model = copy.deepcopy(model)
    b = _refresh(**settings)
    state_b = TrainState(model_b, None, stream, None, None, 3, task=stream.tasks[0])
    b.load_state_dict(saved, state_b)
    fresh = _refresh(**settings)
    fresh_state = TrainState(fresh_model, None, stream, None, None, 3, task=stream.tasks[0])
    fresh.fisher = [f.clone() for f in a.fisher]  # even with the Fisher, a fresh start differs
    torch.manual_seed(999)  # the noise must not come from the global generator
    for plugin, state in ((a, state_a), (b, state_b), (fresh, fresh_state)):
        for k in range(5):
            if k == 2:
                state.task = stream.tasks[1]
                plugin.end_task(state)
            step(plugin, state)
    for p, q in zip(model.parameters(), model_b.parameters()):
        assert torch.equal(p, q)
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), fresh_model.parameters()))
    assert (a.calls, a.refreshes) == (b.calls, b.refreshes) == (8, 4)
    for f, h in zip(a.fisher, b.fisher):
        assert torch.equal(f, h)
