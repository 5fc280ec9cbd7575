"""RESTOR-style recovery (lifelong.unlearn.recovery, Rezaei et al., TMLR 2025) and corruption
forget sets (``corrupt:FRACTION[:SEED]``): the relabelling rule reproduced by hand, its wrong
labels never the true one and uniform over the others, the seed written in the spec or the run's;
the recovery measures on models whose predictions are fixed by hand, each failing on a plausible
wrong variant; the corrupted model; ``corrupt:`` in ``lifelong run --forget`` (the retrain) and
refused by ``lifelong unlearn`` on a run trained on true labels in one line (the run setting
``relabel``: tests/test_unlearn_relabel.py)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import lifelong.unlearn as u
from lifelong.errors import ConfigError
from lifelong.nets.mlp import MLP
from lifelong.seeding import numpy_generator
from lifelong.unlearn.data import batches
from tests.conftest import make_source, run_cli, tiny_run_flags


# -- the relabelling rule ------------------------------------------------------------------------
def hand_corruption(labels: list[int], classes: int, fraction: float, seed: int) -> dict[int, int]:
    """The documented rule, written out: draw round(f·N) positions, then one offset in 1..C-1 per
    position in increasing order; the wrong label is (y + offset) mod C."""
    gen = numpy_generator(seed, "unlearn-corrupt")
    chosen = sorted(int(i) for i in gen.choice(len(labels), size=int(round(fraction * len(labels))), replace=False))
    wrong = {}
    for i in chosen:
        wrong[i] = (labels[i] + int(gen.integers(1, classes))) % classes
    return wrong


def test_corruption_follows_the_rule_written_by_hand():
    labels = [i % 5 for i in range(40)]
    y = torch.tensor(labels)
    expected = hand_corruption(labels, 5, 0.25, seed=7)
    idx, wrong = u.corruption("corrupt:0.25:7", y, 5, seed=0)
    assert idx.tolist() == sorted(expected) and wrong.tolist() == [expected[i] for i in sorted(expected)]
    relabelled = u.corrupt_labels("corrupt:0.25:7", y, 5)
    assert [i for i in range(40) if relabelled[i] != y[i]] == sorted(expected)  # every chosen one changed
    assert u.forget_mask("corrupt:0.25:7", y, 5).nonzero().flatten().tolist() == sorted(expected)
    assert torch.equal(y, torch.tensor(labels))  # the input labels untouched


def test_corruption_seed_is_the_specs_else_the_runs():
    y = torch.arange(200) % 10
    assert torch.equal(u.corrupt_labels("corrupt:0.1", y, 10, seed=3), u.corrupt_labels("corrupt:0.1:3", y, 10, seed=9))
    assert not torch.equal(u.corrupt_labels("corrupt:0.1", y, 10, seed=3), u.corrupt_labels("corrupt:0.1", y, 10, 4))
    # the draw is its own: not random:'s examples at the same seed
    assert not torch.equal(u.forget_mask("corrupt:0.1", y, 10, 3), u.forget_mask("random:0.1", y, 10, 3))


def test_wrong_labels_are_uniform_over_the_other_classes():
    y = torch.zeros(60000, dtype=torch.int64)  # every example class 0, four classes
    idx, wrong = u.corruption("corrupt:0.5:1", y, 4)
    assert len(idx) == 30000 and len(set(idx.tolist())) == 30000
    counts = torch.bincount(wrong, minlength=4).tolist()
    assert counts[0] == 0  # never the true label
    assert all(abs(c / 30000 - 1 / 3) < 0.01 for c in counts[1:])  # fails on offsets 1..C-2 (class 3 never)


def test_corrupt_specs_parse_and_bad_ones_are_one_line():
    assert str(u.parse_forget_spec("corrupt:0.05")) == "corrupt:0.05"
    spec = u.parse_forget_spec("corrupt: 0.05 : 3")
    assert (spec.kind, spec.fraction, spec.seed, str(spec)) == ("corrupt", 0.05, 3, "corrupt:0.05:3")
    for bad, said in (("corrupt:1.5", "strictly between"), ("corrupt:0.1:x", "seed must be an integer"),
                      ("corrupt:0.1:-1", "seed must be an integer"), ("corrupt:", "is not understood"),
                      ("corrupt:a", "must be a number")):
        with pytest.raises(ConfigError, match=said):
            u.parse_forget_spec(bad)
    with pytest.raises(ConfigError, match="empty"):
        u.forget_mask("corrupt:0.001", torch.arange(10) % 2, 2)
    with pytest.raises(ConfigError, match="not a corruption"):
        u.corruption("random:0.1", torch.arange(10) % 2, 2)


def test_unlearn_data_of_a_corruption_carries_both_labels():
    source = make_source(num_classes=4, per_class_train=10)
    data = u.UnlearnData.from_source(source, "corrupt:0.2", seed=5)
    idx, wrong = u.corruption("corrupt:0.2", source.train_y, 4, seed=5)
    assert torch.equal(data.clean_y, source.train_y) and data.forget.nonzero().flatten().tolist() == idx.tolist()
    assert torch.equal(data.forget_y, wrong)  # the methods see the labels the corrupted model learnt
    assert torch.equal(data.retain_y, source.train_y[~data.forget])
    assert u.UnlearnData.from_source(source, "random:0.2").clean_y is None


# -- recovery measures on predictions fixed by hand ------------------------------------------------
class Fixed(nn.Module):
    """Predicts ``preds[i]`` for the input ``[i]`` (a one-hot logit row per example)."""

    def __init__(self, preds: list[int], classes: int = 4) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.eye(classes)[torch.tensor(preds)] * 5.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x[:, 0].long()]


X = torch.arange(5.0).unsqueeze(1)
CLEAN_Y = torch.tensor([0, 1, 2, 3, 0])
CORRUPT_Y = torch.tensor([1, 2, 3, 0, 1])
CLEAN = Fixed([0, 1, 2, 3, 3])       # clean model: right on 4 of 5 (wrong on the last)
CORRUPTED = Fixed([1, 2, 2, 0, 3])   # follows the corrupted labels on 3 of 5
RESTORED = Fixed([0, 1, 2, 0, 3])    # back to the clean model on 4 of 5
FORGOT = Fixed([3, 0, 1, 2, 2])      # neither the corrupted labels nor the clean ones: merely forgot


def test_recovery_measures_by_hand():
    m = u.recovery_measures(CORRUPTED, CLEAN, X, CLEAN_Y, CORRUPT_Y)
    assert m == pytest.approx({"clean_accuracy": 1 / 5, "corrupt_accuracy": 3 / 5, "clean_agreement": 2 / 5})
    r = u.recovery_measures(RESTORED, CLEAN, X, CLEAN_Y, CORRUPT_Y)
    # agreement (4/5: with the clean model's own mistake on the last input) is not clean accuracy (3/5)
    assert r == pytest.approx({"clean_accuracy": 3 / 5, "corrupt_accuracy": 1 / 5, "clean_agreement": 4 / 5})


def test_recovery_ratio_closes_the_gap_and_shows_who_merely_forgets():
    rows = u.recovery_report(CLEAN, CORRUPTED, {"restored": RESTORED, "forgot": FORGOT}, X, CLEAN_Y, CORRUPT_Y)
    assert list(rows) == ["clean", "corrupted", "restored", "forgot"]
    assert rows["clean"]["recovery"] == pytest.approx(1.0) and rows["corrupted"]["recovery"] == pytest.approx(0.0)
    # clean 4/5, corrupted 1/5: restored 3/5 closes (3 − 1)/(4 − 1) = 2/3 of the gap
    assert rows["restored"]["recovery"] == pytest.approx(2 / 3)
    assert rows["restored"]["recovery"] != pytest.approx(3 / 5 / (4 / 5))  # not a ratio to the clean accuracy
    # the forgetting model drops the corrupted labels (0/5) but recovers nothing: below the corrupted model
    assert rows["forgot"]["corrupt_accuracy"] == 0.0
    assert rows["forgot"]["recovery"] == pytest.approx((0 / 5 - 1 / 5) / (4 / 5 - 1 / 5))


def test_recovery_ratio_edge_cases_and_bad_input():
    assert u.recovery_ratio(0.7, 0.9, 0.5) == pytest.approx(0.5)
    assert math.isnan(u.recovery_ratio(0.7, 0.5, 0.5))  # no gap to close
    with pytest.raises(ConfigError, match="may not be called"):
        u.recovery_report(CLEAN, CORRUPTED, {"clean": RESTORED}, X, CLEAN_Y, CORRUPT_Y)
    with pytest.raises(ConfigError, match="affected inputs"):
        u.recovery_measures(CLEAN, CLEAN, X[:0], CLEAN_Y[:0], CORRUPT_Y[:0])
    data = u.UnlearnData.from_source(make_source(), "random:0.1")
    with pytest.raises(ConfigError, match="corruption's data"):
        u.recovery_of(data, CLEAN, CORRUPTED, {})


# -- the corrupted model ------------------------------------------------------------------------------
def trained(data: u.UnlearnData, epochs: int = 30) -> nn.Module:
    torch.manual_seed(0)
    model = MLP(data.train_x[0].numel(), data.num_classes, hidden=32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(epochs):
        for bx, by in batches(data.train_x, data.clean_y, 16, torch.Generator().manual_seed(0)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(bx), by).backward()
            opt.step()
    return model


def test_corrupt_model_learns_the_wrong_labels_and_recovery_of_uses_the_clean_ones():
    data = u.UnlearnData.from_source(make_source(num_classes=4, per_class_train=30), "corrupt:0.1", seed=0)
    clean = trained(data)
    before = [p.detach().clone() for p in clean.parameters()]
    bad = u.corrupt_model(clean, data, epochs=200, lr=0.2, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(before, clean.parameters()))  # the clean model untouched
    rows = u.recovery_of(data, clean, bad, {"finetune": u.finetune(bad, data, epochs=20, lr=0.05)})
    assert rows["clean"]["corrupt_accuracy"] <= 0.25 and rows["corrupted"]["corrupt_accuracy"] >= 0.75
    assert rows["corrupted"]["clean_accuracy"] < rows["clean"]["clean_accuracy"]
    assert rows["finetune"]["corrupt_accuracy"] < rows["corrupted"]["corrupt_accuracy"]
    again = u.corrupt_model(clean, data, epochs=200, lr=0.2, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(bad.parameters(), again.parameters()))  # seeded
    with pytest.raises(ConfigError, match="epochs"):
        u.corrupt_model(clean, data, epochs=0)


# -- through the command line ------------------------------------------------------------------------
def test_corrupt_forget_set_is_a_retrain_and_lifelong_unlearn_refuses_it_on_a_clean_run(data_root, tmp_path,
                                                                                       capsys):
    code, printed, err = run_cli(["run", *tiny_run_flags(data_root), "--forget", "corrupt:0.1", "--dry-run"], capsys)
    assert code == 0, err
    assert "forget: corrupt:0.1" in printed and "forget_count: 6" in printed  # round(0.1 * 60) left out
    run = tmp_path / "clean"
    assert run_cli(["run", *tiny_run_flags(data_root), "--out", str(run)], capsys)[0] == 0
    out = tmp_path / "u"
    code, _, err = run_cli(["unlearn", str(run), "--forget", "corrupt:0.1", "--method", "ssd",
                            "--out", str(out)], capsys)
    assert code == 2 and "trained on true labels" in err and len(err.strip().splitlines()) == 1 and not out.exists()
    code, _, err = run_cli(["run", *tiny_run_flags(data_root), "--forget", "corrupt:0.1:x", "--dry-run"], capsys)
    assert code == 2 and "seed must be an integer" in err and len(err.strip().splitlines()) == 1

