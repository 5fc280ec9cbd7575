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
    """``train_x``/``train_y``: the training set ``D`` (the source's whole training set, or the
    examples a run trained on); ``forget``: boolean mask over it (``True`` = in ``D_f``);
    ``test_x``/``test_y``: the test set. Inputs are the model's inputs (floats, normalised as the
    run's stream normalises them). ``clean_y``: for a corruption (``corrupt:`` forget sets), the
    training set's true labels, ``train_y`` then holding the corrupted ones (what the corrupted
    model was trained on and the methods see); else ``None``. ``forget_classes``: for full-class
    forgetting (``classes:``), the forgotten classes: the test set then splits into their
    examples and the retained classes' (:func:`lifelong.unlearn.accuracies`). ``positions``: where
    ``D``'s rows sit in the source's training set (:meth:`from_source` sets it)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    forget: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    clean_y: torch.Tensor | None = None
    forget_classes: tuple[int, ...] = ()
    positions: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.forget.dtype != torch.bool or self.forget.shape != self.train_y.shape:
            raise ConfigError("the forget mask must be a boolean tensor with one entry per training example")
        if self.clean_y is not None and self.clean_y.shape != self.train_y.shape:
            raise ConfigError("the clean labels must have one entry per training example")

    @classmethod
    def from_source(cls, source: Source, forget: str | torch.Tensor, seed: int = 0, *,
                    examples: torch.Tensor | None = None, trained_y: torch.Tensor | None = None,
                    forget_classes: tuple[int, ...] = ()) -> "UnlearnData":
        """A source's train and test sets (``x / 255``, then the source's mean and std) with a
        forget set given as a mask over the source's training set or as a spec string
        (:func:`lifelong.unlearn.forget_mask`); a ``corrupt:`` spec also gives the forget examples
        their wrong labels (``clean_y`` the true ones), a ``classes:`` spec sets ``forget_classes``.

        ``examples`` (increasing positions): ``D`` is these training examples only (those a run
        trained on), the mask cut to them. ``trained_y``: the labels the model was trained on
        over the whole training set, when they are not the source's (a run with ``relabel``):
        ``train_y`` then, ``clean_y`` the source's."""
        train_y, clean_y = source.train_y, None
        if trained_y is not None:
            train_y, clean_y = trained_y, source.train_y
        if isinstance(forget, str):
            spec = parse_forget_spec(forget)
            forget = forget_mask(spec, source.train_y, source.num_classes, seed)
            forget_classes = spec.classes
            if spec.kind == "corrupt":
                train_y, clean_y = corrupt_labels(spec, source.train_y, source.num_classes, seed), source.train_y
        stream = Stream(source.name, source, [], "class-il")
        train = torch.arange(len(source.train_y), device=source.train_y.device) if examples is None else examples
        test = torch.arange(len(source.test_y), device=source.test_y.device)
        return cls(stream.inputs("train", train, 0), train_y[train], forget[train],
                   stream.inputs("test", test, 0), source.test_y, source.num_classes,
                   None if clean_y is None else clean_y[train], tuple(forget_classes), train)

    @property
    def test_forget(self) -> torch.Tensor:
        """Boolean mask over the test set: the examples of :attr:`forget_classes`."""
        return torch.isin(self.test_y, torch.tensor(self.forget_classes, dtype=self.test_y.dtype,
                                                    device=self.test_y.device))

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
