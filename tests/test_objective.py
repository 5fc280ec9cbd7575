import pytest
import torch
import torch.nn.functional as F

from lifelong.objective import TERMS, CrossEntropy, Objective, StepBatch, Term, register_term


def _batch(with_replay=True):
    g = torch.Generator().manual_seed(0)
    outputs = torch.randn(7, 4, generator=g)
    y = torch.tensor([0, 1, 2, 3])
    replays = [{"y": torch.tensor([1, 1, 0])}] if with_replay else []
    n = 7 if with_replay else 4
    return StepBatch(model=None, task=0, inputs=torch.zeros(n, 2), y=y, replays=replays, outputs=outputs[:n])


def test_cross_entropy_sources():
    b = _batch()
    cur = F.cross_entropy(b.outputs[:4], b.y)
    rep = F.cross_entropy(b.outputs[4:], b.replay["y"])
    assert torch.allclose(CrossEntropy("current")(b), cur)
    assert torch.allclose(CrossEntropy("replay")(b), rep)
    # "both" is the mean over all 7 examples: a size-weighted mix of the two
    assert torch.allclose(CrossEntropy("both")(b), (4 * cur + 3 * rep) / 7)


def test_without_replay_every_source_reduces_to_the_current_batch():
    b = _batch(with_replay=False)
    assert torch.allclose(CrossEntropy("both")(b), F.cross_entropy(b.outputs, b.y))
    assert CrossEntropy("replay")(b).item() == 0.0
    with pytest.raises(ValueError, match="`on` must be"):
        CrossEntropy("memory")


def test_objective_is_the_weighted_sum_of_its_terms():
    b = _batch()
    obj = Objective([(1.0, CrossEntropy("current")), (0.5, CrossEntropy("replay"))])
    assert obj.uses_replay
    assert torch.allclose(obj(b), CrossEntropy("current")(b) + 0.5 * CrossEntropy("replay")(b))
    assert not Objective([(1.0, CrossEntropy("current"))]).uses_replay


def test_a_new_term_is_one_small_registered_class():
    @register_term
    class LogitNorm(Term):
        name = "test-logit-norm"
        stores = ("logits",)

        def __call__(self, batch):
            return batch.logits.pow(2).mean()

        def end_task(self, state):
            self.ended = True

    assert TERMS["test-logit-norm"] is LogitNorm
    obj = Objective([(2.0, LogitNorm())])
    assert obj.stores == ("logits",)
    assert torch.allclose(obj(_batch()), 2 * _batch().outputs[:4].pow(2).mean())
    del TERMS["test-logit-norm"]
