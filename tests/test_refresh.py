import math

import pytest
import torch
import torch.nn.functional as F

from lifelong.runs.compare import parse_seeds, summarize, t95
from lifelong.config import make_config
from lifelong.data.streams import class_incremental
from lifelong.errors import ConfigError
from lifelong.methods import build_recipe
from lifelong.nets import build_backbone, set_head
from lifelong.objective import StepBatch
from lifelong.optim import SGD
from lifelong.plugins import Refresh
from lifelong.loop import TrainState, train
from tests.conftest import make_source


def _stream():
    return class_incremental(make_source(num_classes=6, per_class_train=20), 3)


def _run(method="er", refresh=None):
    stream = _stream()
    torch.manual_seed(0)
    recipe = build_recipe(method)
    model = set_head(build_backbone("mlp", (1, 8, 8), 6), recipe.head)
    if refresh is not None:
        recipe.plugins.append(refresh)
    result = train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, epochs=2, batch_size=8,
                   buffer_size=24)
    return result, model


@pytest.mark.parametrize("form", ["paper", "code"])
@pytest.mark.parametrize("method", ["er", "derpp", "ewc-online"])
def test_zero_step_and_no_noise_is_bit_identical_to_the_base_method(form, method):
    base, m0 = _run(method)
    with_refresh, m1 = _run(method, Refresh(form, gamma=0.0, noise=0.0, every=1))
    assert base.class_il == with_refresh.class_il
    for p, q in zip(m0.state_dict().values(), m1.state_dict().values()):
        assert torch.equal(p, q)


def test_refresh_changes_the_run_otherwise():
    base, m0 = _run("er")
    _, m1 = _run("er", Refresh("code", every=1))
    assert any(not torch.equal(p, q) for p, q in zip(m0.state_dict().values(), m1.state_dict().values()))


def _trained_state():
    stream = _stream()
    torch.manual_seed(0)
    model = build_backbone("mlp", (1, 8, 8), 6)
    recipe = build_recipe("er")
    train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, epochs=1, batch_size=8, buffer_size=24)
    task = stream.tasks[0]
    x = stream.inputs("train", task.train_idx[:8], 0)
    y = stream.labels("train", task.train_idx[:8])
    batch = StepBatch(model, 0, x, y, [])
    return TrainState(model, None, stream, recipe, None, 8, task=task), batch


@pytest.mark.parametrize("form, gamma", [("paper", 1e-2), ("code", 1e-2)])
def test_unlearning_raises_the_batch_loss(form, gamma):
    state, batch = _trained_state()
    model = state.model
    before = F.cross_entropy(model(batch.x), batch.y).item()
    plugin = Refresh(form, gamma=gamma, noise=0.0, loss="ce")
    plugin.unlearn(state, batch)
    after = F.cross_entropy(model(batch.x), batch.y).item()
    assert after > before


def test_relearning_lowers_it_again():
    state, batch = _trained_state()
    model = state.model
    Refresh("paper", gamma=1e-2, noise=0.0, loss="ce").unlearn(state, batch)
    raised = F.cross_entropy(model(batch.x), batch.y)
    opt = SGD(model.parameters(), lr=0.05)
    opt.zero_grad()
    raised.backward()
    opt.step()
    assert F.cross_entropy(model(batch.x), batch.y).item() < raised.item()


def test_the_preconditioner_shrinks_the_step_where_the_fisher_is_large():
    torch.manual_seed(3)
    model = torch.nn.Linear(3, 2)
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    plugin = Refresh("paper", gamma=0.1, noise=0.0, loss="ce", damping=1.0)
    fisher_w = torch.zeros(2, 3)
    fisher_w[0, 0] = 99.0  # one large entry: its step is 1 / (1 + 99) of the plain one
    plugin.fisher = [fisher_w, torch.zeros(2)]
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    before = model.weight.detach().clone()
    state = TrainState(model, None, None, None, None, 4)
    plugin.unlearn(state, StepBatch(model, 0, x, y, []))
    step = model.weight.detach() - before
    assert torch.allclose(step[0, 0], 0.1 * grads[0][0, 0] / 100.0, rtol=1e-3)
    assert torch.allclose(step[1], 0.1 * grads[0][1], rtol=1e-3)  # F = 0: the plain ascent step
    assert torch.all(step * grads[0] > 0)  # ascent


def test_fisher_matches_its_closed_form_and_is_replaced_at_each_task_end():
    stream = class_incremental(make_source(num_classes=4, per_class_train=5), 2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    plugin = Refresh("code")
    state = TrainState(model, None, stream, None, None, 4, task=stream.tasks[0])

    def closed_form(task):
        x = stream.inputs("train", task.train_idx, task.index).flatten(1)
        y = stream.labels("train", task.train_idx)
        p = F.softmax(model(x), 1).detach()
        e = p - F.one_hot(y, 4).float()
        w = p.gather(1, y[:, None]).squeeze(1)
        return (w[:, None, None] * e[:, :, None] ** 2 * x[:, None, :] ** 2).mean(0)

    plugin.end_task(state)
    first = closed_form(stream.tasks[0])
    assert torch.allclose(plugin.fisher[0], first, atol=1e-6)
    state.task = stream.tasks[1]
    plugin.end_task(state)
    assert torch.allclose(plugin.fisher[0], 1e-5 * first + closed_form(stream.tasks[1]), atol=1e-6)


def test_one_extra_forward_and_backward_on_the_current_batch_per_refresh():
    state, batch = _trained_state()
    seen = []
    handle = state.model.register_forward_hook(lambda m, args, out: seen.append(len(args[0])))
    plugin = Refresh("code", every=3)
    for _ in range(7):
        plugin.after_step(state, batch)  # the code form acts before the step, not after
        plugin.before_step(state, batch)
    handle.remove()
    assert plugin.refreshes == 3  # steps 1, 4 and 7 of 7
    assert seen == [len(batch.y)] * 3  # one forward of the current batch each


@pytest.mark.parametrize("form, every", [("code", 1), ("paper", 2)])
def test_each_form_unlearns_the_batch_it_then_relearns_before_the_step(form, every):
    """The released code calls unlearn() at the start of observe() on the batch that observe() then
    trains on, at every step; the paper refreshes every second step, also before the step."""
    stream = _stream()
    torch.manual_seed(0)
    model = build_backbone("mlp", (1, 8, 8), 6)
    recipe = build_recipe("er")
    plugin = Refresh(form)
    assert (plugin.when, plugin.every, plugin.loss) == ("before", every, "ce" if form == "code" else "objective")
    recipe.plugins.append(plugin)
    calls = []  # (inputs, classifier weights at that moment)
    handle = model.register_forward_hook(lambda m, args, out: calls.append((args[0].detach().clone(),
                                                                             m.classifier.weight.detach().clone())))
    train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, epochs=1, batch_size=8, buffer_size=24)
    handle.remove()
    steps = [c for c in calls if len(c[0]) >= 8]  # evaluation forwards use batches of up to 1000 test examples
    # with refresh at step k: [unlearning forward, main forward]; the unlearning forward sees the
    # step's batch (the current examples, and with loss=objective the replayed ones too), and the
    # main forward runs at the parameters the unlearning step moved
    i = refreshed = 0
    while i < len(steps) - 1:
        first, second = steps[i], steps[i + 1]
        if torch.equal(first[0], second[0]) or torch.equal(first[0], second[0][: len(first[0])]):
            assert not torch.equal(first[1], second[1])  # unlearning moved the weights before the step
            # code: the current batch's cross-entropy only; paper: the whole objective's inputs
            assert len(first[0]) == (8 if form == "code" else len(second[0]))
            refreshed += 1
            i += 2
        else:
            i += 1
    assert refreshed == plugin.refreshes > 0


def test_refresh_settings_in_the_config():
    c = make_config({}, {"refresh": {"form": "code", "every": 1}})
    assert c.refresh == {"form": "code", "every": 1}
    for bad, message in (({"form": "fast"}, "`form` must be 'paper' or 'code'"),
                         ({"gama": 1.0}, "its options: form, gamma"),
                         ({"every": 0}, "`every` and `steps` must be at least 1".replace("`every` and `steps`", "`steps` and `every`")),
                         ("sometimes", "`form` must be")):
        with pytest.raises(ConfigError) as info:
            make_config({}, {"refresh": bad})
        assert message in str(info.value)


def test_seeds_and_paired_summary():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4] and parse_seeds("0-1,7") == [0, 1, 7]
    for bad in ("4-0", "a", "1,1", "-3"):
        with pytest.raises(ConfigError):
            parse_seeds(bad)
    docs = {}
    for s, (b, r) in enumerate([(80.0, 81.0), (82.0, 82.5), (78.0, 80.0)]):
        docs[("base", s)] = {"complete": True, "class_il": {"average_accuracy": b}, "task_il": {"average_accuracy": 99.0}}
        docs[("refresh", s)] = {"complete": True, "class_il": {"average_accuracy": r}, "task_il": {"average_accuracy": 99.0}}
    out = summarize(docs, [0, 1, 2])["class_il"]
    assert out["base"]["mean"] == pytest.approx(80.0) and out["refresh"]["mean"] == pytest.approx(81.1666667)
    d = out["difference"]
    assert d["values"] == [1.0, 0.5, 2.0] and d["mean"] == pytest.approx(7 / 6) and d["refresh_better"] == 3
    assert d["ci95"] == pytest.approx(t95(3) * d["std"] / math.sqrt(3)) and t95(3) == 4.303


@pytest.mark.parametrize("name", ["finetune", "joint", "er-ace", "der", "lwf", "ewc", "si", "mas", "agem", "icarl"])
def test_refresh_works_with_every_preset(name):
    result, _ = _run(name, Refresh("paper", every=1))
    assert result.status == "complete" and all(math.isfinite(v) for row in result.class_il for v in row)
