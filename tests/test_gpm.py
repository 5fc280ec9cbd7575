"""GPM and CUBER (lifelong.plugins.gpm): the projection, the energy criterion on hand-made
matrices, CUBER's two tests, a run's gradients against its bases, resume, the CLI, bad inputs."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lifelong.config import make_config
from lifelong.data.streams import class_incremental
from lifelong.errors import ConfigError
from lifelong.loop import check_task_free, train
from lifelong.methods import build_recipe
from lifelong.optim import SGD
from lifelong.plugins.gpm import CUBER, GPM, _Layer, project_out, update_basis
from tests.conftest import (crash_then_resume, make_source, run_cli, same_weights, tiny_run_flags)


class _State:
    def __init__(self, model):
        self.model = model


def _basis(*columns: list[float]) -> torch.Tensor:
    return torch.tensor(columns, dtype=torch.float64).T


# -- the projection -----------------------------------------------------------------------------

def test_projection_removes_exactly_the_component_in_the_basis():
    """``G − G U Uᵀ`` on the input side: with U = [e1, (e2 + e3)/√2] the first column goes and
    columns 2 and 3 are replaced by their difference's halves."""
    s = 1 / math.sqrt(2)
    u = _basis([1, 0, 0, 0], [0, s, s, 0])
    g = torch.tensor([[1.0, 2.0, 4.0, 5.0], [3.0, -1.0, 1.0, 7.0]], dtype=torch.float64)
    expected = torch.tensor([[0.0, -1.0, 1.0, 5.0], [0.0, -1.0, 1.0, 7.0]], dtype=torch.float64)
    assert torch.allclose(project_out(g, u), expected)
    assert torch.allclose(project_out(g, u) @ u, torch.zeros(2, 2, dtype=torch.float64))


def test_the_plugin_projects_weight_and_bias_as_one_matrix():
    """A linear layer's ``[W | b]`` (the bias: the weight of a constant input 1) loses its
    component in the stored basis; the rest of the gradient is untouched."""
    layer = nn.Linear(3, 2)
    plugin = GPM()
    plugin._bind(layer)
    s = 1 / math.sqrt(2)
    plugin.blocks = [[_basis([0, 0, s, s])]]  # the third input and the constant 1 together
    plugin.tasks_done = 1
    layer.weight.grad = torch.tensor([[1.0, 2.0, 3.0], [0.0, 1.0, -1.0]])
    layer.bias.grad = torch.tensor([5.0, 1.0])
    plugin.after_backward(_State(layer), None)
    assert torch.allclose(layer.weight.grad, torch.tensor([[1.0, 2.0, -1.0], [0.0, 1.0, -1.0]]))
    assert torch.allclose(layer.bias.grad, torch.tensor([1.0, 1.0]))


# -- the energy criterion -----------------------------------------------------------------------

def _matrix(singular: list[float], d: int = 4) -> torch.Tensor:
    """``R = Q diag(σ) Vᵀ`` with a fixed rotation Q: d rows, len(σ) columns."""
    q, _ = torch.linalg.qr(torch.tensor([[2.0, 1, 0, 1], [1, 3, 1, 0], [0, 1, 4, 1], [1, 0, 1, 5]],
                                        dtype=torch.float64)[:d, :d])
    v, _ = torch.linalg.qr(torch.tensor([[1.0, 2, 0], [0, 1, 3], [1, 0, 1]], dtype=torch.float64))
    return q[:, : len(singular)] @ torch.diag(torch.tensor(singular, dtype=torch.float64)) @ v.T, q


@pytest.mark.parametrize("threshold, rank", [(0.6, 0), (0.9, 1), (0.95, 2), (1.0, 2)])
def test_first_task_keeps_the_vectors_whose_share_of_squared_singular_values_stays_below(threshold, rank):
    """σ = 3, 2, 1: energy shares 9/14, 4/14, 1/14, cumulated 0.643, 0.929, 1. The reference
    keeps the vectors whose cumulated share is below the threshold (0.9 -> 1; on the singular
    values themselves, cumulated 0.5, 0.833, 1, it would be 2)."""
    r, q = _matrix([3.0, 2.0, 1.0])
    block = update_basis(r @ r.T, 3, None, threshold)
    assert block.shape == (4, rank)
    for k in range(rank):  # the leading left singular vectors, up to sign
        assert abs(float(block[:, k] @ q[:, k])) == pytest.approx(1.0)


def test_later_tasks_start_from_the_share_the_basis_already_captures():
    """Basis e1; the new task's matrix has energies 9 (along e1), 4 (e2), 1 (e3): the basis holds
    9/14 already, the residual's first vector brings it to 13/14 >= 0.9, so one vector, e2. A
    criterion that ignores the captured share would add every residual vector."""
    old = _basis([1, 0, 0, 0])
    r = torch.tensor([[3.0, 0, 0], [0, 2, 0], [0, 0, 1], [0, 0, 0]], dtype=torch.float64)
    block = update_basis(r @ r.T, 3, old, 0.9)
    assert block.shape == (4, 1)
    assert abs(float(block[1, 0])) == pytest.approx(1.0)
    assert update_basis(r @ r.T, 3, old, 0.95).shape == (4, 2)  # 13/14 < 0.95: e3 too
    assert update_basis(r @ r.T, 3, old, 0.6).shape == (4, 0)  # 9/14 >= 0.6 already: nothing new


def test_convolution_patches_match_the_weight_layout():
    """A convolution's basis spans its im2col patches (stride 2, padding 1, with the bias's
    constant 1): a weight change projected off it leaves the layer's output on those inputs at
    zero, though the change itself is not zero (4 patches span 4 of 19 dimensions)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    layer = _Layer("conv", conv)
    x = torch.randn(1, 2, 3, 3)
    layer.record(x)
    assert layer.columns == 4
    block = update_basis(layer.gram, layer.columns, torch.zeros(19, 0, dtype=torch.float64), 1.0)
    assert block.shape == (19, 4)
    change = project_out(torch.randn(3, 19, dtype=torch.float64), block).float()
    weight, bias = change[:, :18].reshape(conv.weight.shape), change[:, 18]
    assert change.abs().max() > 0.1
    assert F.conv2d(x, weight, bias, stride=2, padding=1).abs().max() < 1e-5


# -- CUBER's tests --------------------------------------------------------------------------------

def _cuber(blocks, old_grads, **options) -> CUBER:
    plugin = CUBER(**options)
    plugin.blocks, plugin.old_grads = [list(blocks)], [list(old_grads)]
    return plugin


@pytest.mark.parametrize("g, old, kept", [
    ([[1.0, 0.1, 0, 0]], [[0.5, 9.0, 0, 0]], True),    # sufficient (1 > 0.2·1.005) and positive
    ([[1.0, 0.1, 0, 0]], [[-0.5, 9.0, 0, 0]], False),  # sufficient, negatively correlated in S_1
    ([[1.0, 10.0, 0, 0]], [[0.5, 0.0, 0, 0]], False),  # positive, but 1 < 0.2·‖g‖ = 2.01
    ([[0.1, -3.0, 0, 0]], [[0.5, -3.0, 0, 0]], False),  # correlated only outside S_1: not sufficient
])
def test_cuber_keeps_a_block_only_when_both_tests_hold(g, old, kept):
    plugin = _cuber([_basis([1, 0, 0, 0])], [torch.tensor(old)], epsilon=0.2)
    assert plugin.decide([torch.tensor(g)]) == [[kept]]


def test_cuber_removes_the_blocks_it_does_not_keep_and_adds_the_linearised_old_loss():
    """Blocks e1 (kept) and e2 (removed): the gradient keeps its e1 entry and loses its e2 one;
    with beta, the kept block also gets beta · g_1 projected on e1."""
    layer = nn.Linear(4, 1, bias=False)
    plugin = _cuber([_basis([1, 0, 0, 0]), _basis([0, 1, 0, 0])],
                    [torch.tensor([[2.0, 5.0, 0, 0]]), torch.tensor([[1.0, 1.0, 1.0, 1.0]])], beta=0.5)
    plugin._bind(layer)
    plugin.tasks_done, plugin.keep = 2, [[True, False]]
    layer.weight.grad = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    plugin.after_backward(_State(layer), None)
    assert torch.allclose(layer.weight.grad, torch.tensor([[1.0 + 0.5 * 2.0, 0.0, 3.0, 4.0]]))
    plugin.keep, plugin._projectors, plugin._additions = [[False, False]], None, None
    layer.weight.grad = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    plugin.after_backward(_State(layer), None)  # nothing kept: GPM's projection
    assert torch.allclose(layer.weight.grad, torch.tensor([[0.0, 0.0, 3.0, 4.0]]))


# -- in a run -------------------------------------------------------------------------------------

class _Spy:
    """After the GPM plug-in: the projected gradients of every step against the bases, and the
    weights at each task's end."""

    name = "spy"
    stateless = True

    def __init__(self, gpm):
        self.gpm, self.worst, self.steps, self.ends = gpm, 0.0, 0, []

    def after_backward(self, state, batch):
        if self.gpm.tasks_done:
            for layer, basis in zip(self.gpm._layers, self.gpm.projectors()):
                if basis is not None:
                    g = layer.grad()
                    self.worst = max(self.worst, float((g @ basis).abs().max() / g.abs().max().clamp_min(1e-12)))
            self.steps += 1

    def end_task(self, state):
        self.ends.append([layer.matrix([p.detach().clone() for p in layer.params()]) for layer in self.gpm._layers])


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 6))


def test_a_gpm_run_moves_each_layer_only_off_its_bases():
    """Three tasks: every projected gradient of tasks 2-3 is orthogonal to the bases, so (plain
    SGD) each layer's change over task 2 is too; batch norm's scale and shift do not move after
    task 1."""
    stream = class_incremental(make_source(num_classes=6, per_class_train=20), 3)
    recipe = build_recipe("gpm", {"examples": 30})
    gpm = recipe.plugins[0]
    spy = _Spy(gpm)
    recipe.plugins.append(spy)
    model = _model()
    bn = model[2]
    norms = {}

    class Watch:
        name, stateless = "watch", True

        def end_task(self, state):
            norms[state.task.index] = (bn.weight.detach().clone(), bn.bias.detach().clone())

    recipe.plugins.append(Watch())
    result = train(stream, model, recipe, SGD(model.parameters(), lr=0.1), seed=0, batch_size=8, epochs=2)
    assert result.status == "complete" and spy.steps == 2 * 2 * 5  # tasks 2-3, 2 epochs of 40 examples in batches of 8
    assert spy.worst < 1e-5
    blocks = [b[0] for b in gpm.blocks]  # the bases after task 1
    assert all(b.shape[1] > 0 for b in blocks)
    for before, after, basis in zip(spy.ends[0], spy.ends[1], blocks):
        change = (after - before).double()
        assert change.abs().max() > 1e-3  # the layer learnt task 2
        assert (change @ basis).abs().max() < 1e-5 * max(1.0, change.abs().max().item())
    for t in (1, 2):
        assert all(torch.equal(a, b) for a, b in zip(norms[0], norms[t]))


def test_gpm_keeps_the_first_task_better_than_finetuning():
    """Class-IL accuracy on the first task after the third (fine-tuning forgets it)."""
    stream = class_incremental(make_source(num_classes=6, per_class_train=20), 3)
    accs = {}
    for name in ("finetune", "gpm", "cuber"):
        model = _model()
        result = train(stream, model, build_recipe(name, {} if name == "finetune" else {"examples": 30}),
                       SGD(model.parameters(), lr=0.1), seed=0, batch_size=8, epochs=2)
        accs[name] = result.class_il[-1][0]
    assert accs["gpm"] > accs["finetune"] and accs["cuber"] > accs["finetune"]


# -- runs through the CLI, resume ---------------------------------------------------------------

@pytest.mark.parametrize("method", ["gpm", "cuber"])
def test_cli_runs_finish_and_report_backward_transfer(method, fashion, tmp_path, capsys):
    code, out, err = run_cli(["run", "--method", method, *tiny_run_flags(fashion), "--param", "examples=10",
                              "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert doc["complete"] and len(doc["class_il"]["accuracy_matrix"]) == doc["num_tasks"] == 5
    assert "backward_transfer" in doc["task_il"] and "backward_transfer" in doc["class_il"]


@pytest.mark.parametrize("method", ["gpm", "cuber"])
def test_resume_mid_task_equals_an_uninterrupted_run(method, fashion, tmp_path, monkeypatch):
    """A crash in the fourth task: the bases, the old tasks' gradients and CUBER's decisions for
    the task in progress come back from the checkpoint."""
    def config(out):
        return make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(fashion), "out": str(out),
                                "method": method, "batch_size": 4, "checkpoint_every": 2, "threads": 1,
                                "lr": 0.05, "params": params})

    # CUBER: epsilon 0 and beta 0.5, so that the fourth task keeps a block (measured) and adds its term
    params = {"examples": 10} if method == "gpm" else {"examples": 10, "epsilon": 0.0, "beta": 0.5}

    # the spy's first decisions are the uninterrupted run's (crash_then_resume undoes it before the resume)
    decisions, decide = [], CUBER.decide
    monkeypatch.setattr(CUBER, "decide", lambda self, grads: decisions.append(decide(self, grads)) or decisions[-1])
    # the checkpoint of step 14 is mid-task 4 (4 steps per task)
    a, b = crash_then_resume(config, tmp_path, monkeypatch, 15)
    if method == "cuber":  # the fourth task keeps a block: the decisions must come back from the checkpoint
        assert any(any(row) for row in decisions[2])
    assert a["class_il"] == b["class_il"] and a["task_il"] == b["task_il"]
    assert same_weights(tmp_path / "whole", tmp_path / "cut")


# -- bad inputs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("method, param, word", [
    ("gpm", "threshold=1.5", "threshold"), ("gpm", "threshold=0", "threshold"),
    ("gpm", "first_threshold=-0.1", "first_threshold"), ("gpm", "examples=0", "examples"),
    ("gpm", "threshold_step=-0.01", "threshold_step"), ("cuber", "epsilon=1", "epsilon"),
    ("cuber", "beta=-1", "beta"),
])
def test_bad_parameters_are_one_line_errors(method, param, word, fashion, capsys):
    code, _, err = run_cli(["run", "--method", method, "--param", param, *tiny_run_flags(fashion), "--dry-run"],
                           capsys)
    assert code == 2 and word in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_threshold_outside_the_unit_interval_says_so():
    with pytest.raises(ValueError, match=r"`threshold` must be an energy threshold in \(0, 1\], got 1.5"):
        GPM(threshold=1.5)


@pytest.mark.parametrize("method", ["gpm", "cuber"])
def test_task_free_streams_are_refused(method):
    with pytest.raises(ConfigError, match="task boundaries"):
        check_task_free(build_recipe(method), "task-free-mnist")


def test_unsupported_layers_are_refused_before_training():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ConfigError, match="groups"):
        GPM().begin_task(_State(model))
    with pytest.raises(ConfigError, match="no nn.Linear or nn.Conv2d"):
        GPM().begin_task(_State(nn.Sequential(nn.Flatten(), nn.BatchNorm1d(4))))
