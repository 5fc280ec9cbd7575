"""Value tests: every term and plug-in against a formula written out here, independently of the
library's own expression (explicit loops over examples, closed-form gradients of linear models),
on tiny models. Each test says which plausible wrong variant of the implementation it catches."""
import io
import types

import numpy as np
import pytest
import torch
import torch.nn as nn

from lifelong.data.streams import class_incremental
from lifelong.memory import ReservoirBuffer
from lifelong.objective import EWC, L2, MAS, Bregman, LogitMSE, Objective, StepBatch
from lifelong.objective.weight import QuadraticPenalty, task_fisher
from lifelong.plugins import AGEM, NearestMeanOfExemplars
from lifelong.loop import TrainState
from tests.conftest import make_source

D, C = 4, 3  # input features, classes of the output-term models


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _softmax_rows(z):
    """Softmax of each row, by hand."""
    e = torch.exp(z - z.max(dim=1, keepdim=True).values)
    return e / e.sum(dim=1, keepdim=True)


def _linear_grads(x, delta):
    """Gradient wrt (W, b) of a loss of ``f = x Wᵀ + b`` whose gradient wrt ``f`` is ``delta``."""
    gw = torch.zeros(delta.shape[1], x.shape[1])
    gb = torch.zeros(delta.shape[1])
    for i in range(len(x)):
        gw += torch.outer(delta[i], x[i])
        gb += delta[i]
    return gw, gb


def _assert_close(got, want, rtol=1e-5, atol=1e-6):
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        assert torch.allclose(a, b, rtol=rtol, atol=atol), (a, b)


# -- output-space terms ----------------------------------------------------------------------

def _replay_batch(model, seed=0, n=2, m=3, draws=2):
    """A step batch with ``n`` current examples and ``draws`` replay draws of ``m`` examples each,
    whose stored logits differ from draw to draw (and from the model's outputs)."""
    g = _gen(seed)
    x = torch.randn(n, D, generator=g)
    replays = [{"x": torch.randn(m, D, generator=g), "y": torch.randint(0, C, (m,), generator=g),
                "logits": 2.0 * torch.randn(m, C, generator=g) + k} for k in range(draws)]
    inputs = torch.cat([x] + [r["x"] for r in replays])
    return StepBatch(model, 1, inputs, torch.randint(0, C, (n,), generator=g), replays, model(inputs))


def _linear(seed=0, d=D, c=C):
    torch.manual_seed(seed)
    return nn.Linear(d, c)


@pytest.mark.parametrize("draw", [0, 1])
def test_logit_mse_value_and_gradient_on_its_draw(draw):
    # catches: mean over examples only (sum over classes), missing factor 2 in the gradient,
    # reading draw 0 whatever `draw` says, comparing against the current batch's logits
    model = _linear()
    batch = _replay_batch(model)
    replay = batch.replays[draw]
    x, z = replay["x"], replay["logits"]
    m = len(x)
    with torch.no_grad():
        f = model(x)
    hand = sum((f[i, c] - z[i, c]) ** 2 for i in range(m) for c in range(C)) / (m * C)
    other = batch.replays[1 - draw]
    with torch.no_grad():
        hand_other = ((model(other["x"]) - other["logits"]) ** 2).sum() / (m * C)
    assert abs(hand - hand_other) > 0.1 * hand  # the two draws give clearly different values
    value = LogitMSE(draw=draw)(batch)
    assert torch.allclose(value, hand, rtol=1e-6)
    grads = torch.autograd.grad(value, [model.weight, model.bias])
    _assert_close(grads, _linear_grads(x, 2.0 * (f - z) / (m * C)))


def test_logit_mse_is_zero_without_replay():
    # catches: an error or a non-zero value on the first task (no replay draw yet), and a
    # draw index beyond the draws present being read anyway
    model = _linear()
    x = torch.randn(3, D, generator=_gen(1))
    batch = StepBatch(model, 0, x, torch.tensor([0, 1, 2]), [], model(x))
    assert LogitMSE()(batch).item() == 0.0
    assert LogitMSE(draw=1)(_replay_batch(model, draws=1)).item() == 0.0


def _kl_rows(p, q):
    """KL(p ‖ q) per row of two probability tables, by an explicit sum."""
    return torch.stack([sum(p[i, c] * (torch.log(p[i, c]) - torch.log(q[i, c])) for c in range(p.shape[1]))
                        for i in range(len(p))])


@pytest.mark.parametrize("draw", [0, 1])
def test_bregman_squared_norm_on_stored_logits(draw):
    # catches: no ½ (the plain squared distance), a mean over classes too, p and q swapped in the
    # gradient (pushing away from the stored logits), the wrong draw
    model = _linear(1)
    batch = _replay_batch(model, seed=2)
    x, p = batch.replays[draw]["x"], batch.replays[draw]["logits"]
    with torch.no_grad():
        q = model(x)
    m = len(x)
    hand = sum(0.5 * sum((p[i, c] - q[i, c]) ** 2 for c in range(C)) for i in range(m)) / m
    value = Bregman("squared-norm", target="stored", link="identity", draw=draw)(batch)
    assert torch.allclose(value, hand, rtol=1e-6)
    grads = torch.autograd.grad(value, [model.weight, model.bias])
    _assert_close(grads, _linear_grads(x, (q - p) / m))


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_bregman_negative_entropy_with_softmax_link_is_the_mean_kl_on_stored_logits(temperature):
    # catches: KL(q ‖ p) instead of KL(p ‖ q), temperature not applied (or applied to one side only),
    # sum over rows instead of mean, softmax gradient missing its 1/T
    model = _linear(2)
    batch = _replay_batch(model, seed=3)
    x, z = batch.replays[0]["x"], batch.replays[0]["logits"]
    with torch.no_grad():
        f = model(x)
    P, Q = _softmax_rows(z / temperature), _softmax_rows(f / temperature)
    m = len(x)
    hand = _kl_rows(P, Q).sum() / m
    value = Bregman("negative-entropy", target="stored", link="softmax", temperature=temperature)(batch)
    assert torch.allclose(value, hand, rtol=1e-5)
    grads = torch.autograd.grad(value, [model.weight, model.bias])
    _assert_close(grads, _linear_grads(x, (Q - P) / (temperature * m)))


@pytest.mark.parametrize("phi, link", [("squared-norm", "identity"), ("negative-entropy", "softmax")])
def test_bregman_against_the_teacher(phi, link):
    # catches: a teacher that is not a frozen snapshot (it follows the student: value 0), the
    # teacher read on the replayed instead of the current examples, a non-zero value before any
    # task has ended
    torch.manual_seed(4)
    model = nn.Linear(D, C)
    term = Bregman(phi, target="teacher", link=link)
    x = torch.randn(5, D, generator=_gen(5))
    y = torch.zeros(5, dtype=torch.long)
    assert term(StepBatch(model, 0, x, y, [], model(x))).item() == 0.0  # no teacher yet
    state = types.SimpleNamespace(model=model, task=types.SimpleNamespace(classes=(0, 1), index=0))
    term.end_task(state)
    w_old, b_old = model.weight.detach().clone(), model.bias.detach().clone()
    with torch.no_grad():
        model.weight.add_(0.5 * torch.randn(C, D, generator=_gen(6)))
        model.bias.add_(0.5 * torch.randn(C, generator=_gen(7)))
    # the replayed rows get other inputs: a term reading them would differ
    extra = torch.randn(3, D, generator=_gen(8))
    batch = StepBatch(model, 1, torch.cat([x, extra]), y,
                      [{"x": extra, "y": torch.zeros(3, dtype=torch.long), "logits": torch.zeros(3, C)}],
                      model(torch.cat([x, extra])))
    p_logits = x @ w_old.t() + b_old
    with torch.no_grad():
        q_logits = model(x)
    n = len(x)
    if phi == "squared-norm":
        hand = sum(0.5 * ((p_logits[i] - q_logits[i]) ** 2).sum() for i in range(n)) / n
        delta = (q_logits - p_logits) / n
    else:
        P, Q = _softmax_rows(p_logits), _softmax_rows(q_logits)
        hand = _kl_rows(P, Q).sum() / n
        delta = (Q - P) / n
    value = term(batch)
    assert hand > 1e-3
    assert torch.allclose(value, hand, rtol=1e-5)
    _assert_close(torch.autograd.grad(value, [model.weight, model.bias]), _linear_grads(x, delta))


# -- weight-space terms ----------------------------------------------------------------------

class _ScaledMLP(nn.Module):
    """A 2-layer MLP with one parameter outside any linear layer: per-example statistics must take
    the general (vmap) path instead of the linear-layers fast path."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.scale = inner, nn.Parameter(torch.tensor(1.3))

    def forward(self, x):
        return self.inner(x) * self.scale


def _mlp(kind="fast", seed=0, classes=6):
    torch.manual_seed(seed)
    inner = nn.Sequential(nn.Flatten(), nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, classes))
    return inner if kind == "fast" else _ScaledMLP(inner)


def _stream(tasks=3):
    # 2x2 one-channel images (4 features), 2 classes per task, 3 training examples per class
    return class_incremental(make_source(num_classes=2 * tasks, per_class_train=3, per_class_test=1, size=2), tasks)


def _state(model, stream, t):
    return TrainState(model, None, stream, None, None, 4, task=stream.tasks[t])


def _examples(stream, task, n=None):
    idx = task.train_idx if n is None else task.train_idx[:n]
    return [(stream.inputs("train", i.view(1), task.index), int(stream.labels("train", i.view(1))))
            for i in idx]


def _log_prob(model, x, y):
    """log p(y | x) of one example, by hand: z_y − log Σ_c exp z_c."""
    z = model(x)[0]
    return z[y] - torch.log(torch.exp(z - z.max()).sum()) - z.max()


def _hand_fisher(model, stream, task, weighted=True, n=None):
    """Mammoth's EWC estimator: mean_i p(y_i|x_i) · (∂ log p(y_i|x_i)/∂θ)², one example at a time."""
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    examples = _examples(stream, task, n)
    for x, y in examples:
        logp = _log_prob(model, x, y)
        grads = torch.autograd.grad(logp, params)
        w = torch.exp(logp).item() if weighted else 1.0
        total = [t + w * g * g for t, g in zip(total, grads)]
    return [t / len(examples) for t in total]


def _hand_mas(model, stream, task):
    """MAS: mean_i |∂‖f(x_i)‖²/∂θ|, one example at a time."""
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    examples = _examples(stream, task)
    for x, _ in examples:
        out = model(x)[0]
        grads = torch.autograd.grad(sum(out[c] * out[c] for c in range(len(out))), params)
        total = [t + g.abs() for t, g in zip(total, grads)]
    return [t / len(examples) for t in total]


def _move(model, seed, scale=0.3):
    with torch.no_grad():
        for k, p in enumerate(model.parameters()):
            p.add_(scale * torch.randn(p.shape, generator=_gen(100 * seed + k)))


def _snapshot(model):
    return [p.detach().clone() for p in model.parameters()]


def _value_and_grad(term, model, seed=0):
    x = torch.randn(2, 1, 2, 2, generator=_gen(seed))
    batch = StepBatch(model, 2, x, torch.zeros(2, dtype=torch.long), [], model(x))
    value = term(batch)
    return value, torch.autograd.grad(value, list(model.parameters()))


def _hand_quadratic(model, parts):
    """Σ_k Σ Ω_k (θ − θ_k)² and its gradient Σ_k 2 Ω_k (θ − θ_k), for parts = [(Ω_k, θ_k)]."""
    theta = _snapshot(model)
    value = sum((o * (t - a) ** 2).sum() for omega, anchor in parts for o, t, a in zip(omega, theta, anchor))
    grads = [sum(2 * omega[j] * (theta[j] - anchor[j]) for omega, anchor in parts) for j in range(len(theta))]
    return value, grads


@pytest.mark.parametrize("kind", ["fast", "vmap"])
@pytest.mark.parametrize("weighted", [True, False])
def test_task_fisher_is_the_mean_over_single_examples(kind, weighted):
    # catches: Fisher summed instead of averaged, the probability weight missing (or applied when
    # probability_weighted=False), p(y|x) squared, gradients of the batch mean squared instead of
    # per-example gradients squared, max_examples ignored or dividing by the task's size
    stream = _stream()
    model = _mlp(kind)
    _move(model, 9, 0.5)  # away from the initialisation: p(y|x) is not ≈ 1/6 everywhere
    state = _state(model, stream, 1)
    _assert_close(task_fisher(state, probability_weighted=weighted),
                  _hand_fisher(model, stream, stream.tasks[1], weighted), rtol=1e-4, atol=1e-8)
    _assert_close(task_fisher(state, probability_weighted=weighted, max_examples=4),
                  _hand_fisher(model, stream, stream.tasks[1], weighted, n=4), rtol=1e-4, atol=1e-8)


def test_ewc_per_task_keeps_one_anchor_per_task():
    # catches: a single anchor (the latest) instead of one per task, Fishers not added up, a
    # factor ½ in the value, a missing factor 2 in the gradient, Fisher summed over examples
    stream = _stream()
    model = _mlp()
    term = EWC(online=False, gamma=1.0, probability_weighted=True)
    state = _state(model, stream, 0)
    term.begin_task(state)
    parts = []
    for t in (0, 1):
        state.task = stream.tasks[t]
        if t:
            _move(model, t)
            term.begin_task(state)
        parts.append((_hand_fisher(model, stream, stream.tasks[t]), _snapshot(model)))
        term.end_task(state)
    _move(model, 7)
    value, grads = _value_and_grad(term, model)
    hand_value, hand_grads = _hand_quadratic(model, parts)
    assert hand_value > 1e-4
    assert torch.allclose(value, hand_value, rtol=1e-4)
    _assert_close(grads, hand_grads, rtol=1e-4, atol=1e-7)


def test_online_ewc_decays_the_old_fisher_and_moves_the_anchor():
    # catches: gamma applied to the new Fisher instead of the old one, no decay, the old Fisher
    # dropped, the anchor left at the first task's parameters
    stream = _stream()
    model = _mlp(seed=1)
    gamma = 0.6
    term = EWC(online=True, gamma=gamma, probability_weighted=True)
    state = _state(model, stream, 0)
    term.begin_task(state)
    term.end_task(state)
    f1 = _hand_fisher(model, stream, stream.tasks[0])
    _move(model, 2)
    state.task = stream.tasks[1]
    term.begin_task(state)
    term.end_task(state)
    f2, theta2 = _hand_fisher(model, stream, stream.tasks[1]), _snapshot(model)
    _move(model, 3)
    value, grads = _value_and_grad(term, model)
    hand_value, hand_grads = _hand_quadratic(model, [([gamma * a + b for a, b in zip(f1, f2)], theta2)])
    assert torch.allclose(value, hand_value, rtol=1e-5)
    _assert_close(grads, hand_grads, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("kind", ["fast", "vmap"])
def test_mas_importance_accumulates_over_tasks(kind):
    # catches: importance replaced at each task end (gamma ignored / decay 0), decay applied to the
    # new importance, Ω scaled (e.g. x3 or summed over examples), |mean gradient| instead of the
    # mean |per-example gradient|, the anchor left at the first task
    stream = _stream()
    model = _mlp(kind, seed=2)
    gamma = 0.7
    term = MAS(gamma=gamma)
    state = _state(model, stream, 0)
    term.begin_task(state)
    term.end_task(state)
    omega1, theta1 = _hand_mas(model, stream, stream.tasks[0]), _snapshot(model)
    _assert_close(term.penalty.omega, omega1, rtol=1e-5, atol=1e-8)
    _move(model, 4)
    value, grads = _value_and_grad(term, model)
    hand_value, hand_grads = _hand_quadratic(model, [(omega1, theta1)])
    assert torch.allclose(value, hand_value, rtol=1e-5)
    _assert_close(grads, hand_grads, rtol=1e-5, atol=1e-8)

    state.task = stream.tasks[1]
    term.begin_task(state)
    term.end_task(state)
    omega2, theta2 = _hand_mas(model, stream, stream.tasks[1]), _snapshot(model)
    omega = [gamma * a + b for a, b in zip(omega1, omega2)]
    _assert_close(term.penalty.omega, omega, rtol=1e-5, atol=1e-8)
    _move(model, 5)
    value, grads = _value_and_grad(term, model)
    hand_value, hand_grads = _hand_quadratic(model, [(omega, theta2)])
    assert torch.allclose(value, hand_value, rtol=1e-5)
    _assert_close(grads, hand_grads, rtol=1e-5, atol=1e-8)


def test_l2_is_the_squared_distance_to_the_previous_task_end():
    # catches: a non-zero value before any task end, Ω accumulating (2‖θ−θ*‖² after two tasks),
    # the anchor staying at the first task end, a factor ½ or a missing factor 2 in the gradient
    stream = _stream()
    model = _mlp(seed=3)
    term = L2()
    state = _state(model, stream, 0)
    term.begin_task(state)
    _move(model, 6)
    x = torch.randn(2, 1, 2, 2, generator=_gen(0))
    assert term(StepBatch(model, 0, x, torch.zeros(2, dtype=torch.long), [], model(x))).item() == 0.0
    for t in (0, 1):
        state.task = stream.tasks[t]
        term.begin_task(state)
        term.end_task(state)
        anchor = _snapshot(model)
        _move(model, 10 + t)
        theta = _snapshot(model)
        value, grads = _value_and_grad(term, model)
        hand = sum(((a - b) ** 2).sum() for a, b in zip(theta, anchor))
        assert torch.allclose(value, hand, rtol=1e-5)
        _assert_close(grads, [2 * (a - b) for a, b in zip(theta, anchor)])


@pytest.mark.parametrize("weight", [0.37, 2.5])
def test_quadratic_penalty_backward_scales_with_the_upstream_gradient(weight):
    # catches: a backward that ignores the upstream gradient (returns 2Ω(θ−m) whatever the term's
    # weight), a backward missing the factor 2, gradients sent to the wrong tensors
    torch.manual_seed(11)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    params = list(model.parameters())
    g = _gen(12)
    omega = [torch.rand(p.shape, generator=g) + 0.1 for p in params]
    anchor = [p.detach() + torch.randn(p.shape, generator=g) for p in params]
    term = L2()
    term.penalty = QuadraticPenalty()
    term.penalty.replace(omega, anchor, decay=0.0)
    term.params = params
    objective = Objective([(weight, term)])
    x = torch.randn(2, 3, generator=g)
    batch = StepBatch(model, 1, x, torch.zeros(2, dtype=torch.long), [], model(x))
    value = objective(batch)
    quad = sum((o * (p.detach() - a) ** 2).sum() for o, p, a in zip(omega, params, anchor))
    assert torch.allclose(value, weight * quad, rtol=1e-5)
    grads = torch.autograd.grad(value, params)
    _assert_close(grads, [weight * 2 * o * (p.detach() - a) for o, p, a in zip(omega, params, anchor)], atol=1e-6)
    # a non-linear use of the value: d(v²)/dθ = 2 v · 2Ω(θ − m)
    value = objective(batch)
    grads = torch.autograd.grad(value * value, params)
    _assert_close(grads, [2 * weight * quad * weight * 2 * o * (p.detach() - a)
                          for o, p, a in zip(omega, params, anchor)], rtol=1e-4, atol=1e-6)


def _roundtrip(state_dict):
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("make", [lambda: EWC(online=False, gamma=1.0), lambda: EWC(online=True, gamma=0.5),
                                  lambda: MAS(gamma=0.8)], ids=["ewc", "ewc-online", "mas"])
def test_resumed_terms_give_the_same_values_and_gradients(make):
    # catches: state that leaves out the merged anchors' sums (per-task EWC goes wrong at the next
    # task end), the parameter list not re-bound to the resumed model (a term that returns 0 or
    # differentiates the old model), state that does not survive a weights-only checkpoint
    stream = _stream()
    model = _mlp(seed=4)
    term = make()
    state = _state(model, stream, 0)
    term.begin_task(state)
    for t in (0, 1):
        state.task = stream.tasks[t]
        term.begin_task(state)
        term.end_task(state)
        _move(model, 20 + t)
    saved = _roundtrip(term.state_dict())
    resumed_model = _mlp(seed=99)
    resumed_model.load_state_dict(model.state_dict())
    resumed = make()
    resumed_state = _state(resumed_model, stream, 1)  # what train.restore passes: the live TrainState
    resumed.load_state_dict(saved, resumed_state)
    for check in range(2):
        v0, g0 = _value_and_grad(term, model, seed=check)
        v1, g1 = _value_and_grad(resumed, resumed_model, seed=check)
        assert v0.item() > 0 and torch.equal(v0, v1)
        assert all(torch.equal(a, b) for a, b in zip(g0, g1))
        if check == 0:  # then one more task end on both (the merged per-task sums must have been saved)
            state.task = resumed_state.task = stream.tasks[2]
            for s, tm in ((state, term), (resumed_state, resumed)):
                tm.begin_task(s)
                tm.end_task(s)
            _move(model, 30)
            _move(resumed_model, 30)


# -- plug-ins --------------------------------------------------------------------------------

def _agem_setup(seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(D, C)
    g = _gen(seed + 1)
    mx, my = torch.randn(4, D, generator=g), torch.tensor([0, 1, 2, 1])
    memory = ReservoirBuffer(4, np.random.default_rng(seed))
    memory.add(x=mx, y=my)  # exactly replay_batch_size examples: the sample is all of them
    state = TrainState(model, None, None, None, memory, 4)
    with torch.no_grad():
        delta = (_softmax_rows(model(mx)) - torch.eye(C)[my]) / len(my)  # d mean CE / d logits
    return model, state, list(_linear_grads(mx, delta)), g


@pytest.mark.parametrize("conflict", [True, False])
def test_agem_projects_onto_the_memory_gradient_plane(conflict):
    # catches: a projection that returns zero, projecting when gᵀg_ref ≥ 0, the wrong sign of the
    # correction, dividing by ‖g‖² instead of ‖g_ref‖², a reference gradient from other examples
    model, state, ref, g = _agem_setup()
    params = [model.weight, model.bias]
    noise = [torch.randn(r.shape, generator=g) * r.abs().max() for r in ref]
    grads = [(-r if conflict else r) + 0.5 * e for r, e in zip(ref, noise)]
    dot = sum((a * b).sum() for a, b in zip(grads, ref))
    assert (dot < 0) == conflict
    for p, gr in zip(params, grads):
        p.grad = gr.clone()
    plugin = AGEM()
    plugin.after_backward(state, None)
    after = [p.grad for p in params]
    if conflict:
        norm2 = sum((r * r).sum() for r in ref)
        want = [gr - (dot / norm2) * r for gr, r in zip(grads, ref)]
        _assert_close(after, want, rtol=1e-5, atol=1e-7)
        assert abs(sum((a * r).sum() for a, r in zip(after, ref))) < 1e-6 * float(norm2)
        assert sum((a * a).sum() for a in after) > 1e-3 * sum((gr * gr).sum() for gr in grads)
        assert plugin.projections == 1
    else:
        assert all(torch.equal(a, gr) for a, gr in zip(after, grads))
        assert plugin.projections == 0


class _FeatureModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Linear(D, 3)
        self.classifier = nn.Linear(3, 4)

    def forward(self, x):
        return self.classifier(self.features(x))


def _unit(v):
    return v / torch.sqrt((v * v).sum())


def test_nme_scores_are_minus_squared_distances_to_normalised_class_means():
    # catches: features not normalised before averaging, the mean not re-normalised, the distance
    # not squared or of the wrong sign, classes without exemplars not at −inf, class means taken
    # over the wrong rows
    torch.manual_seed(13)
    model = _FeatureModel()
    g = _gen(14)
    mx = torch.randn(7, D, generator=g) * torch.tensor([1.0, 3.0, 0.2, 2.0])  # features of unequal norms
    my = torch.tensor([0, 0, 1, 1, 1, 2, 2])  # class 3 has no exemplar
    memory = ReservoirBuffer(7, np.random.default_rng(0))
    memory.add(x=mx, y=my)
    state = TrainState(model, None, types.SimpleNamespace(num_classes=4), None, memory, 7)
    plugin = NearestMeanOfExemplars()
    plugin.end_task(state)
    with torch.no_grad():
        means = {}
        for c in (0, 1, 2):
            rows = [i for i in range(len(my)) if int(my[i]) == c]
            means[c] = _unit(sum(_unit(model.features(mx[i])) for i in rows) / len(rows))
        queries = torch.cat([torch.randn(6, D, generator=g) * 2.0, mx])
        scores = plugin.scores(model, queries)
        for q in range(len(queries)):
            f = _unit(model.features(queries[q]))
            hand = [-((f - means[c]) ** 2).sum() for c in (0, 1, 2)]
            assert torch.allclose(scores[q, :3], torch.stack(hand), atol=1e-5)
            assert scores[q, 3] == float("-inf")
            assert int(scores[q].argmax()) == int(torch.stack(hand).argmax())
    # the hand-computed means are not all alike: the test can tell classes apart
    assert len({int(scores[q].argmax()) for q in range(len(queries))}) >= 2
