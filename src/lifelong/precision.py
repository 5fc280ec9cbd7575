"""Mixed precision of the training step (``precision: fp32 | bf16 | fp16``, ``--precision``).

``bf16`` and ``fp16`` run the step's forward and objective under ``torch.autocast`` (matrix
products and convolutions in the low precision, reductions and the loss in float32; the
parameters, their gradients and the optimiser stay float32). ``fp16`` also scales the loss
with a ``torch.amp.GradScaler`` (its range is too narrow for small gradients; a step whose
scaled gradients overflow is skipped and the scale lowered) and is refused on the CPU, where
autocast's float16 covers few operations; ``bf16`` has float32's range and needs no scaler. The
hooks' own forwards (refresh learning's unlearning, A-GEM's reference gradient, the task-end
statistics, evaluation) run in float32. ``fp32``: nothing changes, the step is the plain one.

The scaler reads its overflow flag on the host at each update (its one synchronisation with
the device); bf16 adds none.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager

import torch

from lifelong.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device | str) -> None:
    """Refuse, in one line, an unknown precision or fp16 on the CPU."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if precision == "fp16" and torch.device(device).type == "cpu":
        raise ConfigError("precision fp16 needs a GPU (on the CPU autocast's float16 covers few operations); "
                          "use --precision bf16 or fp32 on the CPU")


@dataclass
class Precision:
    """How the step runs: ``autocast()`` around its forward and objective, and the ``scaler``
    (fp16 only, else ``None``)."""

    name: str
    device_type: str
    scaler: Any = None

    def autocast(self) -> ContextManager:
        if self.name == "fp32":
            return nullcontext()
        return torch.autocast(self.device_type, dtype=_DTYPES[self.name])


def build_precision(precision: str, device: torch.device | str, *, allow_cpu_fp16: bool = False) -> Precision | None:
    """The step's :class:`Precision`, or ``None`` for fp32 (the plain step). ``allow_cpu_fp16``:
    for tests of the scaler's path on a machine without a GPU."""
    if not allow_cpu_fp16:
        check_precision(precision, device)
    if precision == "fp32":
        return None
    kind = torch.device(device).type
    scaler = torch.amp.GradScaler(kind) if precision == "fp16" else None
    return Precision(precision, kind, scaler)


def channels_last(model: torch.nn.Module, backbone: str, device: torch.device) -> torch.nn.Module:
    """A ResNet on a CUDA device in the channels-last memory layout (faster convolutions with
    cuDNN, notably under autocast); any other model or device unchanged."""
    if device.type == "cuda" and "resnet" in backbone:
        return model.to(memory_format=torch.channels_last)
    return model
