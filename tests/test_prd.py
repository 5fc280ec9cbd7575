"""PRD (Asadi et al., ICML 2023; naderAsadi/Probing-Continual-Learning methods/repe.py,
losses/supcon_loss.py): SupCon, the prototype loss and the relation distillation by hand on tiny
tensors, each against its plausible wrong variants; the cosine-prototype prediction; the padded
augmentation and the step's two views; runs through the CLI (with refresh) and a resume."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lifelong.config import make_config
from lifelong.data.strong_augment import strong_augment
from lifelong.data.streams import class_incremental
from lifelong.data.transforms import random_crop_flip
from lifelong.errors import ConfigError
from lifelong.loop import check_task_free, train
from lifelong.methods import build_recipe
from lifelong.nets import CosineLinear, build_backbone, set_head, set_projection
from lifelong.objective import StepBatch
from lifelong.objective.prototype import RelationDistillation, prototype_loss, relation_distillation
from lifelong.objective.supcon import supcon_loss
from lifelong.optim import SGD
from lifelong.seeding import torch_generator
from tests.conftest import (crash_then_resume, make_source, run_cli, same_weights, tiny_run_flags)


def _unit(v):
    n = math.sqrt(sum(a * a for a in v))
    return [a / n for a in v]


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


# -- SupCon by hand -----------------------------------------------------------------------------

def _hand_supcon(z, labels, tau, base, *, no_tau=False, self_in=False, no_factor=False):
    """Khosla et al. Eq. 2 (L_out) with loops, times tau / base; the flags give wrong variants."""
    t = 1.0 if no_tau else tau
    total = 0.0
    for i, (zi, yi) in enumerate(zip(z, labels)):
        others = [j for j in range(len(z)) if self_in or j != i]
        log_z = math.log(sum(math.exp(_dot(zi, z[j]) / t) for j in others))
        pos = [j for j in others if labels[j] == yi]
        total += -sum(_dot(zi, z[p]) / t - log_z for p in pos) / len(pos)
    return total / len(z) * (1.0 if no_factor else tau / base)


# two views of three examples, view-major as the step lays them out: [v1 of 0, 1, 2; v2 of 0, 1, 2]
Z = [_unit(v) for v in ([1.0, 0.2], [0.3, 1.0], [0.9, -0.4], [0.8, 0.5], [-0.2, 1.0], [1.0, 0.0])]
Y = [0, 1, 0, 0, 1, 0]


def test_supcon_equals_the_hand_computation_and_not_its_wrong_variants():
    """Catches: no temperature in the logits, the anchor contrasted with itself (no self-mask),
    no factor tau / base_temperature (the reference's 0.1 / 0.07)."""
    tau, base = 0.5, 0.07
    got = supcon_loss(torch.tensor(Z), torch.tensor(Y), tau, base).item()
    right = _hand_supcon(Z, Y, tau, base)
    assert got == pytest.approx(right, rel=1e-5)
    for wrong in ({"no_tau": True}, {"self_in": True}, {"no_factor": True}):
        assert abs(_hand_supcon(Z, Y, tau, base, **wrong) - right) > 1e-2, wrong


def test_supcon_by_hand_on_two_orthogonal_pairs():
    """Two classes, two views each, same-class views equal, classes orthogonal: for each anchor
    the one positive scores 1/tau, the other two rows 0, so L = (tau/base) · (log(e^{1/tau} + 2) − 1/tau)."""
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    tau, base = 0.5, 0.07
    expected = tau / base * (math.log(math.exp(1 / tau) + 2) - 1 / tau)
    assert supcon_loss(z, torch.tensor([0, 1, 0, 1]), tau, base).item() == pytest.approx(expected, rel=1e-5)


def test_supcon_term_contrasts_the_projection_of_every_row():
    torch.manual_seed(0)
    model = set_projection(build_backbone("mlp", (1, 4, 4), 3), (8, 5))
    assert [type(m).__name__ for m in model.projection] == ["Linear", "ReLU", "Linear"]
    assert (model.projection[0].in_features, model.projection[-1].out_features) == (100, 5)
    x, y = torch.randn(3, 1, 4, 4), torch.tensor([0, 1, 0])
    batch = StepBatch(model, 0, x, y, views=torch.randn(3, 1, 4, 4), keep_features=True)
    batch.outputs = batch.forward()
    got = build_recipe("prd").objective.terms[0][1](batch)
    z = F.normalize(model.projection(batch.features), dim=1)
    assert got.item() == pytest.approx(supcon_loss(z, torch.cat([y, y]), 0.1, 0.07).item(), rel=1e-6)
    got.backward()
    assert model.projection[0].weight.grad.abs().sum() > 0


# -- the prototype loss -------------------------------------------------------------------------

F2 = [[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]]
P3 = [[2.0, 0.0], [1.0, 1.0], [0.0, -3.0]]
L2 = [1, 0, 2]


def test_prototype_loss_by_hand_and_only_the_prototypes_learn():
    """1 − cos(f, p_y) averaged: (1 − 7/(5√2)) + (1 − 1) + (1 + 1), over 3. The features are
    detached (the encoder gets no gradient: catches a missing ``detach``); only the rows of the
    labels' prototypes move."""
    f = torch.tensor(F2, requires_grad=True)
    p = torch.tensor(P3, requires_grad=True)
    loss = prototype_loss(f, p, torch.tensor(L2))
    assert loss.item() == pytest.approx(((1 - 7 / (5 * math.sqrt(2))) + 0.0 + 2.0) / 3, rel=1e-6)
    loss.backward()
    assert f.grad is None or torch.equal(f.grad, torch.zeros_like(f))
    assert p.grad[1].abs().sum() > 0 and p.grad[2].abs().max() < 1e-6  # p_2: cos = -1, a stationary point
    # a dot product instead of the cosine, or features not normalised, gives another value
    assert abs(sum(1 - _dot(F2[i], P3[c]) / math.sqrt(_dot(P3[c], P3[c])) for i, c in enumerate(L2)) / 3
               - loss.item()) > 1e-2


# -- the relation distillation ------------------------------------------------------------------

NEW_F = [[0.6, 0.3], [0.1, 0.9], [-0.3, 0.6]]  # small: flat new distributions
OLD_F = [[6.0, -1.0], [0.0, 7.0], [-6.0, 3.0]]  # large: peaked old ones, so the KL's direction shows
NEW_P = [[1.0, 0.0], [0.5, 0.5], [0.0, 2.0], [1.0, -1.0], [-1.0, 0.2]]
OLD_P = [[2.0, 0.0], [0.0, 1.0], [0.3, 1.0], [1.0, -0.5], [-0.5, 0.5]]
GROUPS = [[0, 1, 2], [3, 4]]  # two earlier tasks


def _softmax(v):
    m = max(v)
    e = [math.exp(a - m) for a in v]
    return [a / sum(e) for a in e]


def _hand_rd(new_f, new_p, old_f, old_p, groups, T, *, swapped=False, no_t=False, cosine=False, joint=False):
    """Σ_tasks KL(softmax(s_old/T) ‖ softmax(s_new/T)) / rows, with s = <f, p> / ‖p‖."""
    def score(f, p):
        s = _dot(f, p) / math.sqrt(_dot(p, p))
        return s / math.sqrt(_dot(f, f)) if cosine else s

    t = 1.0 if no_t else T
    groups = [[c for g in groups for c in g]] if joint else groups
    total = 0.0
    for g in groups:
        for fn, fo in zip(new_f, old_f):
            q = _softmax([score(fo, old_p[c]) / t for c in g])
            p = _softmax([score(fn, new_p[c]) / t for c in g])
            if swapped:
                q, p = p, q
            total += sum(a * math.log(a / b) for a, b in zip(q, p))
    return total / len(new_f)


def test_relation_distillation_equals_the_hand_computation_and_not_its_wrong_variants():
    """Catches: the KL's direction swapped (the current model as the target), no temperature,
    cosine scores (features normalised too), one softmax over all old classes instead of one
    per earlier task."""
    T = 2.0
    got = relation_distillation(torch.tensor(NEW_F), torch.tensor(NEW_P), torch.tensor(OLD_F), torch.tensor(OLD_P),
                                [torch.tensor(g) for g in GROUPS], T).item()
    right = _hand_rd(NEW_F, NEW_P, OLD_F, OLD_P, GROUPS, T)
    assert got == pytest.approx(right, rel=1e-5)
    for wrong in ({"swapped": True}, {"no_t": True}, {"cosine": True}, {"joint": True}):
        assert abs(_hand_rd(NEW_F, NEW_P, OLD_F, OLD_P, GROUPS, T, **wrong) - right) > 1e-3, wrong


def test_relation_distillation_moves_features_and_the_old_prototypes_not_the_teacher():
    """The reference detaches nothing on the new side: the encoder and the old classes'
    prototypes learn from it; the old features and prototypes are targets."""
    new_f, new_p = torch.tensor(NEW_F, requires_grad=True), torch.tensor(NEW_P, requires_grad=True)
    old_f, old_p = torch.tensor(OLD_F, requires_grad=True), torch.tensor(OLD_P, requires_grad=True)
    relation_distillation(new_f, new_p, old_f, old_p, [torch.tensor([0, 1, 2])], 1.0).backward()
    assert new_f.grad.abs().sum() > 0 and new_p.grad[:3].abs().sum() > 0
    assert new_p.grad[3:].abs().sum() == 0  # classes of no earlier task
    assert old_f.grad is None and old_p.grad is None


class _BNNet(nn.Module):
    """features: linear + batch norm; a cosine classifier of scale 1 (PRD's prototypes)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
        self.classifier = CosineLinear(2, 4, scale=1.0)

    def forward(self, x):
        return self.classifier(self.features(x))


class _State:
    def __init__(self, model, classes):
        self.model = model
        self.task = type("T", (), {"classes": classes})()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_relation_distillation_term_uses_the_snapshot_of_the_previous_task(mode):
    """Teacher: the model at the task's end (features and prototypes); groups: each earlier
    task's classes. ``teacher_mode: train`` uses the batch's statistics as the reference's
    ``prev_model`` (left in training mode); ``eval`` the running ones."""
    torch.manual_seed(0)
    model = _BNNet()
    term = RelationDistillation(temperature=2.0, teacher_mode=mode)
    x, y = torch.randn(4, 3), torch.tensor([2, 3, 2, 3])
    batch = StepBatch(model, 0, x, y, keep_features=True)
    batch.outputs = batch.forward()
    assert term(batch).item() == 0.0  # the first task: nothing to distil
    model.features(torch.randn(16, 3) * 3 + 1)  # running statistics far from the batch's
    term.end_task(_State(model, [0, 1]))
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3)
    batch = StepBatch(model, 1, x, y, keep_features=True)
    batch.outputs = batch.forward()
    old = _BNNet()
    old.load_state_dict(snapshot)
    old.train(mode == "train")
    with torch.no_grad():
        old_f = old.features(x)
    expected = relation_distillation(batch.features, model.classifier.weight, old_f, old.classifier.weight,
                                     [torch.tensor([0, 1])], 2.0)
    assert term(batch).item() == pytest.approx(expected.item(), rel=1e-6)
    old.train(mode != "train")  # the other mode's statistics give another value
    with torch.no_grad():
        other = relation_distillation(batch.features, model.classifier.weight, old.features(x),
                                      old.classifier.weight, [torch.tensor([0, 1])], 2.0)
    assert abs(other.item() - expected.item()) > 1e-4


def test_groups_are_the_earlier_tasks_and_a_shared_class_set_counts_once():
    torch.manual_seed(0)
    model, term = _BNNet(), RelationDistillation()
    for classes in ([0, 1], [2, 3]):
        term.end_task(_State(model, classes))
    assert term.groups == [[0, 1], [2, 3]] and term.teacher.old_classes == [0, 1, 2, 3]
    domain = RelationDistillation()
    for _ in range(3):  # domain-incremental: every task has every class
        domain.end_task(_State(model, [0, 1, 2, 3]))
    assert domain.groups == [[0, 1, 2, 3]]


def test_prd_needs_task_boundaries():
    with pytest.raises(ConfigError, match="its term 'relation-distill' needs task boundaries"):
        check_task_free(build_recipe("prd"), "task-free-mnist")


# -- prediction ---------------------------------------------------------------------------------

def test_prediction_is_the_cosine_with_each_prototype():
    """``RePE._classify_CI``: cos(f, p_c) over all prototypes. The long prototype 0 wins the dot
    product, the aligned prototype 1 the cosine."""
    recipe = build_recipe("prd")
    assert (recipe.head, recipe.head_scale) == ("cosine", 1.0)
    model = set_head(build_backbone("mlp", (1, 2, 2), 2), recipe.head, recipe.head_scale)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor([[0.0, 0.0] + [10.0] * 98, [1.0] * 100]))
    f = torch.tensor([[1.0, 1.0] + [0.05] * 98])
    logits = model.classifier(f)
    cos = F.cosine_similarity(f, model.classifier.weight, dim=1)
    assert torch.allclose(logits[0], cos, atol=1e-5)
    assert logits.argmax().item() == 1 and (f @ model.classifier.weight.t()).argmax().item() == 0


# -- augmentation and the step ------------------------------------------------------------------

def test_padded_crop_is_the_random_crop_flip_of_the_same_draws():
    """PRD's RandomCrop(padding=4, black) + flip, with jitter and grayscale off: the same
    images as :func:`random_crop_flip` from a generator in the same state."""
    x = torch.rand(6, 3, 8, 8)
    got = strong_augment(x, torch.Generator().manual_seed(3), padding=4, jitter_p=0.0, grayscale_p=0.0)
    assert torch.equal(got, random_crop_flip(x, 4, torch.Generator().manual_seed(3)))
    assert not torch.equal(got, x)


def test_zero_hue_strength_leaves_the_hue_alone():
    x = torch.rand(5, 3, 6, 6)
    a = strong_augment(x, torch.Generator().manual_seed(1), padding=0, jitter=(0.0, 0.0, 0.0, 0.0),
                       jitter_p=1.0, grayscale_p=0.0, flip_p=0.0)
    assert torch.equal(a, x)  # no brightness, contrast, saturation change; hue skipped (no HSV round trip)


def test_the_step_sees_two_augmented_views_and_no_plain_input():
    """repe.py: x1, x2 = train_tf(x), train_tf(x); features of cat[x1, x2] in one forward."""
    stream = class_incremental(make_source(num_classes=4, per_class_train=6, size=8), 2)
    recipe = build_recipe("prd")
    torch.manual_seed(0)
    model = set_projection(set_head(build_backbone("mlp", (1, 8, 8), 4), recipe.head, recipe.head_scale),
                           recipe.projection)
    sizes = []
    model.features.register_forward_hook(lambda m, args, out: sizes.append(len(args[0])) if m.training else None)

    class Spy:
        stateless = True
        seen = None

        def before_step(self, state, batch):
            if state.step == 0:
                Spy.seen = batch

    recipe.plugins.append(Spy())
    result = train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, batch_size=4, augment_padding=2)
    assert result.status == "complete" and sizes[0] == 8
    batch = Spy.seen
    g = torch_generator(0, "views")
    order = torch_generator(0, "batch-order")
    task = stream.tasks[0]
    idx = task.train_idx[torch.randperm(task.num_train, generator=order)][:4]
    raw = stream.inputs("train", idx, 0)
    first, second = strong_augment(raw, g, padding=4, jitter=(0.4, 0.4, 0.4, 0.0)), \
        strong_augment(raw, g, padding=4, jitter=(0.4, 0.4, 0.4, 0.0))
    assert torch.equal(batch.inputs, first) and torch.equal(batch.views, second)  # no benchmark augmentation
    assert not torch.equal(first, raw) and not torch.equal(first, second)


def test_the_python_loop_asks_for_the_projection():
    recipe = build_recipe("prd")
    model = set_head(build_backbone("mlp", (1, 8, 8), 4), recipe.head, recipe.head_scale)
    stream = class_incremental(make_source(num_classes=4, per_class_train=2, size=8), 2)
    with pytest.raises(ValueError, match=r"set_projection\(model, \[512, 512, 128\]\)"):
        train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, batch_size=4)


# -- runs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [[], ["--refresh", "code"]])
def test_cli_runs_finish(extra, fashion, tmp_path, capsys):
    code, out, err = run_cli(["run", "--method", "prd", *tiny_run_flags(fashion), "--out", str(tmp_path / "run"),
                              *extra], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert doc["complete"] and len(doc["class_il"]["accuracy_matrix"]) == doc["num_tasks"] >= 4
    weights = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert weights["projection.4.weight"].shape == (128, 512)


def test_resume_mid_task_equals_an_uninterrupted_run(fashion, tmp_path, monkeypatch):
    """A crash in the third task: the views' generator, the teacher and its groups come back."""
    def config(out):
        return make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(fashion), "out": str(out),
                                "method": "prd", "batch_size": 4, "checkpoint_every": 2, "threads": 1, "lr": 0.05})

    a, b = crash_then_resume(config, tmp_path, monkeypatch, 9)
    assert a["class_il"] == b["class_il"] and a["task_il"] == b["task_il"]
    assert same_weights(tmp_path / "whole", tmp_path / "cut")


def test_recipe_errors_are_one_line(capsys, fashion):
    code, _, err = run_cli(["run", "--method", "prd", "--param", "distill_temp=0", *tiny_run_flags(fashion),
                            "--dry-run"], capsys)
    assert code == 2 and "distill_temp" in err and "Traceback" not in err
    with pytest.raises(ConfigError, match="`two_views` needs augmented views"):
        build_recipe({"terms": [{"term": "supcon"}], "two_views": True})
    with pytest.raises(ConfigError, match="`projection` must be a list of layer widths"):
        build_recipe({"terms": [{"term": "supcon"}], "projection": [128, 0]})
    with pytest.raises(ConfigError, match="teacher_mode"):
        build_recipe({"terms": [{"term": "relation-distill", "teacher_mode": "frozen"}]})
