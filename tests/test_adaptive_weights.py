"""RECAP's adaptive term weights (Phan et al., 2025, Eq. 1, Algorithms 1 and 2): the weights of a
hand-made loss history against the formulas worked out by hand (a flat term loses weight, a
falling or volatile one gains it), the pseudocode's spread, terms without a value, the floor, the
warm-up and the current step's place in the window, the objective's multipliers, the plug-in's
absence (and its warm-up) leaving a run bit for bit as it was, CLI runs and a bit-exact resume."""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lifelong.config import make_config
from lifelong.data.streams import class_incremental
from lifelong.errors import ConfigError
from lifelong.loop import train
from lifelong.methods import build_recipe
from lifelong.nets import build_backbone
from lifelong.objective import Objective
from lifelong.optim import SGD
from lifelong.plugins.adaptive_weights import AdaptiveWeights, recap_weights
from tests.conftest import crash_then_resume, make_source, run_cli, same_weights, tiny_run_flags

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FLAT, FALLING, VOLATILE = [1.0, 1.0, 1.0, 1.0], [4.0, 3.0, 2.0, 1.0], [1.0, 3.0, 1.0, 3.0]  # oldest first, W = 2


def _softmax_times_k(scores, t):
    e = [math.exp(s / t) for s in scores]
    return [len(scores) * x / sum(e) for x in e]


# by hand, W = 2: flat c = 1, i = 0; falling c = 3.5/1.5, σ = sqrt(9/3) about μ = 1.5, i = σ/5;
# volatile c = 1, σ = sqrt(4/3) about μ = 2, i = σ/4
S_FLAT, S_FALLING, S_VOLATILE = 1.0, 3.5 / 1.5 + math.sqrt(3) / 5, 1.0 + math.sqrt(4 / 3) / 4


@pytest.mark.parametrize("t", [1.0, 5.0])
def test_weights_of_a_hand_made_history(t):
    lam = recap_weights(torch.tensor([FLAT, FALLING, VOLATILE]), 2, t)
    assert lam.tolist() == pytest.approx(_softmax_times_k([S_FLAT, S_FALLING, S_VOLATILE], t), rel=1e-6)
    assert lam[1] > lam[2] > lam[0]  # the still-falling loss gains most, the flat steady one least
    assert lam.sum().item() == pytest.approx(3.0)


def test_the_pseudocodes_spread_is_about_the_whole_window():
    lam = recap_weights(torch.tensor([FLAT, FALLING]), 2, 1.0, spread="window")
    s_falling = 3.5 / 1.5 + math.sqrt(5 / 3) / 5  # hist.std(unbiased=True) of 4, 3, 2, 1
    assert lam.tolist() == pytest.approx(_softmax_times_k([S_FLAT, s_falling], 1.0), rel=1e-6)


def test_a_term_without_a_value_keeps_weight_one_and_the_others_share_the_rest():
    lam = recap_weights(torch.tensor([FLAT, [0.0] * 4, FALLING]), 2, 1.0)
    shared = _softmax_times_k([S_FLAT, S_FALLING], 1.0)
    assert lam.tolist() == pytest.approx([shared[0], 1.0, shared[1]], rel=1e-6)
    assert recap_weights(torch.zeros(2, 4), 2, 1.0).tolist() == [1.0, 1.0]


def test_floor_raises_the_smallest_weight():
    history = torch.tensor([FLAT, FALLING])
    low = recap_weights(history, 2, 0.2)[0].item()
    assert low < 0.01
    assert recap_weights(history, 2, 0.2, floor=0.25)[0].item() == pytest.approx(0.25)


class _Value:
    uses_replay, draw, stores = False, 0, ()

    def __init__(self, values):
        self.values, self.t = values, 0

    def __call__(self, batch):
        v = torch.tensor(self.values[self.t], requires_grad=True)
        self.t += 1
        return v


def test_the_plugin_weighs_each_call_with_the_history_and_this_steps_value():
    """Four steps of two terms with W = 2: 1/K for the first three, then Eq. 1 on all four values
    (this step's included), divided by K (``scale: mean``); the loss is Σ m_k w_k L_k."""
    plugin = AdaptiveWeights(window=2, temperature=1.0)
    objective = Objective([(1.0, _Value(FLAT)), (3.0, _Value(FALLING))])
    objective.weighers = [plugin.reweight]
    state = SimpleNamespace(recipe=SimpleNamespace(objective=objective))
    for step in range(4):
        loss = objective(None)
        if step < 3:
            assert loss.item() == pytest.approx((FLAT[step] + 3.0 * FALLING[step]) / 2)
        plugin.after_step(state, None)
    lam = _softmax_times_k([S_FLAT, S_FALLING], 1.0)
    assert plugin.last.tolist() == pytest.approx([lam[0] / 2, lam[1] / 2], rel=1e-6)
    assert loss.item() == pytest.approx((lam[0] * 1.0 + lam[1] * 3.0 * 1.0) / 2, rel=1e-6)
    assert plugin.seen == 4 and plugin.history.tolist() == [FLAT, FALLING]
    sum_plugin = AdaptiveWeights(window=2, scale="sum")
    assert sum_plugin.reweight([], [torch.tensor(1.0)] * 3) == [1.0, 1.0, 1.0]


def test_observing_the_values_leaves_the_loss_and_its_gradient_bit_for_bit():
    w = torch.linspace(-1, 1, 5, requires_grad=True)

    class Square:
        uses_replay, draw, stores = False, 0, ()

        def __init__(self, p):
            self.p = p

        def __call__(self, batch):
            return (w * self.p).square().sum() / 3

    def loss_and_grad(observe):
        w.grad = None
        objective = Objective([(1.0, Square(0.7)), (0.3, Square(1.9)), (2.5, Square(-0.4))])
        objective.observe = observe
        loss = objective(None)
        loss.backward()
        return loss.detach(), w.grad.clone(), objective.values

    plain, observed = loss_and_grad(False), loss_and_grad(True)
    assert torch.equal(plain[0], observed[0]) and torch.equal(plain[1], observed[1])
    assert plain[2] is None and len(observed[2]) == 3


def _run(plugins, seed=0):
    source = make_source(4, 12, 4)
    stream = class_incremental(source, 2)
    torch.manual_seed(seed)
    model = build_backbone("mlp", source.image_shape, source.num_classes)
    recipe = build_recipe({"terms": [{"term": "ce"}, {"term": "ce", "on": "replay"}], "memory": "reservoir",
                           "plugins": plugins})
    result = train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=seed, batch_size=4, buffer_size=8)
    return result, model, recipe


def test_without_the_plugin_and_in_its_warm_up_a_run_is_bit_for_bit_the_same():
    a, model_a, recipe_a = _run([])
    b, model_b, recipe_b = _run([{"plugin": "adaptive-weights", "window": 1000, "scale": "sum"}])
    assert a.class_il == b.class_il and a.steps == b.steps
    assert all(torch.equal(p, q) for p, q in zip(model_a.state_dict().values(), model_b.state_dict().values()))
    assert recipe_a.objective.weighers == [] and recipe_a.objective.values is None
    c, model_c, recipe_c = _run([{"plugin": "adaptive-weights", "window": 2, "scale": "sum", "temperature": 0.5}])
    assert recipe_c.plugins[0].last is not None and recipe_c.plugins[0].seen == c.steps
    assert not all(torch.equal(p, q) for p, q in zip(model_a.state_dict().values(), model_c.state_dict().values()))


def test_with_gere_s_dynamic_weight_both_multipliers_apply():
    """Two weighers on one objective: the threshold-margin term's dynamic weight and RECAP's."""
    source = make_source(4, 12, 4)
    stream = class_incremental(source, 2)
    torch.manual_seed(0)
    model = build_backbone("mlp", source.image_shape, source.num_classes)
    recipe = build_recipe({"terms": [{"term": "ce", "on": "both"}, {"term": "threshold-margin", "weighting": "dynamic"}],
                           "memory": "first-task", "plugins": [{"plugin": "adaptive-weights", "window": 2}]})
    result = train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, batch_size=4, buffer_size=8)
    assert result.status == "complete" and len(recipe.objective.weighers) == 2
    plugin = recipe.plugins[0]
    assert plugin.seen == result.steps and torch.isfinite(plugin.last).all()
    assert plugin.history[1, -1] > 0  # the margin term's own (unweighted) value in the second task


@pytest.mark.parametrize("options, message", [
    ({"window": 0}, "`window`"), ({"temperature": 0}, "`temperature`"), ({"temperature": -1.0}, "`temperature`"),
    ({"floor": 1.5}, "`floor`"), ({"spread": "all"}, "`spread`"), ({"scale": "max"}, "`scale`"),
    ({"eps": 0}, "`eps`"), ({"windows": 3}, "no option `windows`"),
])
def test_bad_settings_are_one_line(options, message):
    with pytest.raises(ConfigError, match=message):
        build_recipe({"terms": [{"term": "ce"}], "plugins": [{"plugin": "adaptive-weights", **options}]})


def test_cli_runs_the_example_and_refuses_a_bad_temperature(data_root, tmp_path, capsys):
    code, _, err = run_cli(["run", "--config", str(EXAMPLES / "recap_er.yaml"), *tiny_run_flags(data_root),
                            "--buffer-size", "8", "--num-tasks", "2", "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["complete"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({"method": {"terms": [{"term": "ce"}],
                                          "plugins": [{"plugin": "adaptive-weights", "temperature": 0}]}}))
    code, _, err = run_cli(["run", "--config", str(bad), *tiny_run_flags(data_root), "--dry-run"], capsys)
    assert code == 2 and "`temperature` must be a number > 0" in err and len(err.strip().splitlines()) == 1


def test_a_resumed_run_equals_an_uninterrupted_one(data_root, tmp_path, monkeypatch):
    """A crash in the second task with the weights moving (W = 2): the history and the step count
    come back from the checkpoint."""
    spec = {"terms": [{"term": "ce"}, {"term": "ce", "on": "replay"}], "memory": "reservoir",
            "plugins": [{"plugin": "adaptive-weights", "window": 2, "temperature": 0.5}]}

    def config(out):
        return make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(data_root), "out": str(out),
                                "method": spec, "batch_size": 4, "buffer_size": 6, "checkpoint_every": 3,
                                "threads": 1, "num_tasks": 2})

    a, b = crash_then_resume(config, tmp_path, monkeypatch, 11)  # after the checkpoint at step 9
    assert a["complete"] and b["complete"]
    assert a["class_il"] == b["class_il"] and a["steps"] == b["steps"]
    assert same_weights(tmp_path / "whole", tmp_path / "cut")
