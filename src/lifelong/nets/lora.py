"""LoRA adapters (Hu et al., "LoRA: low-rank adaptation of large language models", 2021, Sec. 4.1,
Eq. 3): a frozen layer ``W₀`` plus a trainable low-rank update, ``h = W₀x + (α/r)·B A x`` with
``A ∈ R^{r×in}``, ``B ∈ R^{out×r}``; ``A`` starts random and ``B`` at zero, so the adapted
layer equals the base one at initialisation.

Initialisation and scaling follow the ``peft`` library's defaults (``LoraConfig(init_lora_weights
=True)``, ``peft/tuners/lora/layer.py::LoraLayer.reset_lora_parameters`` and ``update_layer``):
``A`` Kaiming-uniform with ``a = √5`` (PyTorch's own ``nn.Linear`` initialisation: uniform in
``±1/√fan_in``), ``B`` zeros, scaling ``α/r``. A convolution's adapter is peft's: ``A`` a
convolution ``in → r`` with the layer's kernel, stride, padding and dilation, ``B`` a 1×1
convolution ``r → out``; stored here as matrices (``A``: ``r × in·kh·kw``, ``B``: ``out × r``),
so that ``ΔW = (α/r)·B A`` reshaped to the kernel's shape is the update of either kind.

* :class:`LoRALinear`, :class:`LoRAConv2d`: a layer wrapped (``.base`` frozen, ``.lora_A``,
  ``.lora_B`` trainable); :func:`add_lora` wraps a model's chosen layers in place,
  :func:`merge_lora` folds them back into plain layers with ``W₀ + ΔW``,
  :func:`lora_state_dict` / :func:`load_lora_state_dict` save and load the adapters alone.
* :class:`Adapter` is the factor pair itself; :func:`attach` adds adapters to a model's layers by
  forward hooks, leaving the model's modules and state dict as they are (the ``lora`` plug-in's
  way, :mod:`lifelong.plugins.lora`, so that a run's ``model.pt`` stays the base model).
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from lifelong.errors import ConfigError

Layer = Union[nn.Linear, nn.Conv2d]
ADAPTABLE = (nn.Linear, nn.Conv2d)


def check_rank_alpha(rank: int, alpha: float) -> tuple[int, float]:
    """``(r, α)`` checked: ``r`` an integer ``≥ 1``, ``α`` a positive finite number."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"LoRA rank must be an integer >= 1, got {rank!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
        raise ConfigError(f"LoRA alpha must be a positive number, got {alpha!r}")
    return rank, float(alpha)


def fan_in(layer: Layer) -> int:
    """The inputs one output of ``layer`` reads: ``in_features``, or ``in_channels·kh·kw``."""
    if isinstance(layer, nn.Linear):
        return layer.in_features
    if layer.groups != 1:
        raise ConfigError(f"LoRA on grouped convolutions (groups={layer.groups}) is not supported")
    return layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]


def out_size(layer: Layer) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


class Adapter(nn.Module):
    """The factors of one layer's adapter: ``A`` (``r × fan_in``), ``B`` (``out × r``), scaling ``α/r``."""

    def __init__(self, layer: Layer, rank: int, alpha: float, generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        rank, alpha = check_rank_alpha(rank, alpha)
        self.rank, self.alpha, self.scaling = rank, alpha, alpha / rank
        weight = layer.weight
        self.lora_A = nn.Parameter(torch.empty(rank, fan_in(layer), dtype=weight.dtype, device=weight.device))
        self.lora_B = nn.Parameter(torch.empty(out_size(layer), rank, dtype=weight.dtype, device=weight.device))
        self.reset(generator)

    @torch.no_grad()
    def reset(self, generator: Optional[torch.Generator] = None) -> None:
        """``A`` uniform in ``±1/√fan_in`` (Kaiming-uniform, ``a = √5``), ``B`` zeros."""
        bound = 1.0 / math.sqrt(self.lora_A.shape[1])
        self.lora_A.uniform_(-bound, bound, generator=generator)
        self.lora_B.zero_()

    def factors(self) -> dict[str, torch.Tensor]:
        return {"A": self.lora_A.detach().clone(), "B": self.lora_B.detach().clone()}

    @torch.no_grad()
    def load_factors(self, factors: Mapping[str, torch.Tensor]) -> None:
        for name, p in (("A", self.lora_A), ("B", self.lora_B)):
            if tuple(factors[name].shape) != tuple(p.shape):
                raise ConfigError(f"adapter factor {name} is {tuple(factors[name].shape)}, the layer's {tuple(p.shape)}")
            p.copy_(factors[name])


def delta_weight(layer: Layer, A: torch.Tensor, B: torch.Tensor, scaling: float) -> torch.Tensor:
    """``ΔW = scaling · B A`` in ``layer.weight``'s shape."""
    return (scaling * (B @ A)).reshape(layer.weight.shape)


def low_rank_forward(layer: Layer, x: torch.Tensor, A: torch.Tensor, B: torch.Tensor, scaling: float) -> torch.Tensor:
    """``scaling · B A x`` through the factors (two small layers, as peft computes it)."""
    if isinstance(layer, nn.Linear):
        return F.linear(F.linear(x, A), B) * scaling
    kernel = A.reshape(A.shape[0], layer.in_channels, *layer.kernel_size)
    hidden = F.conv2d(x, kernel, None, layer.stride, layer.padding, layer.dilation)
    return F.conv2d(hidden, B[:, :, None, None]) * scaling


def delta_forward(layer: Layer, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """The layer's operation with weight ``delta`` and no bias: what an update ``ΔW`` adds to its output."""
    if isinstance(layer, nn.Linear):
        return F.linear(x, delta)
    return F.conv2d(x, delta, None, layer.stride, layer.padding, layer.dilation)


class _Wrapped(nn.Module):
    """A frozen ``base`` layer plus its :class:`Adapter`: ``base(x) + (α/r)·B A x``."""

    def __init__(self, base: Layer, rank: int, alpha: float, generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.adapter = Adapter(base, rank, alpha, generator)

    @property
    def lora_A(self) -> nn.Parameter:
        return self.adapter.lora_A

    @property
    def lora_B(self) -> nn.Parameter:
        return self.adapter.lora_B

    @property
    def scaling(self) -> float:
        return self.adapter.scaling

    def delta_weight(self) -> torch.Tensor:
        return delta_weight(self.base, self.lora_A, self.lora_B, self.scaling)

    def merged(self) -> Layer:
        """A plain layer like ``base`` with weight ``W₀ + ΔW`` (trainable again)."""
        import copy

        layer = copy.deepcopy(self.base)
        with torch.no_grad():
            layer.weight.add_(self.delta_weight())
        for p in layer.parameters():
            p.requires_grad_(True)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + low_rank_forward(self.base, x, self.lora_A, self.lora_B, self.scaling)


class LoRALinear(_Wrapped):
    """``nn.Linear`` with a LoRA adapter (see the module docstring)."""


class LoRAConv2d(_Wrapped):
    """``nn.Conv2d`` with a LoRA adapter: ``A`` a convolution with the layer's kernel to ``r``
    channels, ``B`` a 1×1 convolution to the outputs."""


WRAPPED = (LoRALinear, LoRAConv2d)


def adaptable_layers(model: nn.Module, layers: Optional[Sequence[str]] = None) -> list[str]:
    """The names of the layers to adapt: ``layers`` checked (each must be an ``nn.Linear`` or
    ``nn.Conv2d`` of ``model``), or every such layer in module order."""
    found = {name: m for name, m in model.named_modules() if isinstance(m, ADAPTABLE) and name}
    if layers is None:
        if not found:
            raise ConfigError(f"{type(model).__name__} has no nn.Linear or nn.Conv2d layer to adapt")
        return list(found)
    names = list(layers)
    modules = dict(model.named_modules())
    for name in names:
        if name not in modules:
            raise ConfigError(f"no layer {name!r} to adapt; the model's linear and conv layers: {', '.join(found)}")
        if name not in found:
            raise ConfigError(f"layer {name!r} is a {type(modules[name]).__name__}; LoRA adapts nn.Linear and "
                              f"nn.Conv2d layers: {', '.join(found)}")
    if not names or len(set(names)) != len(names):
        raise ConfigError("give each layer to adapt once, and at least one")
    return names


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def add_lora(model: nn.Module, layers: Optional[Sequence[str]] = None, rank: int = 8, alpha: float = 8.0,
             generator: Optional[torch.Generator] = None) -> nn.Module:
    """Wrap ``layers`` of ``model`` in place (default: every ``nn.Linear`` and ``nn.Conv2d``) with
    :class:`LoRALinear` / :class:`LoRAConv2d` of rank ``rank`` and scaling ``alpha / rank``, and
    freeze every other parameter: only the adapters train. Returns ``model``."""
    check_rank_alpha(rank, alpha)
    names = adaptable_layers(model, layers)
    for p in model.parameters():
        p.requires_grad_(False)
    for name in names:
        layer = model.get_submodule(name)
        cls = LoRALinear if isinstance(layer, nn.Linear) else LoRAConv2d
        _set_module(model, name, cls(layer, rank, alpha, generator))
    return model


def wrapped_layers(model: nn.Module) -> dict[str, _Wrapped]:
    return {name: m for name, m in model.named_modules() if isinstance(m, WRAPPED)}


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every wrapped layer of ``model`` by a plain one with weight ``W₀ + (α/r)·B A``;
    the model then has its original modules and state-dict keys. Returns ``model``."""
    for name, module in wrapped_layers(model).items():
        _set_module(model, name, module.merged())
    return model


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters of ``model`` alone: ``{"<layer>.lora_A": A, "<layer>.lora_B": B}``."""
    out = {}
    for name, module in wrapped_layers(model).items():
        out[f"{name}.lora_A"] = module.lora_A.detach().clone()
        out[f"{name}.lora_B"] = module.lora_B.detach().clone()
    return out


def load_lora_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load adapters saved by :func:`lora_state_dict` into ``model``'s wrapped layers; one line
    for a missing, extra or differently shaped adapter."""
    wrapped = wrapped_layers(model)
    expected = {f"{n}.lora_{f}" for n in wrapped for f in "AB"}
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or extra:
        raise ConfigError(f"adapters do not fit this model: missing {missing[:3]}, unexpected {extra[:3]}")
    for name, module in wrapped.items():
        module.adapter.load_factors({"A": state[f"{name}.lora_A"], "B": state[f"{name}.lora_B"]})


def attach(model: nn.Module, layers: Iterable[str],
           extra: Callable[[str, Layer, torch.Tensor], Optional[torch.Tensor]]) -> list:
    """Forward hooks on ``model``'s ``layers``: each output gets ``extra(name, layer, input)``
    added (nothing when it returns ``None``). Returns the hook handles (``.remove()`` detaches)."""
    handles = []
    for name in layers:
        layer = model.get_submodule(name)

        def hook(module, inputs, output, name=name):
            added = extra(name, module, inputs[0])
            return output if added is None else output + added

        handles.append(layer.register_forward_hook(hook))
    return handles


__all__ = ["ADAPTABLE", "Adapter", "LoRAConv2d", "LoRALinear", "adaptable_layers", "add_lora", "attach",
           "check_rank_alpha", "delta_forward", "delta_weight", "lora_state_dict", "load_lora_state_dict",
           "low_rank_forward", "merge_lora", "wrapped_layers"]
