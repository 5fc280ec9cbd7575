"""View-batch replay (Kang et al., CVPR 2025): the plug-in's order of the examples (the reference's
cycle-of-R sampler and the online form), the views in each step, the re-augmentation of the
2nd..R-th views, the view-kl self-distillation against hand computations and its wrong variants,
the plug-in's absence leaving a run as it was, CLI and YAML use, and a bit-exact resume."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from lifelong.config import make_config
from lifelong.data.auto_augment import policy_transform, strong_augment
from lifelong.data.streams import class_incremental
from lifelong.loop import train
from lifelong.methods import build_recipe
from lifelong.nets import build_backbone
from lifelong.objective import StepBatch, ViewKL
from lifelong.optim import SGD
from lifelong.plugins import PLUGINS, register_plugin
from lifelong.plugins.view_batch import ViewBatch
from tests.conftest import crash_then_resume, make_source, run_cli, same_weights, tiny_run_flags

R = 4


def _state(epochs=8, seed=0, task=0):
    return SimpleNamespace(epochs=epochs, seed=seed, task=SimpleNamespace(index=task), cache={})


def _orders(plugin, state, n, epochs):
    return [plugin.epoch_order(state, n, e, torch.Generator().manual_seed(1)) for e in range(epochs)]


# -- the order of the examples ---------------------------------------------------------------
def test_each_epoch_visits_n_over_r_examples_and_a_cycle_covers_them_all_once():
    plugin, n = ViewBatch(R, augment="none"), 43
    orders = _orders(plugin, _state(), n, 2 * R)
    assert all(len(o) == n // R == 10 for o in orders)
    cycle = torch.cat(orders[:R])
    assert len(cycle.unique()) == len(cycle) == R * (n // R)  # each example at most once per cycle
    assert set(cycle.tolist()) <= set(range(n))
    # the R slices are cut from one permutation: a new one only at the next cycle
    assert torch.cat(orders[R:]).tolist() != cycle.tolist()
    assert len(torch.cat(orders[R:]).unique()) == R * (n // R)


def test_the_order_follows_seed_task_and_cycle_only():
    n = 40
    a = _orders(ViewBatch(R), _state(seed=3), n, 2 * R)
    b = _orders(ViewBatch(R), _state(seed=3), n, 2 * R)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    other_seed = _orders(ViewBatch(R), _state(seed=4), n, R)
    other_task = _orders(ViewBatch(R), _state(seed=3, task=1), n, R)
    assert torch.cat(other_seed).tolist() != torch.cat(a[:R]).tolist()
    assert torch.cat(other_task).tolist() != torch.cat(a[:R]).tolist()


def test_the_online_form_keeps_the_loops_permutation():
    plugin, n = ViewBatch(R), 40
    state = _state(epochs=1)
    assert plugin.online(state) and plugin.plan(state, n, 10) == (n, 10)
    order = plugin.epoch_order(state, n, 0, torch.Generator().manual_seed(5))
    assert torch.equal(order, torch.randperm(n, generator=torch.Generator().manual_seed(5)))
    epochs = _state(epochs=R)
    assert not plugin.online(epochs) and plugin.plan(epochs, n, 8) == (n // R, 8 // R)
    with pytest.raises(ValueError, match="multiple of the 4 repeats"):
        plugin.plan(epochs, n, 10)
    assert ViewBatch(R, form="epochs").online(_state(epochs=1)) is False


class Recorder:
    """Records what every step trains on: the current views and their labels."""

    name = "recorder"
    stateless = True

    def __init__(self):
        self.steps = []

    def before_step(self, state, batch):
        self.steps.append((batch.x.detach().clone(), batch.y.clone(), batch.repeats))


def _train(plugins, epochs=1, batch_size=8, method="er", seed=0, terms=None, stream=None, recorder=None):
    stream = stream or class_incremental(make_source(num_classes=4, per_class_train=20), 2)
    recipe = build_recipe(method, plugins=plugins, terms=terms)
    recipe.plugins += [recorder] if recorder is not None else []
    torch.manual_seed(seed)
    model = build_backbone("mlp", (1, 8, 8), 4)
    result = train(stream, model, recipe, SGD(model.parameters(), lr=0.1), seed=seed, epochs=epochs,
                   batch_size=batch_size, buffer_size=30)
    return result, model, recipe, stream


def _ids(stream, x):
    """The source index of each (un-augmented) training input."""
    every = stream.inputs("train", torch.arange(len(stream.source.train_y)), 0).flatten(1)
    return [int(torch.nonzero((every == row).all(1))[0]) for row in x.flatten(1)]


def test_steps_hold_r_views_back_to_back_and_the_epochs_cycle_as_the_sampler():
    rec = Recorder()
    result, _, recipe, stream = _train([{"plugin": "view-batch", "repeats": R, "augment": "none"}], epochs=R,
                                       batch_size=8, recorder=rec)
    n = stream.tasks[0].num_train  # 40: 10 examples per epoch, 2 per step of 8 views
    per_epoch = math.ceil((n // R) / (8 // R))
    assert result.steps == 2 * R * per_epoch
    task0 = rec.steps[: R * per_epoch]
    seen = []
    for x, y, views in task0:
        assert views == R and len(x) <= 8 and len(x) % R == 0
        groups = x.unflatten(0, (-1, R))
        assert torch.equal(groups, groups[:, :1].expand_as(groups))  # R copies back to back
        assert torch.equal(y.view(-1, R), y.view(-1, R)[:, :1].expand(-1, R))
        seen += _ids(stream, groups[:, 0])
    assert len(seen) == len(set(seen)) == n  # the cycle of R epochs visits each example once
    assert set(seen) == set(stream.tasks[0].train_idx.tolist())


def test_the_online_form_trains_each_example_once_as_r_views_in_the_default_order():
    rec, plain = Recorder(), Recorder()
    _train([{"plugin": "view-batch", "repeats": R, "augment": "none"}], recorder=rec)
    _train([], recorder=plain)
    assert len(rec.steps) == len(plain.steps)  # as many steps: the batch counts examples here
    for (x, y, views), (x0, y0, _) in zip(rec.steps, plain.steps):
        assert views == R and len(x) == R * len(x0)
        assert torch.equal(x, x0.repeat_interleave(R, 0)) and torch.equal(y, y0.repeat_interleave(R))


def test_the_memory_is_offered_each_example_once():
    from lifelong import loop

    offered = []
    original = loop.MEMORIES["reservoir"].add

    def add(self, **batch):
        offered.append(batch)
        return original(self, **batch)

    loop.MEMORIES["reservoir"].add = add
    try:
        _train([{"plugin": "view-batch", "repeats": R, "augment": "none"}], method="der")
    finally:
        loop.MEMORIES["reservoir"].add = original
    assert sum(len(b["y"]) for b in offered) == 80  # the two tasks' 40 examples, not 4 x 80
    assert all(len(b["logits"]) == len(b["x"]) for b in offered)


# -- the re-augmentation of the 2nd..R-th views -------------------------------------------------
def _view_batch(x, y, views):
    return StepBatch(None, 0, x.repeat_interleave(views, 0), y.repeat_interleave(views), repeats=views)


def test_strong_augmentation_changes_the_copies_only_and_follows_the_seed():
    source = make_source(num_classes=4, per_class_train=5, channels=3, size=16)
    stream = class_incremental(source, 2)
    state = SimpleNamespace(epochs=1, seed=7, stream=stream, cache={})
    x = stream.inputs("train", torch.arange(6), 0)
    outs = []
    for _ in range(2):
        batch = _view_batch(x, torch.zeros(6, dtype=torch.long), R)
        plugin = ViewBatch(R, augment="autoaugment")
        global_state = torch.get_rng_state()
        plugin.before_step(state, batch)
        assert torch.equal(torch.get_rng_state(), global_state)  # torch's own generator is left alone
        outs.append(batch.inputs.unflatten(0, (-1, R)))
    first, copies = outs[0][:, 0], outs[0][:, 1:]
    assert torch.equal(first, x)  # the first view keeps the loop's augmentation only
    assert not torch.equal(copies, x.unsqueeze(1).expand_as(copies))
    assert torch.equal(outs[0], outs[1])  # same seed, same views
    assert not torch.equal(copies[:, 0], copies[:, 1])  # each copy draws its own policy


def test_strong_augment_round_trips_pixels_and_draws_per_image():
    x = torch.randint(0, 256, (8, 1, 6, 6), dtype=torch.uint8).float() / 255
    identity = strong_augment(x, lambda image: image, torch.Generator().manual_seed(0))
    assert torch.allclose(identity, x, atol=1e-6)
    a = strong_augment(x, policy_transform("randaugment"), torch.Generator().manual_seed(1))
    b = strong_augment(x, policy_transform("randaugment"), torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_progressive_noise_grows_with_the_view():
    x = torch.zeros(3, 1, 4, 4)
    batch = _view_batch(x, torch.zeros(3, dtype=torch.long), R)
    state = SimpleNamespace(epochs=1, seed=0, cache={}, stream=None)
    ViewBatch(R, augment="noise", noise=0.3).before_step(state, batch)
    views = batch.inputs.unflatten(0, (-1, R))
    assert torch.equal(views[:, 0], x)
    for k in range(1, R):
        top = 0.3 * k / (R - 1)
        assert 0 <= views[:, k].min() and views[:, k].max() < top and views[:, k].max() > 0.5 * top


# -- the view-kl term --------------------------------------------------------------------------
def _kl_by_hand(logits, views, divide_by_classes):
    total, count = 0.0, 0
    rows = logits.tolist()
    for g in range(0, len(rows), views):
        p0 = [math.exp(v) / sum(math.exp(u) for u in rows[g]) for v in rows[g]]
        for k in range(1, views):
            pk = [math.exp(v) / sum(math.exp(u) for u in rows[g + k]) for v in rows[g + k]]
            kl = sum(a * (math.log(a) - math.log(b)) for a, b in zip(p0, pk))
            total += kl / (len(p0) if divide_by_classes else 1)
            count += 1
    return total / count


LOGITS = torch.tensor([[2.0, 0.1, -1.0, 0.5], [0.3, 1.5, 0.0, -0.4], [-1.2, 0.8, 2.2, 0.1],
                       [1.0, 1.0, -2.0, 0.0], [0.0, -0.5, 0.4, 3.0], [2.5, -1.0, 0.2, 0.9]])


def _kl(logits, views=3, **options):
    term = ViewKL(classes="all", **options)
    batch = StepBatch(None, 0, logits, torch.zeros(len(logits), dtype=torch.long), outputs=logits, repeats=views)
    return term(batch)


def test_view_kl_equals_the_hand_computation_and_not_its_wrong_variants():
    value = float(_kl(LOGITS))
    assert value == pytest.approx(_kl_by_hand(LOGITS, 3, True), rel=1e-5)  # the reference's mean over classes
    batchmean = float(_kl(LOGITS, reduction="batchmean"))
    assert batchmean == pytest.approx(_kl_by_hand(LOGITS, 3, False), rel=1e-5)
    groups = LOGITS.view(2, 3, 4)
    swapped = torch.stack([F.kl_div(groups[g, 0].log_softmax(0), groups[g, k].log_softmax(0), log_target=True,
                                    reduction="sum") for g in range(2) for k in (1, 2)]).mean() / 4
    mean_teacher = groups.softmax(2).mean(1, keepdim=True)
    to_mean = (mean_teacher * (mean_teacher.log() - groups.log_softmax(2)[:, 1:])).sum(2).mean() / 4
    for wrong in (swapped, to_mean):
        assert abs(float(wrong) - value) > 0.02 * value


def test_view_kl_teacher_gets_no_gradient():
    logits = LOGITS.clone().requires_grad_(True)
    _kl(logits).backward()
    grad = logits.grad.view(2, 3, 4)
    assert torch.count_nonzero(grad[:, 0]) == 0  # the first view is detached
    assert torch.count_nonzero(grad[:, 1:]) == grad[:, 1:].numel()


def test_view_kl_over_seen_classes_and_its_warm_up():
    term = ViewKL()  # classes="seen", start_epoch=6
    state = SimpleNamespace(task=SimpleNamespace(classes=(0, 1)), model=torch.nn.Linear(1, 1),
                            cache={"view-batch": {"epoch": 5, "online": False}})
    term.begin_task(state)
    batch = StepBatch(None, 0, LOGITS, torch.zeros(6, dtype=torch.long), outputs=LOGITS, repeats=3)
    term.before_step(state, batch)
    assert float(term(batch)) == 0.0  # epoch index 5: still warming up (the reference's epoch > 5)
    state.cache["view-batch"]["epoch"] = 6
    term.before_step(state, batch)
    assert float(term(batch)) == pytest.approx(_kl_by_hand(LOGITS[:, :2], 3, True), rel=1e-5)
    state.cache["view-batch"] = {"epoch": 0, "online": True}
    term.before_step(state, batch)
    assert float(term(batch)) > 0  # the online form: from the first step
    assert float(term(StepBatch(None, 0, LOGITS, torch.zeros(6, dtype=torch.long), outputs=LOGITS))) == 0.0


# -- off: nothing changes ------------------------------------------------------------------------
@register_plugin
class _PlainOrder:
    """Orders the epochs exactly as the loop does: the hook itself must change nothing."""

    name = "test-plain-order"
    stateless = True
    views = 1

    def plan(self, state, n, batch_size):
        return n, batch_size

    def epoch_order(self, state, n, epoch, order):
        return torch.randperm(n, generator=order)


def test_the_order_hook_is_transparent_and_a_run_without_the_plug_in_is_unchanged():
    try:
        a, model_a, _, _ = _train([], epochs=2, method="derpp")
        b, model_b, _, _ = _train([{"plugin": "test-plain-order"}], epochs=2, method="derpp")
    finally:
        del PLUGINS["test-plain-order"]
    assert a.class_il == b.class_il and a.steps == b.steps
    for p, q in zip(model_a.state_dict().values(), model_b.state_dict().values()):
        assert torch.equal(p, q)
    config = make_config({}, {"method": "er"})
    assert "view_batch" not in config.to_dict()


# -- CLI and YAML --------------------------------------------------------------------------------
def test_cli_runs_er_and_derpp_with_view_batch(data_root, tmp_path, capsys):
    code, out, err = run_cli(["run", *tiny_run_flags(data_root), "--method", "er", "--view-batch", "4",
                              "--out", str(tmp_path / "er")], capsys)
    assert code == 0, err
    saved = json.loads((tmp_path / "er" / "metrics.json").read_text())
    assert saved["complete"] and saved["view_batch"]["repeats"] == 4 and saved["view_batch"]["form"] == "auto"
    config = tmp_path / "vb.yaml"
    config.write_text("method: derpp\nepochs: 2\n"
                      "view_batch: {repeats: 2, augment: noise, alpha: 0.5, start_epoch: 1}\n")
    code, out, err = run_cli(["run", "--config", str(config), *tiny_run_flags(data_root), "--num-tasks", "2",
                              "--out", str(tmp_path / "derpp")], capsys)
    assert code == 0, err
    text = (tmp_path / "derpp" / "config.yaml").read_text()
    assert "view_batch:" in text and "alpha: 0.5" in text and "augment: noise" in text
    assert "view-batch 2" in (tmp_path / "derpp" / "run.log").read_text()


@pytest.mark.parametrize("flags, message", [
    (["--view-batch", "4", "--epochs", "4", "--batch-size", "6"], "must be a multiple of the 4 repeats"),
    (["--view-batch", "1"], "`repeats` must be a whole number of views in 2..64"),
])
def test_cli_refuses_a_view_batch_mistake_in_one_line(data_root, capsys, flags, message):
    code, out, err = run_cli(["run", *tiny_run_flags(data_root), "--dry-run", *flags], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_yaml_refuses_unknown_view_batch_settings():
    from lifelong.errors import ConfigError

    with pytest.raises(ConfigError, match="`view_batch` has no setting `repeat`"):
        make_config({}, {"view_batch": {"repeat": 4}})
    with pytest.raises(ConfigError, match="`alpha`"):
        make_config({}, {"view_batch": {"alpha": -1}})


# -- resume ----------------------------------------------------------------------------------------
def test_a_resumed_view_batch_run_equals_an_uninterrupted_one(data_root, tmp_path, monkeypatch):
    """A crash mid-cycle (epoch 1 of a cycle of 2) of a run with re-augmented views; the resumed
    run's results and weights equal the uninterrupted run's byte for byte."""
    def config(out):
        return make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(data_root), "out": str(out),
                                "method": "derpp", "batch_size": 4, "buffer_size": 20, "checkpoint_every": 3,
                                "threads": 1, "epochs": 3, "num_tasks": 2,
                                "view_batch": {"repeats": 2, "augment": "autoaugment", "start_epoch": 1}})

    # epoch 1 (slice 1 of the first cycle), after the checkpoint at step 9
    ma, mb = crash_then_resume(config, tmp_path, monkeypatch, 11)
    assert ma["complete"] and mb["complete"]
    for key in ("class_il", "task_il", "steps"):
        assert ma[key] == mb[key], key
    assert same_weights(tmp_path / "whole", tmp_path / "cut")
