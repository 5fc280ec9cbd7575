"""lifelong.edit: task vectors, layer blocks, LiNeS, task arithmetic and TIES, each against values
written out by hand (wang-kee/LiNeS `src/eval/eval.py::LiNeS_scaling`, `src/eval/aggregation.py`,
`src/utils/ties_utils.py`, `src/utils/utils.py::topk_values_mask`)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import lifelong.edit as e
from lifelong.errors import ConfigError
from lifelong.nets import BACKBONES, build_backbone


class Deep(nn.Module):
    """Three hidden layers (L = 3 by the built-in rule) and a classifier outside the blocks."""

    def __init__(self, bn: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4) if bn else nn.ReLU(), nn.Linear(4, 4),
                                      nn.ReLU(), nn.Linear(4, 4), nn.ReLU())
        self.classifier = nn.Linear(4, 2)

    def forward(self, x):
        return self.classifier(self.features(x))


def pair(model: nn.Module, seed: int = 1) -> tuple[dict, dict]:
    """(base, fine-tuned) state dicts: the fine-tuned one moved by a known random update."""
    g = torch.Generator().manual_seed(seed)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    ft = {k: (v + torch.randn(v.shape, generator=g) if v.is_floating_point() else v + 7) for k, v in base.items()}
    return base, ft


# -- task vectors ------------------------------------------------------------------------------

def test_task_vector_floats_only_and_int_buffers_from_base():
    torch.manual_seed(0)
    model = Deep(bn=True)
    base, ft = pair(model)
    tau = e.task_vector(base, ft)
    assert "features.1.num_batches_tracked" not in tau
    assert "features.1.running_mean" in tau and "features.1.running_var" in tau
    torch.testing.assert_close(tau["features.0.weight"], ft["features.0.weight"] - base["features.0.weight"])
    out = e.apply_to(base, tau, 0.5)
    assert torch.equal(out["features.1.num_batches_tracked"], base["features.1.num_batches_tracked"])
    torch.testing.assert_close(out["classifier.bias"], base["classifier.bias"] + 0.5 * tau["classifier.bias"])
    model.load_state_dict(out)  # loads as is


def test_different_architectures_refused_in_one_line():
    a, b = nn.Linear(3, 2).state_dict(), nn.Linear(3, 4).state_dict()
    with pytest.raises(ConfigError) as err:
        e.task_vector(a, b)
    assert "different architecture" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="different architecture"):
        e.task_vector(a, nn.Linear(3, 2, bias=False).state_dict())
    with pytest.raises(ConfigError, match="different keys"):
        e.merged_vector([{"a": torch.ones(1)}, {"b": torch.ones(1)}])


# -- layer blocks ------------------------------------------------------------------------------

EXPECTED_L = {"mlp": 2, "resnet18": 8, "reduced-resnet18": 8, "sharp-conv": 4}


@pytest.mark.parametrize("name", [n for n, b in BACKBONES.items() if b.builtin])
def test_builtin_backbones_blocks_contiguous(name):
    model = build_backbone(name, (1, 28, 28), 10)
    mapping = e.layer_map(model)
    used = sorted({v for v in mapping.values() if v is not None})
    assert used == list(range(EXPECTED_L[name])) == list(range(e.num_layers(mapping)))
    assert set(mapping) == set(model.state_dict())
    assert all(mapping[k] is None for k in mapping if k.startswith("classifier."))
    ordered = [v for v in mapping.values() if v is not None]
    assert ordered == sorted(ordered)  # blocks follow the network's order
    if "resnet" in name:  # the stem is outside, as the ViT's patch embedding
        assert mapping["features.0.weight"] is None and mapping["features.1.running_var"] is None
        assert mapping["features.3.conv1.weight"] == 0 and mapping["features.10.bn2.bias"] == 7


def test_mlp_blocks_by_name():
    mapping = e.layer_map(build_backbone("mlp", (1, 28, 28), 10))
    assert mapping == {"features.1.weight": 0, "features.1.bias": 0, "features.3.weight": 1, "features.3.bias": 1,
                       "classifier.weight": None, "classifier.bias": None}


def test_user_blocks_and_mapping():
    model = Deep()
    keys = model.state_dict().keys()
    mapping, num = e.resolve_layers(keys, ["features.0", "features.4", "classifier"])
    assert num == 3 and mapping["classifier.bias"] == 2 and mapping["features.2.weight"] is None
    mapping, num = e.resolve_layers(keys, {"features.0.weight": 0, "classifier.weight": 1})
    assert num == 2 and mapping["features.0.bias"] is None
    for bad, words in [({"features.0.weight": 0, "classifier.weight": 2}, "contiguous"),
                       ({"nope.weight": 0}, "lacks"), (["features.9"], "matches no"),
                       (["features", "features.0"], "two layer blocks"), (3, "expected")]:
        with pytest.raises(ConfigError, match=words):
            e.resolve_layers(keys, bad)
    with pytest.raises(ConfigError, match="pass layers="):
        e.resolve_layers(keys, None)
    with pytest.raises(ConfigError, match="no built-in layer blocks"):
        e.layer_map(nn.Sequential(nn.Linear(2, 2)))


# -- LiNeS -------------------------------------------------------------------------------------

def test_lines_coefficients_hand_values():
    assert e.lines_coefficients(3, 0.2, 0.6) == pytest.approx([0.2, 0.5, 0.8])  # ℓ/(L−1): 0, ½, 1
    assert e.lines_coefficients(5, 0.0, 1.0) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    with pytest.raises(ConfigError, match="at least 2"):
        e.lines_coefficients(1, 0.5, 0.5)


def _expected(base, ft, coef_of):
    return {k: (base[k] + coef_of(k) * (ft[k] - base[k]) if base[k].is_floating_point() else base[k]) for k in base}


def _close(a, b):
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


def test_lines_scale_per_block_and_outside():
    torch.manual_seed(0)
    model = Deep()
    base, ft = pair(model)
    tau = e.task_vector(base, ft)
    mapping, num = e.resolve_layers(tau, model)
    out = e.apply_to(base, e.lines_scale(tau, mapping, num, 0.2, 0.6))
    coef = {"features.0": 0.2, "features.2": 0.5, "features.4": 0.8, "classifier": 0.2}  # head: α, not α+β
    _close(out, _expected(base, ft, lambda k: coef[k.rsplit(".", 1)[0]]))


def test_lines_edit_single_task_beta_one_minus_alpha():
    torch.manual_seed(0)
    model = Deep(bn=True)
    base, ft = pair(model)
    out = e.lines_edit(base, ft, 0.3, layers=model)
    # blocks features.0, features.1 (batch norm, buffers included), features.2, features.4: L = 4
    coef = {"features.0": 0.3, "features.1": 0.3 + 0.7 / 3, "features.2": 0.3 + 0.7 * 2 / 3,
            "features.4": 1.0, "classifier": 0.3}
    _close(out, _expected(base, ft, lambda k: coef[k.rsplit(".", 1)[0]]))


def test_lines_identities():
    torch.manual_seed(0)
    model = build_backbone("mlp", (1, 8, 8), 3)
    base, ft = pair(model)
    tau = e.task_vector(base, ft)
    mapping, num = e.resolve_layers(tau, model)
    same_ft = e.apply_to(base, e.lines_scale(tau, mapping, num, 1.0, 0.0))
    _close(same_ft, ft)
    same_base = e.apply_to(base, e.lines_scale(tau, mapping, num, 0.0, 0.0))
    assert all(torch.equal(same_base[k], base[k]) for k in base)
    _close(e.lines_edit(base, ft, 1.0, layers=model), ft)
    # single task at α = 0: the classifier back at the base, the last hidden layer fully updated
    zero = e.lines_edit(model, ft, 0.0)
    assert torch.equal(zero["classifier.weight"], base["classifier.weight"])
    assert torch.equal(zero["features.1.weight"], base["features.1.weight"])
    torch.testing.assert_close(zero["features.3.weight"], ft["features.3.weight"])


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), "0.5", True])
def test_lines_alpha_out_of_range(alpha):
    model = build_backbone("mlp", (1, 8, 8), 3)
    with pytest.raises(ConfigError) as err:
        e.lines_edit(model, model.state_dict(), alpha)
    assert "α" in str(err.value) and "\n" not in str(err.value)


# -- TIES and task arithmetic on three hand-made task vectors -----------------------------------
# Two tensors a and b (d = 6 entries per vector), k = 50%: each vector keeps the entries with
# |x| >= its (6 − ⌊6·0.5⌋) = 3rd smallest magnitude, i.e. 4 of 6, over a and b together.

T1 = {"a": [6.0, -1.0, 0.5], "b": [0.3, 0.2, -0.1]}   # 3rd smallest |x|: 0.3 -> keeps 6, -1, 0.5, 0.3
T2 = {"a": [-3.0, 2.0, 0.1], "b": [1.0, -5.0, 0.3]}   # 3rd smallest: 1   -> keeps -3, 2, 1, -5
T3 = {"a": [-2.0, -6.0, 0.4], "b": [0.5, 1.0, 3.0]}   # 3rd smallest: 1   -> keeps -2, -6, 1, 3
TRIMMED = [[6, -1, 0.5, 0.3, 0, 0], [-3, 2, 0, 1, -5, 0], [-2, -6, 0, 0, 1, 3]]
SIGNS = [1, -1, 1, 1, -1, 1]            # sums 1, -5, 0.5, 1.3, -4, 3 (entry 0: mass +, count −)
TIES = [6 / 1, (-1 - 6) / 2, 0.5, (0.3 + 1) / 2, -5 / 1, 3 / 1]   # mean of the agreeing entries only
SUM = [1.0, -5.0, 1.0, 1.8, -3.8, 3.2]  # untrimmed Σ τ_i


def _taus():
    return [{k: torch.tensor(v) for k, v in t.items()} for t in (T1, T2, T3)]


def _flat(tau):
    return torch.cat([tau["a"], tau["b"]])


def test_ties_steps_by_hand():
    flat = torch.stack([_flat(t) for t in _taus()])
    trimmed = e.trim_top_k(flat, 50)
    torch.testing.assert_close(trimmed, torch.tensor(TRIMMED))
    torch.testing.assert_close(e.elect_signs(trimmed), torch.tensor(SIGNS, dtype=torch.float32))
    torch.testing.assert_close(_flat(e.ties_vector(_taus(), k=50)), torch.tensor(TIES))


def test_ties_merge_and_task_arithmetic_models():
    base = {"a": torch.tensor([1.0, 2.0, 3.0]), "b": torch.tensor([-1.0, 0.0, 1.0])}
    ft = [{k: base[k] + t[k] for k in base} for t in _taus()]
    merged = e.merge(base, ft, "ties", lam=0.5, k=50)
    torch.testing.assert_close(_flat(merged), _flat(base) + 0.5 * torch.tensor(TIES))
    ta = e.merge(base, ft, "task_arithmetic", lam=0.3)
    torch.testing.assert_close(_flat(ta), _flat(base) + 0.3 * torch.tensor(SUM))


def test_zero_sum_entries_take_the_majority_sign():
    trimmed = torch.tensor([[1.0, 2.0, 1.0], [-1.0, 1.0, 1.0]])   # sums 0, 3, 2 -> signs 0, +, + -> 0 becomes +
    torch.testing.assert_close(e.elect_signs(trimmed), torch.tensor([1.0, 1.0, 1.0]))
    trimmed = torch.tensor([[1.0, -2.0, -1.0], [-1.0, -1.0, 0.0]])
    torch.testing.assert_close(e.elect_signs(trimmed), torch.tensor([-1.0, -1.0, -1.0]))
    torch.testing.assert_close(e.disjoint_mean(trimmed, e.elect_signs(trimmed)), torch.tensor([-1.0, -1.5, -1.0]))


def test_trim_keeps_floor_plus_one_and_at_least_one():
    row = torch.tensor([[5.0, -4.0, 3.0, 2.0, -1.0, 0.5, 0.4, 0.3, 0.2, 0.1]])
    assert int((e.trim_top_k(row, 20) != 0).sum()) == 3     # ⌊10·0.2⌋ + 1, the reference's kthvalue rule
    assert int((e.trim_top_k(row, 5) != 0).sum()) == 1      # ⌊0.5⌋ + 1
    torch.testing.assert_close(e.trim_top_k(row, 100), row)
    for k in (0, -5, 101, "20"):
        with pytest.raises(ConfigError, match="percentage"):
            e.trim_top_k(row, k)


def test_merge_bad_inputs():
    base = {"a": torch.zeros(3)}
    with pytest.raises(ConfigError, match="unknown merge method"):
        e.merge(base, [base], "average")
    with pytest.raises(ConfigError, match="no fine-tuned"):
        e.merge(base, [])
    with pytest.raises(ConfigError, match="λ"):
        e.merge(base, [base], lam=float("inf"))


# -- multi-task LiNeS ----------------------------------------------------------------------------

def test_merged_alpha_by_hand():
    taus = _taus()
    ties = e.ties_vector(taus, k=50)
    l1_sum = sum(abs(x) for x in SUM)        # 15.8, the untrimmed vectors' sum
    l1_ties = sum(abs(x) for x in TIES)      # 18.65
    assert e.merged_alpha(taus, ties) == pytest.approx(l1_sum / (3 * l1_ties))
    assert e.merged_alpha(taus, e.merged_vector(taus)) == pytest.approx(1 / 3)   # task arithmetic: 1/T
    with pytest.raises(ConfigError, match="zero"):
        e.merged_alpha(taus, {"a": torch.zeros(3), "b": torch.zeros(3)})


def test_lines_merge_ties_by_hand():
    base = {"a": torch.tensor([1.0, 2.0, 3.0]), "b": torch.tensor([-1.0, 0.0, 1.0])}
    ft = [{k: base[k] + t[k] for k in base} for t in _taus()]
    alpha = sum(abs(x) for x in SUM) / (3 * sum(abs(x) for x in TIES))
    out = e.lines_merge(base, ft, beta=0.4, method="ties", k=50, layers={"a": 0, "b": 1})
    ties = torch.tensor(TIES)
    torch.testing.assert_close(out["a"], base["a"] + alpha * ties[:3])
    torch.testing.assert_close(out["b"], base["b"] + (alpha + 0.4) * ties[3:])
    ta = e.lines_merge(base, ft, beta=0.4, layers=["a", "b"])
    torch.testing.assert_close(ta["b"], base["b"] + (1 / 3 + 0.4) * torch.tensor(SUM[3:]))


def test_merged_models_load_and_run():
    torch.manual_seed(0)
    model = build_backbone("mlp", (1, 8, 8), 3)
    fts = [pair(model, seed)[1] for seed in (1, 2)]
    for state in (e.merge(model, fts, "ties"), e.lines_merge(model, fts, 0.5, "ties"), e.lines_edit(model, fts[0], 0.1)):
        clone = build_backbone("mlp", (1, 8, 8), 3)
        clone.load_state_dict(state)
        assert clone(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


def test_merges_never_leave_a_negative_running_variance():
    """λ·T > 1 extrapolates the variances: below 0 they are set to 0 (count returned), the rest untouched."""
    base = {k: v.clone() for k, v in Deep(bn=True).state_dict().items()}
    base["features.1.running_var"] = torch.tensor([1.0, 1.0, 1.0, 1.0])
    ft = {k: v.clone() for k, v in base.items()}
    ft["features.1.running_var"] = torch.tensor([0.2, 0.5, 2.0, 1.0])
    merged = e.merge(base, [ft, ft], "task_arithmetic", lam=1.0)
    # 1 + 2·(0.2 − 1) = −0.6 → 0;  1 + 2·(0.5 − 1) = 0;  1 + 2·1 = 3;  1
    assert merged["features.1.running_var"].tolist() == [0.0, 0.0, 3.0, 1.0]
    both = e.lines_merge(base, [ft, ft], beta=1.5, method="task_arithmetic", layers=Deep(bn=True))
    assert both["features.1.running_var"].min() >= 0
    state = {"bn.running_var": torch.tensor([-1.0, 2.0]), "bn.weight": torch.tensor([-1.0])}
    assert e.clamp_running_var(state) == 1 and state["bn.running_var"].tolist() == [0.0, 2.0]
    assert state["bn.weight"].tolist() == [-1.0]
