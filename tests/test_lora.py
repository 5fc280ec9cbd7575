"""LoRA adapters (lifelong.nets.lora), each property against an expression written here."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from lifelong.errors import ConfigError
from lifelong.nets import build_backbone
from lifelong.nets.lora import (Adapter, LoRAConv2d, LoRALinear, add_lora, attach, delta_weight, load_lora_state_dict,
                                lora_state_dict, low_rank_forward, merge_lora)


def _nudge(model: nn.Module) -> None:
    """Give every B a random value (B = 0 at initialisation hides most mistakes)."""
    g = torch.Generator().manual_seed(5)
    for name, p in model.named_parameters():
        if name.endswith("lora_B"):
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_output_unchanged_at_initialisation_and_b_starts_at_zero():
    torch.manual_seed(0)
    model = build_backbone("mlp", (1, 28, 28), 10)
    x = torch.randn(4, 1, 28, 28)
    before = model(x)
    add_lora(model, rank=4, alpha=8)
    assert torch.equal(model(x), before)
    for name, p in model.named_parameters():
        if name.endswith("lora_B"):
            assert torch.count_nonzero(p) == 0
        if name.endswith("lora_A"):
            assert torch.count_nonzero(p) == p.numel()


def test_a_is_kaiming_uniform_as_torch_initialises_it():
    """peft's default: nn.init.kaiming_uniform_(A, a=√5) — the same draws under the same seed."""
    layer = nn.Linear(30, 7)
    adapter = Adapter(layer, 5, 5, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(3)
    expected = torch.empty(5, 30)
    nn.init.kaiming_uniform_(expected, a=math.sqrt(5))
    assert torch.allclose(adapter.lora_A, expected)


def test_forward_is_base_plus_alpha_over_r_times_b_a_x():
    layer = nn.Linear(6, 3)
    wrapped = LoRALinear(layer, 2, 6)
    _nudge(wrapped)
    x = torch.randn(5, 6)
    A, B = wrapped.lora_A.detach(), wrapped.lora_B.detach()
    expected = x @ layer.weight.detach().T + layer.bias.detach() + (6 / 2) * (x @ A.T @ B.T)
    assert torch.allclose(wrapped(x), expected, atol=1e-6)


def test_scaling_is_alpha_over_rank_not_rank_over_alpha():
    wrapped = LoRALinear(nn.Linear(4, 4), 2, 8)
    assert wrapped.scaling == 4.0


def test_merged_weights_equal_the_wrapped_forward_linear_and_conv():
    torch.manual_seed(0)
    model = build_backbone("reduced-resnet18", (3, 32, 32), 10).eval()
    add_lora(model, rank=3, alpha=6)
    _nudge(model)
    x = torch.randn(2, 3, 32, 32)
    wrapped = model(x)
    merge_lora(model)
    assert not any("lora" in k for k in model.state_dict())
    assert torch.allclose(model(x), wrapped, atol=1e-4)


def test_conv_adapter_shapes_and_delta():
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    wrapped = LoRAConv2d(conv, 2, 2)
    assert wrapped.lora_A.shape == (2, 3 * 3 * 3) and wrapped.lora_B.shape == (5, 2)
    _nudge(wrapped)
    x = torch.randn(2, 3, 8, 8)
    delta = wrapped.delta_weight()
    assert delta.shape == conv.weight.shape
    expected = conv(x) + torch.nn.functional.conv2d(x, delta, None, 2, 1)
    assert wrapped(x).shape == (2, 5, 4, 4)
    assert torch.allclose(wrapped(x), expected, atol=1e-5)


def test_gradients_reach_only_a_and_b():
    torch.manual_seed(0)
    model = add_lora(build_backbone("mlp", (1, 28, 28), 10), rank=2, alpha=2)
    _nudge(model)
    model(torch.randn(3, 1, 28, 28)).sum().backward()
    for name, p in model.named_parameters():
        if "lora_" in name:
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


def test_a_wrapped_layer_freezes_its_base():
    wrapped = LoRAConv2d(nn.Conv2d(2, 3, 3), 2, 2)
    assert [n for n, p in wrapped.named_parameters() if p.requires_grad] == ["adapter.lora_A", "adapter.lora_B"]


def test_adapters_alone_save_and_load():
    torch.manual_seed(0)
    a = add_lora(build_backbone("mlp", (1, 28, 28), 10), rank=2, alpha=2)
    _nudge(a)
    saved = lora_state_dict(a)
    assert set(saved) == {f"{n}.lora_{f}" for n in ("features.1", "features.3", "classifier") for f in "AB"}
    torch.manual_seed(0)
    b = add_lora(build_backbone("mlp", (1, 28, 28), 10), rank=2, alpha=2)
    load_lora_state_dict(b, saved)
    x = torch.randn(3, 1, 28, 28)
    assert torch.allclose(a(x), b(x))
    with pytest.raises(ConfigError, match="missing"):
        load_lora_state_dict(b, {k: v for k, v in saved.items() if "classifier" not in k})


def test_hooks_give_the_wrapped_forward():
    """attach(): the plug-in's way (model unchanged) adds the same low-rank path."""
    torch.manual_seed(0)
    model = build_backbone("mlp", (1, 28, 28), 10)
    plain = build_backbone("mlp", (1, 28, 28), 10)
    plain.load_state_dict(model.state_dict())
    add_lora(model, rank=2, alpha=4)
    _nudge(model)
    factors = {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}
    handles = attach(plain, factors, lambda name, layer, x: low_rank_forward(
        layer, x, factors[name].lora_A, factors[name].lora_B, factors[name].scaling))
    x = torch.randn(3, 1, 28, 28)
    assert torch.allclose(plain(x), model(x), atol=1e-6)
    assert set(plain.state_dict()) == {k.replace(".base", "") for k in model.state_dict() if "lora" not in k}
    for h in handles:
        h.remove()


def test_bad_rank_alpha_and_layers_are_one_line():
    model = build_backbone("mlp", (1, 28, 28), 10)
    for kwargs, match in (({"rank": 0}, "rank"), ({"alpha": -1.0}, "alpha"), ({"layers": ["features.2"]}, "ReLU"),
                          ({"layers": ["nope"]}, "no layer")):
        with pytest.raises(ConfigError, match=match):
            add_lora(model, **kwargs)


def test_delta_weight_is_scaled_b_times_a():
    layer = nn.Linear(4, 3)
    A, B = torch.randn(2, 4), torch.randn(3, 2)
    assert torch.allclose(delta_weight(layer, A, B, 0.5), 0.5 * torch.einsum("or,ri->oi", B, A))
