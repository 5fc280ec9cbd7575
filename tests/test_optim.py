import pytest
import torch

from lifelong.optim import SGD


@pytest.mark.parametrize("kwargs", [
    {}, {"momentum": 0.9}, {"weight_decay": 0.01}, {"momentum": 0.5, "weight_decay": 1e-3, "nesterov": True},
])
def test_same_updates_as_torch_sgd(kwargs):
    torch.manual_seed(0)
    ours = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    theirs.load_state_dict(ours.state_dict())
    a = SGD(ours.parameters(), lr=0.1, **kwargs)
    b = torch.optim.SGD(theirs.parameters(), lr=0.1, **kwargs)
    for step in range(5):
        x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
        for model, opt in ((ours, a), (theirs, b)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_lr_is_read_from_param_groups_and_state_round_trips():
    w = torch.nn.Parameter(torch.ones(3))
    opt = SGD([w], lr=1.0, momentum=0.9)
    w.grad = torch.ones(3)
    opt.step()
    opt.param_groups[0]["lr"] = 0.0
    opt.step()
    assert torch.allclose(w, torch.zeros(3))
    other = SGD([torch.nn.Parameter(torch.ones(3))], lr=5.0, momentum=0.9)
    other.load_state_dict(opt.state_dict())
    assert other.param_groups[0]["lr"] == 0.0 and torch.allclose(other.momentum_buffers[0], torch.full((3,), 1.9))
