"""What every unlearning method and metric sees: the training set split into the forget set
``D_f`` and the retain set ``D_r`` (``D = D_r ∪ D_f``), and the test set, as float tensors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from lifelong.data.source import Source
from lifelong.data.streams import Stream
from lifelong.errors import ConfigError
from lifelong.unlearn.forget import corrupt_labels, forget_mask, parse_forget_spec


@dataclass
class UnlearnData:
    """``train_x``/``train_y``: the whole training set ``D``; ``forget``: boolean mask over it
    (``True`` = in ``D_f``); ``test_x``/``test_y``: the test set. Inputs are the model's inputs
    (floats, normalised as the run's stream normalises them). ``clean_y``: for a corruption
    (``corrupt:`` forget sets), the training set's true labels, ``train_y`` then holding the
    corrupted ones (what the corrupted model was trained on and the methods see); else ``None``."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    forget: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    clean_y: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.forget.dtype != torch.bool or self.forget.shape != self.train_y.shape:
            raise ConfigError("the forget mask must be a boolean tensor with one entry per training example")
        if self.clean_y is not None and self.clean_y.shape != self.train_y.shape:
            raise ConfigError("the clean labels must have one entry per training example")

    @classmethod
    def from_source(cls, source: Source, forget: str | torch.Tensor, seed: int = 0) -> "UnlearnData":
        """A source's train and test sets (``x / 255``, then the source's mean and std) with a
        forget set given as a mask or as a spec string (:func:`lifelong.unlearn.forget_mask`); a
        ``corrupt:`` spec also gives the forget examples their wrong labels (``clean_y`` the true ones)."""
        train_y, clean_y = source.train_y, None
        if isinstance(forget, str):
            spec = parse_forget_spec(forget)
            forget = forget_mask(spec, source.train_y, source.num_classes, seed)
            if spec.kind == "corrupt":
                train_y, clean_y = corrupt_labels(spec, source.train_y, source.num_classes, seed), source.train_y
        stream = Stream(source.name, source, [], "class-il")
        train = torch.arange(len(source.train_y), device=source.train_y.device)
        test = torch.arange(len(source.test_y), device=source.test_y.device)
        return cls(stream.inputs("train", train, 0), train_y, forget,
                   stream.inputs("test", test, 0), source.test_y, source.num_classes, clean_y)

    @property
    def forget_x(self) -> torch.Tensor:
        return self.train_x[self.forget]

    @property
    def forget_y(self) -> torch.Tensor:
        return self.train_y[self.forget]

    @property
    def retain_x(self) -> torch.Tensor:
        return self.train_x[~self.forget]

    @property
    def retain_y(self) -> torch.Tensor:
        return self.train_y[~self.forget]


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(x, y)`` in consecutive batches of ``batch_size`` (the last one may be smaller), in the
    given order, or shuffled by ``generator`` when one is given (a ``DataLoader`` without
    ``drop_last``)."""
    if batch_size < 1:
        raise ConfigError(f"`batch_size` must be at least 1, got {batch_size}")
    order = None if generator is None else torch.randperm(len(y), generator=generator, device=generator.device)
    for start in range(0, len(y), batch_size):
        if order is None:
            yield x[start:start + batch_size], y[start:start + batch_size]
        else:
            idx = order[start:start + batch_size].to(y.device)
            yield x[idx], y[idx]
