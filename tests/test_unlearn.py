"""Unlearning (lifelong.unlearn): SSD's and LFSSD's importances and dampening against values
computed by hand (Foster et al., AAAI 2024; the reference's ``src/ssd.py``), each test failing on
a plausible wrong variant; forget-set parsing and its one-line errors; the membership-inference
attack, agreement and KL by hand; the baselines on tiny MLPs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import lifelong.unlearn as u
from lifelong.errors import ConfigError
from lifelong.nets.mlp import MLP
from lifelong.unlearn.baselines import wrong_labels
from lifelong.unlearn.data import batches
from lifelong.unlearn.evaluate import fit_logistic
from tests.conftest import make_source


# -- a 2-parameter model whose gradients are written out by hand ---------------------------------
class TwoParam(nn.Module):
    """Logits ``(a·x₁, b·x₂)``: with ``d = p₀ − [y = 0]``, CE's gradients are ``∂a = d·x₁``
    and ``∂b = −d·x₂``; the squared logit norm ``a²x₁² + b²x₂²`` has ``∂a = 2a·x₁²``,
    ``∂b = 2b·x₂²``."""

    def __init__(self, a: float = 0.7, b: float = -0.4) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(b, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.a * x[:, 0], self.b * x[:, 1]], 1)


# training set: forget examples 1 and 4 (large x1), the retain examples 0, 2, 3, 5 (small x1)
X = [[0.2, 1.0], [2.0, 0.1], [0.1, -0.8], [-0.3, 1.5], [1.5, 0.2], [0.4, 0.6]]
Y = [0, 1, 1, 0, 0, 1]
FORGET = [False, True, False, False, True, False]


def two_param_data() -> u.UnlearnData:
    x = torch.tensor(X, dtype=torch.float64)
    y = torch.tensor(Y)
    return u.UnlearnData(x, y, torch.tensor(FORGET), x[:2], y[:2], 2)


def hand_ce_grads(a: float, b: float, rows: list[int]) -> tuple[float, float]:
    """The gradient of the batch's mean cross-entropy for (a, b), example by example."""
    ga = gb = 0.0
    for i in rows:
        x1, x2 = X[i]
        z0, z1 = a * x1, b * x2
        p0 = math.exp(z0) / (math.exp(z0) + math.exp(z1))
        d = p0 - (1.0 if Y[i] == 0 else 0.0)
        ga += d * x1 / len(rows)
        gb += -d * x2 / len(rows)
    return ga, gb


def hand_importance(a: float, b: float, order: list[int], batch: int, label_free: bool = False) -> list[float]:
    """Mean over consecutive batches of ``order`` of the squared batch-mean CE gradient (SSD) or
    of the absolute gradient of the mean squared logit norm (LFSSD)."""
    chunks = [order[i:i + batch] for i in range(0, len(order), batch)]
    total = [0.0, 0.0]
    for rows in chunks:
        if label_free:
            ga = sum(2 * a * X[i][0] ** 2 for i in rows) / len(rows)
            gb = sum(2 * b * X[i][1] ** 2 for i in rows) / len(rows)
            total = [total[0] + abs(ga), total[1] + abs(gb)]
        else:
            ga, gb = hand_ce_grads(a, b, rows)
            total = [total[0] + ga * ga, total[1] + gb * gb]
    return [t / len(chunks) for t in total]


FORGET_ORDER = [1, 4]
FULL_ORDER = [0, 2, 3, 5, 1, 4]  # the reference's ConcatDataset((retain, forget))


def hand_dampen(theta: list[float], imp_d: list[float], imp_f: list[float], alpha: float, lam: float) -> list[float]:
    out = []
    for t, d, f in zip(theta, imp_d, imp_f):
        out.append(t * min(lam * d / f, 1.0) if f > alpha * d else t)
    return out


def test_ssd_importance_is_the_mean_of_squared_batch_mean_gradients():
    model, data = TwoParam(), two_param_data()
    imp = u.importances(model, batches(data.train_x, data.train_y, 4))
    expected = hand_importance(0.7, -0.4, list(range(6)), 4)
    assert imp["a"].item() == pytest.approx(expected[0], rel=1e-12)
    assert imp["b"].item() == pytest.approx(expected[1], rel=1e-12)
    # the wrong variant "mean over examples of squared per-example gradients" differs here
    per_example = sum(hand_ce_grads(0.7, -0.4, [i])[0] ** 2 for i in range(6)) / 6
    assert abs(per_example - expected[0]) > 1e-3


def test_lfssd_importance_by_hand_ignores_labels():
    model, data = TwoParam(), two_param_data()
    imp = u.importances(model, batches(data.train_x, data.train_y, 4), label_free=True)
    expected = hand_importance(0.7, -0.4, list(range(6)), 4, label_free=True)
    assert [imp["a"].item(), imp["b"].item()] == pytest.approx(expected, rel=1e-12)
    shuffled = u.importances(model, batches(data.train_x, data.train_y.flip(0), 4), label_free=True)
    assert torch.equal(shuffled["a"], imp["a"]) and torch.equal(shuffled["b"], imp["b"])
    # absolute values, not squares: b's gradient is negative and the values are not 0 or 1
    squares = [sum(2 * 0.7 * X[i][0] ** 2 for i in rows) ** 2 for rows in ([0, 1, 2, 3], [4, 5])]
    assert abs(expected[0] - sum(s / len(r) ** 2 for s, r in zip(squares, ([0, 1, 2, 3], [4, 5]))) / 2) > 1e-3


def test_dampen_against_hand_values_and_wrong_variants():
    theta = [1.0, 2.0, -3.0, 4.0, 0.5]
    imp_d = [1.0, 1.0, 1.0, 0.0, 2.0]
    imp_f = [0.5, 3.0, 8.0, 0.0, 20.0]
    alpha, lam = 2.0, 4.0
    model = nn.Module()
    model.w = nn.Parameter(torch.tensor(theta, dtype=torch.float64))
    full = {"w": torch.tensor(imp_d, dtype=torch.float64)}
    forget = {"w": torch.tensor(imp_f, dtype=torch.float64)}
    selected = u.dampen(model, full, forget, alpha, lam)
    got = model.w.detach().tolist()
    expected = hand_dampen(theta, imp_d, imp_f, alpha, lam)
    assert got == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx([1.0, 2.0, -1.5, 4.0, 0.2]) and selected == 3
    # each plausible wrong variant gives other values on this example
    swapped = hand_dampen(theta, imp_d, imp_f, lam, alpha)
    inverted = [t * min(lam * d / f, 1.0) if 0 < f < alpha * d else t for t, d, f in zip(theta, imp_d, imp_f)]
    unclipped = [t * lam * d / f if f > alpha * d else t for t, d, f in zip(theta, imp_d, imp_f)]
    for wrong in (swapped, inverted, unclipped):
        assert wrong != pytest.approx(got, rel=1e-6)


def test_ssd_end_to_end_on_the_two_parameter_model():
    model, data = TwoParam(), two_param_data()
    imp_f = hand_importance(0.7, -0.4, FORGET_ORDER, 4)
    imp_d = hand_importance(0.7, -0.4, FULL_ORDER, 4)
    ratios = [f / d for f, d in zip(imp_f, imp_d)]
    alpha = (ratios[0] * ratios[1]) ** 0.5  # between the two: one parameter selected, one not
    lam = 0.5 * alpha
    out = u.ssd(model, data, alpha=alpha, lam=lam, batch_size=4)
    expected = hand_dampen([0.7, -0.4], imp_d, imp_f, alpha, lam)
    assert [out.a.item(), out.b.item()] == pytest.approx(expected, rel=1e-10)
    assert sum(e != t for e, t in zip(expected, [0.7, -0.4])) == 1
    assert model.a.item() == 0.7  # the input model is untouched
    # D in training-set order instead of retain-then-forget: other batches, other values
    other = hand_importance(0.7, -0.4, list(range(6)), 4)
    assert hand_dampen([0.7, -0.4], other, imp_f, alpha, lam) != pytest.approx(expected, rel=1e-6)


def test_full_importance_in_either_order_and_ssd_given_by_hand():
    """``full_importance``: the reference's retain-then-forget order, or ``D``'s own order (what
    the cache keeps), each against the hand-computed batches; ``ssd_given`` with the latter."""
    from lifelong.unlearn.ssd import full_importance, ssd_given

    model, data = TwoParam(), two_param_data()
    reference = full_importance(model, data, 4)
    own = full_importance(model, data, 4, order="dataset")
    assert [reference["a"].item(), reference["b"].item()] == pytest.approx(hand_importance(0.7, -0.4, FULL_ORDER, 4),
                                                                           rel=1e-12)
    imp_d = hand_importance(0.7, -0.4, list(range(6)), 4)
    assert [own["a"].item(), own["b"].item()] == pytest.approx(imp_d, rel=1e-12)
    assert own["a"].item() != pytest.approx(reference["a"].item(), rel=1e-6)  # other batches, other sums
    imp_f = hand_importance(0.7, -0.4, FORGET_ORDER, 4)
    alpha = (imp_f[0] / imp_d[0] * imp_f[1] / imp_d[1]) ** 0.5
    out = ssd_given(model, data, own, alpha=alpha, lam=0.5 * alpha, batch_size=4)
    assert [out.a.item(), out.b.item()] == pytest.approx(hand_dampen([0.7, -0.4], imp_d, imp_f, alpha, 0.5 * alpha),
                                                         rel=1e-10)
    plain = u.ssd(model, data, alpha=alpha, lam=0.5 * alpha, batch_size=4)
    given = ssd_given(model, data, reference, alpha=alpha, lam=0.5 * alpha, batch_size=4)
    assert torch.equal(plain.a, given.a) and torch.equal(plain.b, given.b)  # ssd is ssd_given in the reference order
    with pytest.raises(ConfigError, match="order"):
        full_importance(model, data, 4, order="shuffled")


def test_lfssd_end_to_end_on_the_two_parameter_model():
    model, data = TwoParam(), two_param_data()
    imp_f = hand_importance(0.7, -0.4, FORGET_ORDER, 4, label_free=True)
    imp_d = hand_importance(0.7, -0.4, FULL_ORDER, 4, label_free=True)
    ratios = sorted(f / d for f, d in zip(imp_f, imp_d))
    alpha = (ratios[0] * ratios[1]) ** 0.5
    out = u.lfssd(model, data, alpha=alpha, lam=1.0, batch_size=4)
    expected = hand_dampen([0.7, -0.4], imp_d, imp_f, alpha, 1.0)
    assert [out.a.item(), out.b.item()] == pytest.approx(expected, rel=1e-10)
    assert expected != [0.7, -0.4]


def test_ssd_settings_refused_in_one_line():
    data = two_param_data()
    for kwargs in ({"alpha": 0.0}, {"alpha": -1.0}, {"alpha": float("nan")}, {"lam": -0.5}, {"batch_size": 0}):
        with pytest.raises(ConfigError) as err:
            u.ssd(TwoParam(), data, **kwargs)
        assert "\n" not in str(err.value)


# -- a small trained MLP ------------------------------------------------------------------------
def trained_mlp(forget: str = "classes:1", classes: int = 4, seed: int = 0) -> tuple[nn.Module, u.UnlearnData]:
    data = u.UnlearnData.from_source(make_source(num_classes=classes, per_class_train=60, per_class_test=20), forget)
    torch.manual_seed(seed)
    model = MLP(64, classes, hidden=32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(20):
        for x, y in batches(data.train_x, data.train_y, 16, gen):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return model, data


@pytest.fixture(scope="module")
def mlp_and_data():
    return trained_mlp()


def test_ssd_forgets_the_class_and_keeps_the_rest(mlp_and_data):
    model, data = mlp_and_data
    before = u.accuracies(model, data)
    assert before["forget"] == 1.0 and before["retain"] == 1.0
    # the forget class is 1/4 of D: a parameter used by it alone has I_Df / I_D ≈ 4 (number of
    # D's batches over the forget set's), so α must lie below 4 to select it (α = 10 would not)
    after = u.accuracies(u.ssd(model, data, alpha=2.0, lam=1.0), data)
    assert after["forget"] < 0.2
    assert after["retain"] > 0.95
    assert before["forget"] - after["forget"] > 5 * (before["retain"] - after["retain"])


def test_gradient_ascent_raises_the_forget_loss(mlp_and_data):
    model, data = mlp_and_data
    out = u.gradient_ascent(model, data, steps=5, lr=0.5)
    with torch.no_grad():
        before = F.cross_entropy(model(data.forget_x), data.forget_y)
        after = F.cross_entropy(out(data.forget_x), data.forget_y)
    assert after > before + 0.1


def test_refresh_unlearning_raises_the_forget_loss(mlp_and_data):
    model, data = mlp_and_data
    out = u.refresh_unlearn(model, data, gamma=0.05, noise=0.0, epochs=3)
    with torch.no_grad():
        before = F.cross_entropy(model(data.forget_x), data.forget_y)
        after = F.cross_entropy(out(data.forget_x), data.forget_y)
    assert after > before
    with pytest.raises(ConfigError, match="refresh"):
        u.refresh_unlearn(model, data, form="nope")


def test_finetune_and_random_labels_run_and_leave_the_input_alone(mlp_and_data):
    model, data = mlp_and_data
    first = [p.clone() for p in model.parameters()]
    for name in ("finetune", "random-labels"):
        out = u.UNLEARNERS[name](model, data, epochs=1)
        assert any(not torch.equal(p, q) for p, q in zip(out.parameters(), model.parameters()))
    assert all(torch.equal(p, q) for p, q in zip(first, model.parameters()))


def test_wrong_labels_avoid_the_own_label_and_fully_forgotten_classes():
    source = make_source(num_classes=4, per_class_train=50)
    for spec, banned in (("classes:1,2", {1, 2}), ("random:0.3", set())):
        data = u.UnlearnData.from_source(source, spec)
        labels = wrong_labels(data, torch.Generator().manual_seed(0))
        assert not bool((labels == data.forget_y).any())
        assert not set(labels.tolist()) & banned
        assert len(set(labels.tolist())) == 4 - len(banned)


def test_registry_lists_defaults_and_refuses_unknown_names(mlp_and_data):
    assert set(u.UNLEARNERS) == {"ssd", "lfssd", "finetune", "gradient-ascent", "random-labels", "refresh"}
    assert u.UNLEARNERS["ssd"].defaults == {"alpha": 10.0, "lam": 1.0, "batch_size": 64, "label_free": False}
    assert u.UNLEARNERS["finetune"].defaults["lr"] == 0.02
    model, data = mlp_and_data
    for call in (lambda: u.get_unlearner("sdd"), lambda: u.UNLEARNERS["ssd"](model, data, alfa=3)):
        with pytest.raises(ConfigError) as err:
            call()
        assert "\n" not in str(err.value)


# -- forget sets -------------------------------------------------------------------------------
def test_forget_specs_parse():
    y = torch.arange(4).repeat_interleave(25)
    mask = u.forget_mask("classes:3,1", y, 4)
    assert torch.equal(mask, (y == 1) | (y == 3))
    assert str(u.parse_forget_spec(" classes: 3,1,3")) == "classes:1,3"
    drawn = u.forget_mask("random:0.1", y, 4, seed=5)
    assert int(drawn.sum()) == 10
    assert torch.equal(drawn, u.forget_mask("random:0.1", y, 4, seed=5))
    assert not torch.equal(drawn, u.forget_mask("random:0.1", y, 4, seed=6))
    assert torch.equal(u.forget_indices(mask), torch.cat([torch.arange(25, 50), torch.arange(75, 100)]))


def test_forget_indices_from_text_npy_and_pt(tmp_path):
    y = torch.zeros(10, dtype=torch.int64)
    y[5:] = 1
    (tmp_path / "f.txt").write_text("3\n\n# a comment\n7  \n3\n")
    np.save(tmp_path / "f.npy", np.array([[3], [7]], dtype=np.int32))
    torch.save(torch.tensor([3, 7]), tmp_path / "f.pt")
    expected = torch.zeros(10, dtype=torch.bool)
    expected[[3, 7]] = True
    for name in ("f.txt", "f.npy", "f.pt"):
        assert torch.equal(u.forget_mask(f"indices:{tmp_path / name}", y, 2), expected)


@pytest.mark.parametrize("spec, message", [
    ("classes", "not understood"), ("klasses:1", "not understood"), ("classes:", "not understood"),
    ("classes:1,x", "integers"), ("classes:4", "outside 0..3"), ("classes:-1", "outside 0..3"),
    ("classes:0,1,2,3", "every class"), ("random:0", "strictly between"), ("random:1", "strictly between"),
    ("random:1.5", "strictly between"), ("random:abc", "a number"), ("random:0.001", "empty"),
    ("random:0.999", "whole training set"),
])
def test_bad_forget_specs_are_one_line(spec, message):
    y = torch.arange(4).repeat_interleave(25)
    with pytest.raises(ConfigError, match=message) as err:
        u.forget_mask(spec, y, 4)
    assert "\n" not in str(err.value)


def test_bad_index_files_are_one_line(tmp_path):
    y = torch.arange(2).repeat_interleave(5)
    (tmp_path / "out.txt").write_text("1\n10\n")
    (tmp_path / "neg.txt").write_text("-1\n")
    (tmp_path / "word.txt").write_text("1\ntwo\n")
    (tmp_path / "none.txt").write_text("# nothing\n")
    (tmp_path / "all.txt").write_text("\n".join(str(i) for i in range(10)))
    np.save(tmp_path / "float.npy", np.array([1.5]))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    cases = {"out.txt": "index 10 is outside", "neg.txt": "index -1 is outside", "word.txt": "one integer per line",
             "none.txt": "empty", "all.txt": "whole training set", "float.npy": "integers",
             "junk.npy": "cannot read", "missing.txt": "not found"}
    for name, message in cases.items():
        with pytest.raises(ConfigError, match=message) as err:
            u.forget_mask(f"indices:{tmp_path / name}", y, 2)
        assert "\n" not in str(err.value)


def test_class_spec_on_a_class_without_examples_is_empty():
    y = torch.tensor([0, 0, 1, 1])
    with pytest.raises(ConfigError, match="empty"):
        u.forget_mask("classes:2", y, 3)


# -- evaluation --------------------------------------------------------------------------------
def test_mia_separable_case_gives_one_and_identical_distributions_about_half():
    members = torch.linspace(0.0, 0.1, 200)
    non_members = torch.linspace(2.0, 3.0, 200)
    assert u.membership_fraction(members, non_members, torch.linspace(0.0, 0.2, 50)) == 1.0
    assert u.membership_fraction(members, non_members, torch.linspace(2.5, 3.0, 50)) == 0.0
    g = torch.Generator().manual_seed(0)
    # ten times more members than non-members: only balanced class weights keep this near 1/2
    same = [torch.randn(n, generator=g) for n in (4000, 400, 4000)]
    assert u.membership_fraction(*same) == pytest.approx(0.5, abs=0.2)


def test_logistic_regression_matches_its_objective_minimum():
    g = torch.Generator().manual_seed(1)
    x = torch.cat([torch.randn(30, generator=g) + 1, torch.randn(10, generator=g) - 1])
    t = torch.cat([torch.ones(30), torch.zeros(10)])
    w, b = fit_logistic(x, t)
    s = torch.where(t > 0, 40 / 60, 40 / 20).double()

    def objective(wv: float, bv: float) -> float:
        z = wv * x.double() + bv
        bce = torch.log1p(torch.exp(-z)) * t + torch.log1p(torch.exp(z)) * (1 - t)
        return float(0.5 * wv * wv + (s * bce).sum())

    best = objective(float(w), float(b))
    for dw, db in ((1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)):
        assert objective(float(w) + dw, float(b) + db) > best


class Fixed(nn.Module):
    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x.long().flatten()]


def test_agreement_and_kl_by_hand():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    q = torch.tensor([[0.5, 0.4, 0.1], [0.2, 0.5, 0.3]])
    model, reference = Fixed(q.log()), Fixed(p.log())
    got = u.agreement(model, reference, torch.tensor([[0.0], [1.0]]))
    kl = [sum(pi * math.log(pi / qi) for pi, qi in zip(pr, qr)) for pr, qr in zip(p.tolist(), q.tolist())]
    assert got["kl"] == pytest.approx(sum(kl) / 2, rel=1e-5)
    assert got["agreement"] == 0.5
    reverse = [sum(qi * math.log(qi / pi) for pi, qi in zip(pr, qr)) for pr, qr in zip(p.tolist(), q.tolist())]
    assert abs(sum(reverse) / 2 - got["kl"]) > 1e-3  # KL(model ‖ reference) would differ


def test_evaluate_unlearning_document(mlp_and_data):
    model, data = mlp_and_data
    doc = u.evaluate_unlearning(model, data, reference=model)
    assert doc["agreement"]["test"] == {"agreement": 1.0, "kl": pytest.approx(0.0, abs=1e-6)}
    assert set(doc["accuracy"]) == {"forget", "retain", "test", "test_forget", "test_retain"}
    assert 0.0 <= doc["mia"] <= 1.0
    plain = u.UnlearnData(data.train_x, data.train_y, data.forget, data.test_x, data.test_y, data.num_classes)
    assert set(u.accuracies(model, plain)) == {"forget", "retain", "test"}  # no forgotten classes: no split
    assert 0.0 <= u.membership_inference(model, data, feature="loss") <= 1.0
    with pytest.raises(ConfigError, match="feature"):
        u.membership_inference(model, data, feature="margin")


def test_test_accuracy_split_by_forgotten_classes_by_hand():
    """``test_forget``/``test_retain``: accuracy on the test examples of the forgotten classes and
    of the others (the SSD reference's full-class D_f and D_r), counted here by hand."""
    table = torch.eye(3)[[0, 1, 1, 2, 0, 0]].log_softmax(1)  # predictions 0 1 1 2 0 0 for inputs 0..5
    model = Fixed(table)
    x = torch.arange(6.0).unsqueeze(1)
    test_y = torch.tensor([0, 1, 2, 2, 1, 0])  # right: 0, 1, 3, 5; of class 1 (forgotten): 1 of 2 (input 1)
    data = u.UnlearnData(x, test_y, test_y == 1, x, test_y, 3, forget_classes=(1,))
    got = u.accuracies(model, data)
    assert got["test_forget"] == pytest.approx(1 / 2) and got["test_retain"] == pytest.approx(3 / 4)
    assert got["test"] == pytest.approx(4 / 6)


def test_zrf_by_hand_and_against_the_textbook_variants():
    """ZRF = 1 − JS as the SSD reference computes it: ½·mean over all N·C cells of m log(m/p)
    plus the same for q (``F.kl_div(log p, m)``, reduction ``mean``), m = (p + q) / 2."""
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    q = torch.tensor([[0.5, 0.4, 0.1], [0.2, 0.5, 0.3]])
    cells = []
    for pr, qr in zip(p.tolist(), q.tolist()):
        for pi, qi in zip(pr, qr):
            mi = (pi + qi) / 2
            cells.append(0.5 * mi * math.log(mi / pi) + 0.5 * mi * math.log(mi / qi))
    expected = 1 - sum(cells) / len(cells)
    x = torch.tensor([[0.0], [1.0]])
    got = u.zrf(Fixed(p.log()), Fixed(q.log()), x)
    assert got == pytest.approx(expected, rel=1e-6)
    textbook = 0.0  # JS = ½ KL(p‖m) + ½ KL(q‖m), summed over classes, averaged over examples
    for pr, qr in zip(p.tolist(), q.tolist()):
        textbook += sum(0.5 * pi * math.log(2 * pi / (pi + qi)) + 0.5 * qi * math.log(2 * qi / (pi + qi))
                        for pi, qi in zip(pr, qr)) / 2
    swapped_summed = sum(cells) / 2  # the reference's order, but summed over classes
    for wrong in (1 - textbook, 1 - swapped_summed):
        assert abs(got - wrong) > 1e-4
    assert u.zrf(Fixed(p.log()), Fixed(p.log()), x) == pytest.approx(1.0)
    assert math.isnan(u.zrf(Fixed(p.log()), Fixed(q.log()), x[:0]))
    huge = torch.tensor([[0.0, -200.0, -200.0], [-200.0, 0.0, -200.0]])  # softmax rounds to 0 in float32
    assert math.isfinite(u.zrf(Fixed(huge), Fixed(q.log()), x))  # the reference's log(softmax) gives -inf
