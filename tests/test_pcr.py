"""PCR and HPCR (Lin et al., CVPR 2023 / TNNLS 2025; FelixHuiweiLin/PCR agents/pcr.py,
agents/hpcr.py, utils/loss.py): the proxy loss, HPCR's periodic scale and distillations by hand
on tiny tensors, the strong augmentation against torchvision, the step's wiring (views, separate
forwards, stored features), and runs through the CLI with a resume."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn
import torchvision.transforms.functional as TF

from lifelong.config import make_config
from lifelong.data import strong_augment as sa
from lifelong.data.streams import class_incremental
from lifelong.loop import train
from lifelong.methods import PCR_HEAD_SCALE, build_recipe
from lifelong.nets import CosineLinear, build_backbone, set_head
from lifelong.objective import StepBatch
from lifelong.objective.proxy import (ProxyContrastive, ProxyLogitDistillation, SimilarityDistillation,
                                      periodic_scale, proxy_contrastive_loss)
from lifelong.optim import SGD
from tests.conftest import (crash_then_resume, make_source, run_cli, same_weights, tiny_run_flags)


# -- the proxy loss by hand ---------------------------------------------------------------------

def _unit(v):
    n = math.sqrt(sum(a * a for a in v))
    return [a / (n + 1e-6) for a in v]


def _hand_pcr(feats, proxies, labels, tau, *, all_classes=False, no_tau=False, self_masked=False,
              mean_all=False):
    """SupConLoss(contrast_mode='proxy') written out with loops; the flags give wrong variants."""
    contrast = [(_unit(proxies[c]), c) for c in (range(len(proxies)) if all_classes else labels)]
    t = 1.0 if no_tau else tau
    total = 0.0
    for i, (f, y) in enumerate(zip(feats, labels)):
        a = _unit(f)
        pairs = [(j, sum(x * z for x, z in zip(a, p)) / t, c) for j, (p, c) in enumerate(contrast)
                 if not (self_masked and j == i)]
        log_z = math.log(sum(math.exp(s) for _, s, _ in pairs))
        pos = [s - log_z for _, s, c in pairs if c == y]
        if pos:  # (with the self-contrast mask, a class's only example has no positive left)
            total += -sum(pos) / (len(labels) if mean_all else len(pos))
    return total / len(labels)


FEATS = [[1.0, 0.0], [0.6, 0.8], [0.0, 2.0]]
PROXIES = [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]  # class 2 is not in the batch
LABELS = [0, 0, 1]


def test_proxy_loss_equals_the_hand_computation_and_not_its_wrong_variants():
    """Catches: a softmax over every class's proxy (class 2 is absent, class 0 appears twice),
    no temperature, the self-contrast mask of SupCon's other modes, a mean over all rows
    instead of over the positives."""
    tau = 0.5
    got = proxy_contrastive_loss(torch.tensor(FEATS), torch.tensor(PROXIES), torch.tensor(LABELS), tau).item()
    right = _hand_pcr(FEATS, PROXIES, LABELS, tau)
    assert got == pytest.approx(right, abs=1e-6)
    # by hand: contrast set [p0, p0, p1]; anchor scores [2, 2, 0], [1.2, 1.2, 1.6], [0, 0, 2]
    by_hand = (math.log(2 * math.exp(2) + 1) - 2 + math.log(2 * math.exp(1.2) + math.exp(1.6)) - 1.2
               + math.log(2 + math.exp(2)) - 2) / 3
    assert got == pytest.approx(by_hand, abs=1e-5)
    for wrong in ({"all_classes": True}, {"no_tau": True}, {"self_masked": True}, {"mean_all": True}):
        assert abs(_hand_pcr(FEATS, PROXIES, LABELS, tau, **wrong) - right) > 1e-2, wrong


def test_proxy_loss_gradient_reaches_features_and_the_proxies_of_the_batch_only():
    feats = torch.tensor(FEATS, requires_grad=True)
    proxies = torch.tensor(PROXIES, requires_grad=True)
    proxy_contrastive_loss(feats, proxies, torch.tensor(LABELS), 0.09).backward()
    assert feats.grad.abs().sum() > 0 and proxies.grad[:2].abs().sum() > 0
    assert torch.equal(proxies.grad[2], torch.zeros(2))  # no proxy of an absent class moves


class _Tiny(nn.Module):
    """features: a linear map; classifier: PCR's proxy head."""

    def __init__(self, d_in=3, d=2, classes=3):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.features = nn.Linear(d_in, d)
        self.classifier = CosineLinear(d, classes, scale=PCR_HEAD_SCALE)
        with torch.no_grad():
            self.features.weight.copy_(torch.randn(d, d_in, generator=g))
            self.classifier.weight.copy_(torch.randn(classes, d, generator=g))

    def forward(self, x):
        return self.classifier(self.features(x))


def _batch(model, task=1, views=True, separate=True, stored=None):
    g = torch.Generator().manual_seed(5)
    x, xm = torch.randn(2, 3, generator=g), torch.randn(3, 3, generator=g)
    y, ym = torch.tensor([2, 2]), torch.tensor([0, 1, 0])
    replay = {"x": xm, "y": ym, **(stored or {})}
    inputs = torch.cat([x, xm])
    v = inputs + 0.5 * torch.randn(inputs.shape, generator=g) if views else None
    b = StepBatch(model, task, inputs, y, [replay], separate=separate, views=v, keep_features=True)
    b.outputs = b.forward()
    return b


def test_pcr_term_contrasts_every_row_and_view_with_the_proxies_of_all_rows():
    """The anchors are the features of [current, replayed, their views]; labels repeat."""
    model = _Tiny()
    b = _batch(model)
    rows = torch.cat([b.inputs, b.views])
    feats = model.features(rows).tolist()
    labels = [2, 2, 0, 1, 0] * 2
    right = _hand_pcr(feats, model.classifier.weight.tolist(), labels, 0.09)
    assert ProxyContrastive()(b).item() == pytest.approx(right, rel=1e-5)
    assert b.labels.tolist() == labels and b.outputs.shape == (10, 3)
    assert torch.allclose(b.outputs, model(rows), atol=1e-6)
    joint = _batch(model, separate=False)  # one forward over [inputs, views]: the same layout
    assert torch.allclose(joint.outputs, b.outputs, atol=1e-6) and torch.allclose(joint.features, b.features)
    assert torch.equal(b.replay_rows(0, b.outputs), b.outputs[[2, 3, 4, 7, 8, 9]])


def test_pcr_term_is_zero_without_replay_but_keeps_the_graph():
    """The reference computes the loss only `if mem_x.size(0) > 0` (0 * CE otherwise)."""
    model = _Tiny()
    b = StepBatch(model, 0, torch.randn(2, 3), torch.tensor([0, 1]), [], views=torch.randn(2, 3), keep_features=True)
    b.outputs = b.forward()
    loss = ProxyContrastive()(b)
    assert loss.item() == 0.0 and loss.requires_grad


# -- HPCR ---------------------------------------------------------------------------------------

def test_periodic_scale_by_hand():
    """τ_s(i) = (1.8 − 0.5625)/2 · (1 − cos(2πi/500)) + 0.5625 (agents/hpcr.py)."""
    assert periodic_scale(0, 1.8, 0.5625, 500) == pytest.approx(0.5625)
    assert periodic_scale(250, 1.8, 0.5625, 500) == pytest.approx(1.8)
    assert periodic_scale(125, 1.8, 0.5625, 500) == pytest.approx(0.61875 + 0.5625)
    assert periodic_scale(500, 1.8, 0.5625, 500) == pytest.approx(0.5625)


class _State:
    def __init__(self, step, num_train=100, batch_size=10):
        self.step, self.batch_size = step, batch_size
        self.task = type("T", (), {"num_train": num_train})()


def test_hpcr_scale_follows_the_step_within_the_epoch_of_the_task():
    term = ProxyContrastive(t_max=1.8, t_min=0.5625, period=20)
    term.begin_task(_State(step=40))
    b = _batch(_Tiny())
    plain = ProxyContrastive()(b).item()
    for step, i in ((40, 0), (45, 5), (49, 9), (50, 0), (53, 3)):  # 10 steps per epoch: i restarts at 50
        term.before_step(_State(step=step, num_train=95), b)
        assert term.i == i
        assert term(b).item() == pytest.approx(plain * periodic_scale(i, 1.8, 0.5625, 20), rel=1e-6)
    saved = term.state_dict()
    other = ProxyContrastive(t_max=1.8, t_min=0.5625, period=20)
    other.load_state_dict(saved)
    assert (other.i, other._task_start) == (3, 40)


def _stored(model, xm):
    with torch.no_grad():
        feats = model.features(xm) + 0.3
        return {"logits": model.classifier(feats) * 0.5 - 1.0, "features": feats}


def test_pcd_is_the_logit_mse_over_the_columns_of_the_step_labels():
    """mean over replayed rows (and views) and the columns of every row's label, duplicates
    kept. Catches: all columns; unique columns; the views' rows left out; the first task."""
    model = _Tiny()
    g = torch.Generator().manual_seed(5)
    _ = torch.randn(2, 3, generator=g)
    stored = _stored(model, torch.randn(3, 3, generator=g))
    b = _batch(model, stored=stored)
    now = b.outputs[[2, 3, 4, 7, 8, 9]].tolist()
    old = stored["logits"].tolist() * 2
    cols = [2, 2, 0, 1, 0] * 2
    right = sum((now[r][c] - old[r][c]) ** 2 for r in range(6) for c in cols) / (6 * len(cols))
    got = ProxyLogitDistillation()(b).item()
    assert got == pytest.approx(right, rel=1e-5)
    every = sum((now[r][c] - old[r][c]) ** 2 for r in range(6) for c in range(3)) / 18
    unique = sum((now[r][c] - old[r][c]) ** 2 for r in range(6) for c in (0, 1, 2)) / 18
    plain = sum((now[r][c] - old[r][c]) ** 2 for r in range(3) for c in cols) / (3 * len(cols))
    for wrong in (every, unique, plain):
        assert abs(wrong - right) > 1e-3 * right
    assert ProxyLogitDistillation()(_batch(model, task=0, stored=stored)).item() == 0.0


def test_scd_by_hand():
    """CE(softmax(old sims / τ) → softmax(new sims / τ)) over the other replayed rows (diagonal
    removed), mean over rows. Catches: the diagonal kept, the direction swapped, no temperature."""
    model = _Tiny()
    g = torch.Generator().manual_seed(5)
    _ = torch.randn(2, 3, generator=g)
    stored = _stored(model, torch.randn(3, 3, generator=g))
    b = _batch(model, stored=stored)
    new = [_unit(f) for f in b.features[[2, 3, 4, 7, 8, 9]].tolist()]
    old = [_unit(f) for f in stored["features"].tolist()] * 2

    def hand(tau=0.09, keep_diag=False, swap=False):
        total = 0.0
        for r in range(6):
            ks = [k for k in range(6) if keep_diag or k != r]
            sn = [sum(a * c for a, c in zip(new[r], new[k])) / tau for k in ks]
            so = [sum(a * c for a, c in zip(old[r], old[k])) / tau for k in ks]
            if swap:
                sn, so = so, sn
            zn, zo = math.log(sum(math.exp(s) for s in sn)), sum(math.exp(s) for s in so)
            total += -sum(math.exp(o) / zo * (n - zn) for o, n in zip(so, sn))
        return total / 6

    right = hand()
    assert SimilarityDistillation()(b).item() == pytest.approx(right, rel=1e-5)
    for wrong in (hand(keep_diag=True), hand(swap=True), hand(tau=1.0)):
        assert abs(wrong - right) > 1e-3 * abs(right)
    assert SimilarityDistillation()(_batch(model, task=0, stored=stored)).item() == 0.0


# -- the strong augmentation --------------------------------------------------------------------

def test_strong_augment_is_reproducible_changes_inputs_keeps_shape_and_range_and_differs_per_image():
    x = torch.rand(1, 3, 16, 16).repeat(6, 1, 1, 1)
    a = sa.strong_augment(x, torch.Generator().manual_seed(1))
    b = sa.strong_augment(x, torch.Generator().manual_seed(1))
    c = sa.strong_augment(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype and a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a, x, atol=1e-3)
    assert all(not torch.allclose(a[i], a[j], atol=1e-3) for i in range(6) for j in range(i))


def test_strong_augment_undoes_and_redoes_the_normalisation():
    """With every random part switched off the image comes back; a normalised batch likewise."""
    x = torch.rand(4, 3, 8, 8)
    off = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)
    assert torch.allclose(sa.strong_augment(x, torch.Generator().manual_seed(0), **off), x, atol=1e-6)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    xn = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    out = sa.strong_augment(xn, torch.Generator().manual_seed(0), mean=mean, std=std, **off)
    assert torch.allclose(out, xn, atol=1e-5)
    # brightness in [0, 1] space: a normalised image is jittered as its raw pixels are
    always = dict(off, jitter_p=1.0, jitter=(0.4, 0.0, 0.0, 0.0))
    raw = sa.strong_augment(x, torch.Generator().manual_seed(4), **always)
    normed = sa.strong_augment(xn, torch.Generator().manual_seed(4), mean=mean, std=std, **always)
    back = normed * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    assert torch.allclose(back, raw, atol=1e-5) and not torch.allclose(raw, x, atol=1e-3)


def test_colour_operations_match_torchvision():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 6, 6, generator=g)
    f = torch.tensor([0.6, 0.8, 1.0, 1.2, 1.4])
    h = torch.tensor([-0.1, -0.05, 0.0, 0.05, 0.1])
    for ours, theirs, p in ((sa.adjust_brightness, TF.adjust_brightness, f), (sa.adjust_contrast, TF.adjust_contrast, f),
                            (sa.adjust_saturation, TF.adjust_saturation, f), (sa.adjust_hue, TF.adjust_hue, h)):
        ref = torch.stack([theirs(x[i], float(p[i])) for i in range(5)])
        assert torch.allclose(ours(x, p), ref, atol=1e-4), ours.__name__
    assert torch.allclose(sa.grayscale(x), torch.stack([TF.rgb_to_grayscale(x[i]) for i in range(5)]), atol=1e-3)


def test_one_channel_images_get_brightness_and_contrast_only():
    """MNIST: saturation, hue and grayscale change nothing, as torchvision's tensor functions."""
    x = torch.rand(3, 1, 6, 6)
    p = torch.tensor([0.6, 1.0, 1.3])
    assert torch.equal(sa.adjust_saturation(x, p), x) and torch.equal(sa.adjust_hue(x, p / 10), x)
    assert torch.equal(sa.grayscale(x), x)
    out = sa.strong_augment(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0,
                            jitter_p=1.0, jitter=(0.0, 0.0, 0.4, 0.1), grayscale_p=1.0)
    assert torch.allclose(out, x, atol=1e-6)


def test_resized_crop_and_flip_match_torchvision():
    x = torch.rand(4, 3, 8, 8)
    boxes = torch.tensor([[1.0, 2.0, 5.0, 4.0], [0.0, 0.0, 8.0, 8.0], [3.0, 3.0, 2.0, 3.0], [0.0, 1.0, 7.0, 6.0]])
    flip = torch.tensor([False, True, False, True])
    out = sa.resized_crop(x, boxes, flip)
    for i in range(4):
        t, left, h, w = boxes[i].int().tolist()
        ref = TF.resized_crop(x[i], t, left, h, w, [8, 8], antialias=False)
        assert torch.allclose(out[i], TF.hflip(ref) if flip[i] else ref, atol=1e-5), i


def test_crop_boxes_follow_torchvision_get_params():
    """Boxes inside the image, area in [0.2, 1] of it and ratio in [3/4, 4/3] up to rounding;
    ten tries that cannot fit fall back to the central crop of the clamped ratio."""
    b = sa.crop_boxes(4000, 32, 32, torch.Generator().manual_seed(1))
    top, left, h, w = b.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 32).all()
    area = h * w / 1024
    assert area.min() > 0.17 and area.max() <= 1 and 0.5 < area.mean() < 0.65
    assert (h / w).min() > 0.7 and (h / w).max() < 1.43
    wide = sa.crop_boxes(3, 10, 40, torch.Generator().manual_seed(0), scale=(2.0, 2.0))  # never fits
    assert wide.tolist() == [[0.0, 13.0, 10.0, 13.0]] * 3  # ratio 4 clamped to 4/3: 10 x round(13.3)


# -- the step -----------------------------------------------------------------------------------

def _stream():
    return class_incremental(make_source(num_classes=4, per_class_train=10, size=8), 2)


def test_pcr_step_forwards_each_part_with_its_views_and_hpcr_stores_pre_update_features():
    """agents/pcr.py: pcrForward(cat[x, aug x]) then pcrForward(cat[mem_x, aug mem_x]); HPCR's
    buffer gets the logits and features of the plain current batch from that forward."""
    recipe = build_recipe("hpcr")
    assert (recipe.views, recipe.replay_forward, recipe.head) == ("strong", "separate", "cosine")
    torch.manual_seed(0)
    model = set_head(build_backbone("mlp", (1, 8, 8), 4), recipe.head, recipe.head_scale)
    assert model.classifier.scale == pytest.approx(1 / 0.09)
    sizes = []
    model.features.register_forward_hook(lambda m, args, out: sizes.append(len(args[0])) if m.training else None)

    class Spy:
        stateless = True
        seen = {}

        def after_step(self, state, batch):
            if state.step == 0:
                self.seen = {"x": batch.x.clone(), "f": batch.features[:4].detach().clone(),
                             "z": batch.logits.detach().clone()}

        def before_step(self, state, batch):
            if state.step == 1:
                m = state.memory.fields
                assert torch.equal(m["x"][:4], self.seen["x"]) and torch.equal(m["features"][:4], self.seen["f"])
                assert torch.equal(m["logits"][:4], self.seen["z"])
                Spy.checked = True

    recipe.plugins.append(Spy())
    result = train(_stream(), model, recipe, SGD(model.parameters(), lr=0.05), seed=0, batch_size=4, buffer_size=8,
                   replay_batch_size=3)
    assert result.status == "complete" and Spy.checked
    assert sizes[:3] == [8, 8, 6]  # step 1: no memory yet; step 2: 2 x 4 current, then 2 x 3 replayed


# -- runs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, extra", [("pcr", ["--refresh", "paper"]), ("hpcr", ["--refresh", "code"]),
                                           ("hpcr", ["--benchmark", "si-blurry-fashion-mnist"])])
def test_cli_runs_finish(method, extra, fashion, tmp_path, capsys):
    code, out, err = run_cli(["run", "--method", method, *tiny_run_flags(fashion), "--buffer-size", "12",
                              "--out", str(tmp_path / "run"), *extra], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert doc["complete"] and len(doc["class_il"]["accuracy_matrix"]) == doc["num_tasks"] >= 4


@pytest.mark.parametrize("method", ["pcr", "hpcr"])
def test_resume_mid_task_equals_an_uninterrupted_run(method, fashion, tmp_path, monkeypatch):
    """A crash in the third task: the views' generator, the memory's stored features and the
    scale's step counter come back from the checkpoint."""
    def config(out):
        return make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(fashion), "out": str(out),
                                "method": method, "batch_size": 4, "buffer_size": 10, "checkpoint_every": 2,
                                "threads": 1, "lr": 0.05})

    a, b = crash_then_resume(config, tmp_path, monkeypatch, 9)
    assert a["class_il"] == b["class_il"] and a["task_il"] == b["task_il"]
    assert same_weights(tmp_path / "whole", tmp_path / "cut")


def test_recipe_errors_are_one_line(capsys, fashion):
    code, _, err = run_cli(["run", "--method", "pcr", "--param", "temperature=0", *tiny_run_flags(fashion),
                            "--dry-run"], capsys)
    assert code == 2 and "temperature" in err and "Traceback" not in err
    with pytest.raises(Exception, match="head_scale"):
        build_recipe({"terms": [{"term": "pcr"}], "memory": "reservoir", "head_scale": 5.0})
    with pytest.raises(Exception, match="views"):
        build_recipe({"terms": [{"term": "pcr"}], "memory": "reservoir", "views": "weak"})
