"""GeRe's threshold-margin term (Zhang et al., 2025; reference code Qznan/GeRe,
gere/gere_trainer.py): the TM loss on hand-made activations against a loop written out from the
reference and against its wrong variants (bands swapped, squared hinge, mean over every entry,
no σ), the thresholds from a recorded set against mean ± population std by hand, the layer's
activations through the forward hook, the dynamic weight, the first-task memory, one-line
errors, CLI runs and a bit-exact resume."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from lifelong.config import make_config, parse_yaml
from lifelong.data.streams import class_incremental
from lifelong.errors import ConfigError
from lifelong.loop import train
from lifelong.memory import MEMORIES
from lifelong.methods import build_recipe
from lifelong.nets import build_backbone
from lifelong.objective import Objective, StepBatch, ThresholdMargin
from lifelong.objective.threshold_margin import band_thresholds, threshold_margin_loss
from lifelong.optim import SGD
from tests.conftest import crash_then_resume, make_source, run_cli, same_weights, tiny_run_flags

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GERE = {"terms": [{"term": "ce", "on": "both"}, {"term": "threshold-margin", "weight": 100.0}],
        "memory": "first-task"}


# -- the loss --------------------------------------------------------------------------------------
def _reference_tm(h, h0, neg, pos, mask=None):
    """The reference's compute_gere_loss, entry by entry in plain Python."""
    total, nonzero = 0.0, 0
    rows, units = h.shape
    for r in range(rows):
        for j in range(units):
            a, a0, lo, hi = float(h[r, j]), float(h0[r, j]), float(neg[j]), float(pos[j])
            value = 0.0
            if a0 <= lo:
                value += max(a - lo, 0.0)
            if lo < a0 < hi:
                value += max(a - hi, 0.0) + max(lo - a, 0.0)
            if a0 >= hi:
                value += max(hi - a, 0.0)
            if mask is not None:
                value *= float(mask[r])
            total += value
            nonzero += value != 0
    return total / (nonzero + 1e-8)


def _case():
    neg = torch.tensor([-1.0, 0.0, 0.5])
    pos = torch.tensor([1.0, 2.0, 0.5])  # unit 2: sigma 0, neg == pos
    h0 = torch.tensor([[1.5, -0.5, 0.5],    # high, low, both (dead unit)
                       [0.0, 1.0, 0.5],     # neutral, neutral, both
                       [-2.0, 3.0, 0.5]])   # low, high, both
    h = torch.tensor([[0.25, 0.5, 0.75],    # 0.75 short of on; 0.5 above off; 0.25 off the dead value
                      [1.5, 2.5, 0.5],      # 0.5 over the top; 0.5 over the top; in place
                      [-1.5, 1.5, 0.0]])    # in band (below neg); 0.5 short of on; 0.5 below
    return h, h0, neg, pos


def test_tm_loss_is_the_references_hinge_over_violations():
    h, h0, neg, pos = _case()
    # by hand: violations 0.75, 0.5, 0.25, 0.5, 0.5, 0.5, 0.5 -> 3.5 over 7 entries
    assert threshold_margin_loss(h, h0, neg, pos).item() == pytest.approx(3.5 / 7, abs=1e-6)
    assert threshold_margin_loss(h, h0, neg, pos).item() == pytest.approx(_reference_tm(h, h0, neg, pos), abs=1e-6)


def test_tm_loss_is_zero_in_band_and_has_the_hinges_gradient():
    h, h0, neg, pos = _case()
    assert threshold_margin_loss(h0.clone(), h0, neg, pos).item() == 0.0  # the recorded values are in band
    h = h.clone().requires_grad_(True)
    threshold_margin_loss(h, h0, neg, pos).backward()
    # high entries pulled up, low and too-high neutral ones pushed down, the dead unit towards its value
    expected = torch.tensor([[-1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, -1.0, -1.0]]) / 7
    assert torch.allclose(h.grad, expected, atol=1e-6)


def test_tm_loss_leaves_masked_positions_out():
    h, h0, neg, pos = _case()
    mask = torch.tensor([1, 0, 1])
    value = threshold_margin_loss(h, h0, neg, pos, mask)
    assert value.item() == pytest.approx(_reference_tm(h, h0, neg, pos, mask), abs=1e-6)
    assert value.item() == pytest.approx((0.75 + 0.5 + 0.25 + 0.5 + 0.5) / 5, abs=1e-6)
    seq = torch.stack([h, h])  # rows x positions x units: the mask is per position
    mask2 = torch.tensor([[1, 1, 1], [0, 0, 0]])
    assert threshold_margin_loss(seq, torch.stack([h0, h0]), neg, pos, mask2).item() == pytest.approx(0.5, abs=1e-6)


# -- thresholds --------------------------------------------------------------------------------------
def test_thresholds_are_mean_plus_minus_population_std_per_last_axis():
    acts = torch.tensor([[[0.0, 1.0], [2.0, 5.0]],
                         [[4.0, 1.0], [6.0, 9.0]]])  # 2 rows x 2 positions x 2 units
    neg, pos = band_thresholds(acts)
    for j, values in enumerate(([0.0, 2.0, 4.0, 6.0], [1.0, 5.0, 1.0, 9.0])):
        mu, sd = statistics.fmean(values), statistics.pstdev(values)
        assert neg[j].item() == pytest.approx(mu - sd) and pos[j].item() == pytest.approx(mu + sd)
    neg2, pos2 = band_thresholds(acts, k=2.0)
    assert pos2[0].item() == pytest.approx(3.0 + 2 * statistics.pstdev([0.0, 2.0, 4.0, 6.0]))
    neg_m, pos_m = band_thresholds(acts, mask=torch.tensor([[1, 0], [1, 0]]))  # first positions only
    assert neg_m.tolist() == pytest.approx([0.0, 1.0]) and pos_m.tolist() == pytest.approx([4.0, 1.0])


def _tiny(seed=0):
    source = make_source(4, 12, 4)
    stream = class_incremental(source, 2)
    torch.manual_seed(seed)
    return stream, build_backbone("mlp", source.image_shape, source.num_classes)


class _Spy:
    """Checks, at the first task's end, the term's record against the model's own features."""
    name = "spy"
    stateless = True

    def __init__(self, term):
        self.term, self.checked, self.first_tm = term, False, None

    def end_task(self, state):
        if state.task.index == 0:
            x = state.memory.fields["x"][: len(state.memory)]
            with torch.no_grad():
                feats = state.model.features(x)
            assert torch.equal(self.term.recorded, feats)
            flat = feats.double()
            mu = flat.mean(0)
            sd = ((flat - mu) ** 2).mean(0).sqrt()
            assert torch.allclose(self.term.neg.double(), mu - sd, atol=1e-5)
            assert torch.allclose(self.term.pos.double(), mu + sd, atol=1e-5)
            self.checked = True

    def after_step(self, state, batch):
        if state.task.index == 1 and self.first_tm is None:
            self.first_tm = state.recipe.objective.values[1].item()


@pytest.mark.parametrize("forward", ["joint", "separate"])
def test_recorded_thresholds_and_a_zero_loss_at_the_first_replayed_step(forward):
    stream, model = _tiny()
    recipe = build_recipe({**GERE, "replay_forward": forward})
    term = recipe.objective.terms[1][1]
    spy = _Spy(term)
    recipe.plugins.append(spy)
    recipe.objective.observe = True
    result = train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, batch_size=4, buffer_size=8)
    assert result.status == "complete" and spy.checked
    assert len(term.recorded) == 8 and term.recorded.shape[1] == 100
    # the first replayed step: the model is the one that recorded, so every entry is in its band
    assert spy.first_tm == 0.0


def test_first_task_memory_is_a_fixed_sample_of_the_first_task():
    stream, model = _tiny()
    recipe = build_recipe(GERE)
    seen = []

    class Watch:
        name, stateless = "watch", True

        def end_task(self, state):
            seen.append(state.memory.fields["idx"][: len(state.memory)].clone())

    recipe.plugins.append(Watch())
    train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, batch_size=4, buffer_size=8)
    first = set(stream.tasks[0].train_idx.tolist())
    assert len(seen[0]) == 8 and set(seen[0].tolist()) <= first and len(set(seen[0].tolist())) == 8
    assert torch.equal(seen[0], seen[1])  # nothing added after the first task
    assert MEMORIES["first-task"].fixed


# -- the layer's activations -------------------------------------------------------------------------
def test_a_dotted_layer_is_kept_in_row_order_for_joint_and_separate_forwards():
    torch.manual_seed(0)
    model = build_backbone("mlp", (1, 4, 4), 3)
    x = torch.randn(3, 1, 4, 4)
    replay = {"x": torch.randn(2, 1, 4, 4), "y": torch.tensor([0, 1])}
    inputs = torch.cat([x, replay["x"]])
    expected = model.features[:3](inputs)  # features.2: the first ReLU
    for separate in (False, True):
        batch = StepBatch(model, 0, inputs, torch.tensor([0, 1, 2]), [replay], separate=separate,
                          taps=("features.2",))
        batch.outputs = batch.forward()
        assert torch.allclose(batch.activations["features.2"], expected, atol=1e-6)
        assert torch.allclose(batch.outputs, model(inputs), atol=1e-6)
    assert not model.features[2]._forward_hooks  # the hooks lived for the forward only


def test_dynamic_weight_is_the_rest_over_the_margin_value():
    a = torch.tensor(2.0, requires_grad=True)
    b = torch.tensor(0.5, requires_grad=True)

    class Value:
        uses_replay, draw, stores = False, 0, ()

        def __init__(self, t):
            self.t = t

        def __call__(self, batch):
            return self.t * 1.0

    class Margin(ThresholdMargin):
        def __call__(self, batch):
            return b * 1.0

    tm = Margin(weighting="dynamic")
    objective = Objective([(1.0, Value(a)), (1.0, tm)])
    objective.weighers = [tm.reweight]
    loss = objective(None)
    loss.backward()
    assert loss.item() == pytest.approx(2.0 + 2.0 / (0.5 + 1e-8) * 0.5)
    assert a.grad.item() == pytest.approx(1.0)  # the weight is a constant: no gradient through it
    assert b.grad.item() == pytest.approx(2.0 / (0.5 + 1e-8))
    assert not hasattr(ThresholdMargin(), "reweight") and hasattr(tm, "reweight")


# -- mistakes ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("entry, message", [
    ({"term": "threshold-margin", "k": 0}, "`k`"),
    ({"term": "threshold-margin", "k": -1.0}, "`k`"),
    ({"term": "threshold-margin", "layer": ""}, "`layer`"),
    ({"term": "threshold-margin", "weighting": "dy"}, "`weighting`"),
])
def test_bad_options_are_one_line(entry, message):
    with pytest.raises(ConfigError, match=message):
        build_recipe({"terms": [{"term": "ce"}, entry], "memory": "first-task"})


def test_a_memory_whose_slots_change_is_refused():
    with pytest.raises(ConfigError, match="memory whose slots never change: `memory:` first-task"):
        build_recipe({**GERE, "memory": "reservoir"})


def _write(tmp_path, spec):
    path = tmp_path / "gere.yaml"
    path.write_text(json.dumps({"method": spec}))
    return path


def test_cli_refuses_an_unknown_layer_listing_the_valid_ones(data_root, tmp_path, capsys):
    spec = {**GERE, "terms": [GERE["terms"][0], {"term": "threshold-margin", "layer": "features.9"}]}
    code, _, err = run_cli(["run", "--config", str(_write(tmp_path, spec)), *tiny_run_flags(data_root),
                            "--dry-run"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "layer 'features.9' is not a module of the MLP; its layers: features, features.0" in err
    assert "classifier" in err


@pytest.mark.parametrize("extra", [[], ["--refresh", "code"]])  # refresh's unlearning forward is tapped too
def test_cli_runs_the_example(extra, data_root, tmp_path, capsys):
    code, _, err = run_cli(["run", "--config", str(EXAMPLES / "gere.yaml"), *tiny_run_flags(data_root),
                            "--buffer-size", "8", "--num-tasks", "2", "--out", str(tmp_path / "run"), *extra], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert doc["complete"] and doc["num_tasks"] == 2
    assert parse_yaml((tmp_path / "run" / "config.yaml").read_text())["recipe"]["memory"] == "first-task"


def test_a_resumed_run_equals_an_uninterrupted_one(data_root, tmp_path, monkeypatch):
    """A crash in the second task, after the activations were recorded: they and the thresholds
    come back from the checkpoint (dynamic weight, a tapped hidden layer)."""
    spec = {**GERE, "terms": [GERE["terms"][0], {"term": "threshold-margin", "layer": "features.2",
                                                 "weighting": "dynamic"}]}

    def config(out):
        return make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(data_root), "out": str(out),
                                "method": spec, "batch_size": 4, "buffer_size": 6, "checkpoint_every": 2,
                                "threads": 1, "num_tasks": 2})

    # after the checkpoint at step 10 (8 steps a task)
    a, b = crash_then_resume(config, tmp_path, monkeypatch, 12, task=1)
    assert a["complete"] and b["complete"]
    assert a["class_il"] == b["class_il"] and a["steps"] == b["steps"]
    assert same_weights(tmp_path / "whole", tmp_path / "cut")
