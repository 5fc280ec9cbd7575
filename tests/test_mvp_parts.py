"""MVP's model-agnostic parts (Moon et al., ICCV 2023; KHU-AGI/Si-Blurry ``methods/mvp.py``,
``methods/_trainer.py``): the exposed-class mask, adaptive feature scaling (AFS) and the
gradient-similarity focal weighting (GSF). Values by hand on tiny tensors, and against the
reference's computation written out with autograd (a backward per example through a copy of the
head, as its ``_compute_grads`` does), not the library's closed form."""
from __future__ import annotations

import copy
import io
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from lifelong.errors import ConfigError
from lifelong.methods import build_recipe
from lifelong.objective import StepBatch
from lifelong.objective.mvp import ExposedClasses, MVPCrossEntropy
from lifelong.objective.output import CrossEntropy
from lifelong.plugins.exposed import ExposedEval
from lifelong.yamlio import parse_yaml
from tests.conftest import crash_then_resume, run_cli, same_weights, write_fashion_mnist

EXAMPLE = Path(__file__).parents[1] / "examples" / "mvp_er.yaml"


class Net(nn.Module):
    """A backbone with the features/classifier split: features = the input (or a linear map)."""

    def __init__(self, head: nn.Linear, body: nn.Module | None = None) -> None:
        super().__init__()
        self.body = body or nn.Identity()
        self.classifier = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def linear(weight, bias=None) -> nn.Linear:
    weight = torch.tensor(weight, dtype=torch.float64)
    head = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None).double()
    with torch.no_grad():
        head.weight.copy_(weight)
        if bias is not None:
            head.bias.copy_(torch.tensor(bias, dtype=torch.float64))
    return head


def step(model: nn.Module, x, y, replays=(), separate=False) -> StepBatch:
    x = torch.as_tensor(x, dtype=torch.float64)
    batch = StepBatch(model, 0, x, torch.as_tensor(y), list(replays), separate=separate, keep_features=True)
    batch.outputs = batch.forward()
    return batch


def ce_by_hand(z: list[float], label: int) -> float:
    return math.log(sum(math.exp(v) for v in z)) - z[label]


# -- adaptive feature scaling -------------------------------------------------------------------

def test_afs_divides_the_features_by_one_minus_cos_plus_the_margin():
    """f0 = (3, 4), label 0: cos(w_0, f0) = 0.6, s = 1 − 0.6 + 0.5 = 0.9; f1 = (1, 0), label 1
    (predicted 0): cos(w_1, f1) = 0, s = 1.5. The bias is added after the scaled features.
    Catches: no margin (s = 0.4), 1 + cos, the predicted class instead of the label, the
    logits divided instead of the features."""
    head = linear([[1.0, 0.0], [0.0, 1.0]], [0.5, -0.5])
    term = MVPCrossEntropy(mask="none", gsf=False)
    loss = term(step(Net(head), [[3.0, 4.0], [1.0, 0.0]], [0, 1]))
    z0 = [3 / 0.9 + 0.5, 4 / 0.9 - 0.5]
    z1 = [1 / 1.5 + 0.5, 0 / 1.5 - 0.5]
    assert loss.item() == pytest.approx((ce_by_hand(z0, 0) + ce_by_hand(z1, 1)) / 2, rel=1e-12)


def test_afs_scale_is_a_constant_of_the_loss():
    """The reference detaches the weight row and the features in ``_get_compensation``: the
    gradient is that of CE(W f/s + b) with s fixed, ``(p − onehot) ⊗ f/s`` for the head."""
    head = linear([[1.0, 0.0], [0.0, 1.0]], [0.5, -0.5])
    f = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    MVPCrossEntropy(mask="none", gsf=False)(step(Net(head), f, y)).backward()
    s = torch.tensor([0.9, 1.5], dtype=torch.float64)
    p = F.softmax((f / s[:, None]) @ head.weight.detach().t() + head.bias.detach(), dim=1)
    r = (p - F.one_hot(y, 2)) / 2
    assert torch.allclose(head.weight.grad, r.t() @ (f / s[:, None]), atol=1e-12)
    assert torch.allclose(head.bias.grad, r.sum(0), atol=1e-12)


# -- gradient-similarity focal weighting --------------------------------------------------------

def test_gsf_weights_by_hand_at_uniform_predictions():
    """W = 0: p = 1/2 for both classes. f0 = (1, 0) of class 0, f1 = (0, 1) of class 1.
    g_0 = (1/2 − 1) f0 = (−1/2, 0); ḡ_0 = ½((½ − 1) f0 + ½ f1) = (−1/4, 1/4): cos = 1/√2, so
    w = (1 − 1/√2)² for each. CE = log 2. With α = 0.25 the loss is log 2 · (0.75 + 0.25 · w).
    Catches: γ on the cosine (1 − cos^γ = 1/2), the class's own examples only in ḡ (cos = 1,
    w = 0), α and 1 − α swapped (log 2 · (0.25 + 0.75 w))."""
    head = linear([[0.0, 0.0], [0.0, 0.0]], [0.0, 0.0])
    term = MVPCrossEntropy(mask="none", afs=False, alpha=0.25, gamma=2.0)
    loss = term(step(Net(head), [[1.0, 0.0], [0.0, 1.0]], [0, 1]))
    w = (1 - 1 / math.sqrt(2)) ** 2
    assert loss.item() == pytest.approx(math.log(2) * (0.75 + 0.25 * w), rel=1e-12)


def reference_weights(head: nn.Linear, f: torch.Tensor, y: torch.Tensor, hidden: torch.Tensor | None,
                      gamma: float) -> torch.Tensor:
    """``_compute_grads`` and ``_get_ignore`` written out: each example's loss backward through a
    copy of the head, the target row's gradient; then the mean loss's gradient, row y_i."""
    head = copy.deepcopy(head)
    logit = head(f.detach())
    if hidden is not None:
        logit = logit + torch.where(hidden, float("-inf"), 0.0).to(logit.dtype)
    per = F.cross_entropy(logit, y, reduction="none")
    own = []
    for i in range(len(y)):
        head.zero_grad()
        per[i].backward(retain_graph=True)
        own.append(head.weight.grad[y[i]].clone())
    head.zero_grad()
    F.cross_entropy(logit, y).backward()
    batch = head.weight.grad[y].clone()
    return (1.0 - torch.cosine_similarity(torch.stack(own), batch, dim=1)) ** gamma


def reference_loss(head, f, y, hidden, alpha, gamma, margin, reduction="batch"):
    """``loss_fn`` written out: AFS logits, the -inf mask, mean (or per-example) cross-entropy,
    then (1 − α)·CE + α·w·CE averaged."""
    w = reference_weights(head, f, y, hidden, gamma)
    scale = 1.0 - torch.cosine_similarity(head.weight[y].detach(), f.detach(), dim=1) + margin
    logit = head(f / scale.unsqueeze(1))
    if hidden is not None:
        logit = logit + torch.where(hidden, float("-inf"), 0.0).to(logit.dtype)
    ce = F.nll_loss(F.log_softmax(logit, dim=1), y, reduction="mean" if reduction == "batch" else "none")
    return ((1 - alpha) * ce + alpha * w * ce).mean()


def _case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    body = nn.Linear(4, 3).double()
    head = nn.Linear(3, 5).double()
    with torch.no_grad():
        for p in [*body.parameters(), *head.parameters()]:
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 3, 0, 1])
    return Net(head, body), x, y


@pytest.mark.parametrize("reduction", ["batch", "sample"])
def test_the_whole_loss_and_its_gradient_equal_the_reference_written_out(reduction):
    """Value and every gradient (head and body) against ``loss_fn`` with autograd per example,
    classes 2 and 4 not exposed yet. GSF's weights come from the unscaled logits even with AFS on
    (``_compute_grads`` calls the head on the features); the weights carry no gradient."""
    model, x, y = _case()
    term = MVPCrossEntropy(alpha=0.3, gamma=2.0, margin=0.5, reduction=reduction)
    loss = term(step(model, x, y))
    grads = torch.autograd.grad(loss, list(model.parameters()))
    ref_model = copy.deepcopy(model)
    hidden = torch.tensor([False, False, True, False, True])
    ref = reference_loss(ref_model.classifier, ref_model.features(x), y, hidden, 0.3, 2.0, 0.5, reduction)
    ref_grads = torch.autograd.grad(ref, list(ref_model.parameters()))
    assert loss.item() == pytest.approx(ref.item(), rel=1e-10)
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(grads, ref_grads))


def test_batch_and_sample_reductions_differ_as_their_formulas_say():
    """``batch`` (the reference): mean CE · ((1 − α) + α·mean w); ``sample``: mean of
    ((1 − α) + α w_i)·CE_i. They differ when weights and losses vary across examples."""
    model, x, y = _case(1)
    f = model.features(x).detach()
    hidden = torch.tensor([False, False, True, False, True])
    w = reference_weights(model.classifier, f, y, hidden, 2.0)
    scale = 1.0 - torch.cosine_similarity(model.classifier.weight[y], f, dim=1) + 0.5
    z = model.classifier(f / scale.unsqueeze(1)).masked_fill(hidden, float("-inf"))
    ce = F.cross_entropy(z, y, reduction="none").detach()
    batch = MVPCrossEntropy(alpha=0.4)(step(model, x, y)).item()
    sample = MVPCrossEntropy(alpha=0.4, reduction="sample")(step(model, x, y)).item()
    assert batch == pytest.approx((ce.mean() * (0.6 + 0.4 * w.mean())).item(), rel=1e-10)
    assert sample == pytest.approx((((0.6 + 0.4 * w) * ce).mean()).item(), rel=1e-10)
    assert abs(batch - sample) > 1e-4


def test_replayed_examples_join_the_loss_in_their_forward_order():
    """``on: both`` covers the current batch and the replay draw (the reference concatenates the
    memory batch); with ``separate`` forwards the features follow the outputs' rows."""
    model, x, y = _case(2)
    replay = {"x": x[4:], "y": y[4:]}
    batch = step(model, torch.cat([x[:4], x[4:]]), y[:4], [replay], separate=True)
    assert torch.allclose(batch.features, model.features(x)) and torch.allclose(batch.outputs, model(x))
    loss = MVPCrossEntropy(on="both", mask="none", alpha=0.3)(batch)
    ref = reference_loss(model.classifier, model.features(x), y, None, 0.3, 2.0, 0.5)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-10)
    current_only = MVPCrossEntropy(mask="none", alpha=0.3)(batch)
    assert abs(current_only.item() - loss.item()) > 1e-6


# -- the exposed-class mask ---------------------------------------------------------------------

def test_the_mask_hides_exactly_the_unexposed_classes_and_grows():
    seen = ExposedClasses()
    z = torch.arange(10.0).view(2, 5)
    assert torch.equal(seen.hide(z), z)  # nothing seen yet: nothing to hide
    seen.add(torch.tensor([1, 1]), 5)
    low = torch.finfo(z.dtype).min
    assert seen.hide(z)[0].tolist() == [low, 1.0, low, low, low]
    seen.add(torch.tensor([3, 1]), 5)
    assert seen.hide(z)[1].tolist() == [low, 6.0, low, 8.0, low]
    assert seen.seen.tolist() == [False, True, False, True, False]


def test_ce_with_the_exposed_mask_is_the_cross_entropy_over_the_exposed_classes():
    """Step 1 shows class 1 only (its task may hold more classes: on a blurry stream exposure is
    per example); step 2 shows class 3, and the replayed example of class 1 is masked too."""
    term = CrossEntropy(on="both", mask="exposed")
    model = Net(linear([[0.3, -0.2], [0.1, 0.4], [0.9, 0.9], [-0.5, 0.2], [2.0, 2.0]]))
    first = step(model, [[1.0, 2.0], [0.5, -1.0]], [1, 1])
    assert term(first).item() == pytest.approx(0.0, abs=1e-12)  # one exposed class: softmax over one logit
    x = torch.tensor([[1.0, 2.0], [0.5, -1.0], [2.0, 1.0]], dtype=torch.float64)
    second = step(model, x, [3, 1], [{"x": x[2:], "y": torch.tensor([1])}])
    z = model(x).detach()
    expected = sum(ce_by_hand([z[i, 1].item(), z[i, 3].item()], [1, 0, 0][i]) for i in range(3)) / 3
    assert term(second).item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="applies to the current batch only"):
        CrossEntropy(on="both", mask="past")


def test_the_evaluation_plugin_hides_the_unexposed_classes():
    plugin = ExposedEval()
    model = Net(linear([[1.0], [2.0], [3.0]]))
    x = torch.ones(1, 1, dtype=torch.float64)
    assert plugin.scores(model, x).tolist() == [[1.0, 2.0, 3.0]]  # before the first step: all classes

    class State:
        class stream:
            num_classes = 3

    plugin.before_step(State, step(model, x, [0]))
    plugin.before_step(State, step(model, x, [1]))
    assert plugin.scores(model, x).tolist() == [[1.0, 2.0, float("-inf")]]
    buf = io.BytesIO()
    torch.save(plugin.state_dict(), buf)
    again = ExposedEval()
    again.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert again.scores(model, x).tolist() == [[1.0, 2.0, float("-inf")]]


# -- options, errors, the example run -----------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    ({"margin": 0}, "`margin` must be positive"),
    ({"alpha": 1.5}, r"`alpha` must be in \[0, 1\]"),
    ({"gamma": -1}, "`gamma` must be >= 0"),
    ({"afs": "yes"}, "`afs` must be true or false"),
    ({"reduction": "mean"}, "`reduction` must be one of 'batch', 'sample'"),
    ({"on": "replay"}, "`on` must be one of 'current', 'both'"),
])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        build_recipe({"terms": [{"term": "mvp-ce", **options}], "memory": "reservoir"})


def test_a_cosine_head_is_refused():
    from lifelong.nets.heads import CosineLinear

    model = Net(linear([[1.0]]))
    model.classifier = CosineLinear(1, 2)

    class State:
        pass

    State.model = model
    with pytest.raises(ConfigError, match="need a backbone whose `classifier` is a linear layer, not CosineLinear"):
        MVPCrossEntropy().begin_task(State)
    MVPCrossEntropy(afs=False, gsf=False).begin_task(State)  # the mask alone needs no linear head


@pytest.fixture(scope="module")
def blurry_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fashion")
    write_fashion_mnist(root, per_class_train=12, per_class_test=3)
    return root


def test_the_example_runs_and_resumes_bit_for_bit(blurry_root, tmp_path, monkeypatch, capsys):
    """The example on a tiny Si-Blurry Fashion-MNIST from the CLI; then a crash mid-task and a
    resume equal the uninterrupted run (the exposed classes of the term and of the plug-in are
    in the checkpoint)."""
    from lifelong.config import make_config
    from lifelong.runs.session import config_to_resume

    out = tmp_path / "cli"
    code, _, err = run_cli(["run", "--config", str(EXAMPLE), "--benchmark", "si-blurry-fashion-mnist",
                            "--data-root", str(blurry_root), "--batch-size", "4", "--buffer-size", "20",
                            "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["complete"] and m["method"] == "er-mvp-parts"
    recipe = parse_yaml((out / "config.yaml").read_text())["recipe"]
    assert recipe["terms"][0]["term"] == "mvp-ce" and recipe["plugins"] == [{"plugin": "exposed-eval"}]

    method = parse_yaml(EXAMPLE.read_text())["method"]  # the library's YAML: `on:` is a key, not true

    def config(folder):
        return make_config({}, {"benchmark": "si-blurry-fashion-mnist", "data_root": str(blurry_root),
                                "out": str(folder), "method": method, "batch_size": 4, "buffer_size": 20,
                                "checkpoint_every": 3, "blurry_mix": 30, "seed": 1})

    whole, resumed = crash_then_resume(config, tmp_path, monkeypatch, 11, resume_config=config_to_resume)
    assert whole["complete"] and resumed["complete"]
    assert whole["class_il"] == resumed["class_il"] and whole["task_il"] == resumed["task_il"]
    assert same_weights(tmp_path / "whole", tmp_path / "cut")
