"""Your own data: a source from arrays (NumPy or torch), from a torchvision data set, or from a
folder of images, and :func:`register_benchmark` to make it a benchmark that ``lifelong run
--benchmark NAME`` (with ``--import FILE``), sweeps and reports use like the built-in ones.

Sources hold images as uint8 ``(N, C, H, W)`` tensors: ``(N, H, W)`` gets one channel,
channels-last arrays ``(N, H, W, C)`` are transposed, and floats in ``[0, 1]`` are scaled to
``0..255``. A vector data set can be given as ``(N, 1, 1, D)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from lifelong.data.source import Source
from lifelong.errors import DataError


def _images(x: Any, what: str, channels_last: bool | None = None) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x.detach().cpu()
    if t.dim() == 3:
        t = t.unsqueeze(1)
    elif t.dim() == 4:
        if channels_last is None:  # (N, H, W, C) when the last axis looks like channels and the second does not
            channels_last = t.shape[-1] in (1, 3, 4) and t.shape[1] not in (1, 3, 4)
        if channels_last:
            t = t.permute(0, 3, 1, 2)
    if t.dim() != 4:
        raise DataError(f"{what}: images must be (N, H, W), (N, C, H, W) or (N, H, W, C), got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t.contiguous()
    if t.is_floating_point():
        if len(t) and (float(t.min()) < 0 or float(t.max()) > 1):
            raise DataError(f"{what}: float images must lie in [0, 1], found {float(t.min()):.3g}..{float(t.max()):.3g}")
        return (t * 255).round().to(torch.uint8).contiguous()
    if len(t) and (int(t.min()) < 0 or int(t.max()) > 255):
        raise DataError(f"{what}: integer images must lie in 0..255")
    return t.to(torch.uint8).contiguous()


def _labels(y: Any, what: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(y)) if not isinstance(y, torch.Tensor) else y.detach().cpu()
    if t.dim() != 1 or t.is_floating_point():
        raise DataError(f"{what}: labels must be a 1-d array of integers, got {t.dtype} {tuple(t.shape)}")
    return t.long()


def source_from_arrays(name: str, train_x: Any, train_y: Any, test_x: Any, test_y: Any, *,
                       num_classes: int | None = None, mean: Sequence[float] | None = None,
                       std: Sequence[float] | None = None, channels_last: bool | None = None) -> Source:
    """A source from train and test images and labels (NumPy arrays, torch tensors or lists);
    ``num_classes`` defaults to the largest label + 1; ``mean``/``std`` (per channel, on the
    ``[0, 1]`` scale) normalise the inputs. Four-dimensional images are ``(N, C, H, W)``, or
    ``(N, H, W, C)`` with ``channels_last=True`` (guessed when ``None``)."""
    tx, ty = _images(train_x, f"{name} train", channels_last), _labels(train_y, f"{name} train")
    vx, vy = _images(test_x, f"{name} test", channels_last), _labels(test_y, f"{name} test")
    if num_classes is None:
        num_classes = int(max(ty.max() if len(ty) else -1, vy.max() if len(vy) else -1)) + 1
    return Source(name, tx, ty, vx, vy, num_classes=num_classes,
                  mean=None if mean is None else tuple(mean), std=None if std is None else tuple(std))


def _dataset_arrays(dataset: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    data, targets = getattr(dataset, "data", None), getattr(dataset, "targets", None)
    if data is not None and targets is not None and len(data) == len(targets):  # MNIST, CIFAR, ...
        return _images(data, what), _labels(targets, what)
    images, labels = [], []
    for i in range(len(dataset)):
        x, y = dataset[i][:2]
        images.append(np.asarray(x))
        labels.append(int(y))
    return _images(np.stack(images), what), _labels(labels, what)


def source_from_torchvision(train: Any, test: Any, *, name: str | None = None, num_classes: int | None = None,
                            mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> Source:
    """A source from two map-style data sets (torchvision's or any with ``len`` and
    ``dataset[i] -> (image, label)``); their ``data``/``targets`` are used directly when present.
    Transforms of the data sets are not applied: augmentation belongs to the benchmark."""
    name = name or type(train).__name__.lower()
    tx, ty = _dataset_arrays(train, f"{name} train")
    vx, vy = _dataset_arrays(test, f"{name} test")
    classes = getattr(train, "classes", None)
    return source_from_arrays(name, tx, ty, vx, vy, num_classes=num_classes or (len(classes) if classes else None),
                              mean=mean, std=std)


def source_from_image_folder(root: str | Path, *, name: str | None = None, size: tuple[int, int] | None = None,
                             mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> Source:
    """A source from ``root/train/<class>/*`` and ``root/test/<class>/*`` image files (classes in
    sorted order of their folder names; every image the same size, or resized to ``size``)."""
    from PIL import Image

    root = Path(root)
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir()) if (root / "train").is_dir() else []
    if not classes:
        raise DataError(f"no class folders in {root / 'train'}; expected {root}/train/<class>/<image>")
    arrays: dict[str, tuple[list, list]] = {}
    mode = None
    for split in ("train", "test"):
        xs, ys = [], []
        for label, cls in enumerate(classes):
            for path in sorted((root / split / cls).glob("*")):
                if not path.is_file():
                    continue
                try:
                    with Image.open(path) as image:
                        mode = mode or ("L" if image.mode in ("L", "1", "I;16") else "RGB")
                        image = image.convert(mode)
                        if size is not None:
                            image = image.resize(size[::-1])
                        xs.append(np.asarray(image))
                except OSError as exc:
                    raise DataError(f"cannot read image {path}: {exc}") from None
                ys.append(label)
        if not xs:
            raise DataError(f"no images in {root / split}/<class>/")
        if len({x.shape for x in xs}) != 1:
            raise DataError(f"images in {root / split} differ in size; pass size=(H, W) to resize them")
        arrays[split] = (xs, ys)
    return source_from_arrays(name or root.name, np.stack(arrays["train"][0]), arrays["train"][1],
                              np.stack(arrays["test"][0]), arrays["test"][1], num_classes=len(classes),
                              mean=mean, std=std, channels_last=True)


def register_benchmark(name: str, source: Source | Callable[[], Source], *, num_tasks: int, split: str = "class",
                       backbone: str = "mlp", augment_padding: int = 0, description: str = "") -> None:
    """Make ``source`` (a :class:`Source`, or a function returning one, called when a run needs
    it) the benchmark ``name``: cut into ``num_tasks`` tasks by ``split`` (``"class"``: disjoint
    classes per task; ``"permuted"``, ``"rotated"``: domain-incremental; ``"blurry"``: Si-Blurry
    or i-Blurry, :mod:`lifelong.data.blurry`; ``"task-free"``: one stream without task boundaries,
    :mod:`lifelong.data.taskfree`, for which ``num_tasks`` must be 1), trained with
    ``backbone``, with random crop and flip when ``augment_padding`` > 0."""
    from lifelong.data.benchmarks import BENCHMARKS, Benchmark

    if not isinstance(name, str) or not name.strip():
        raise ValueError("a benchmark needs a non-empty name")
    existing = BENCHMARKS.get(name)
    if existing is not None and existing.builtin:
        raise ValueError(f"{name!r} is a built-in benchmark; choose another name")
    if split not in ("class", "permuted", "rotated", "blurry", "task-free"):
        raise ValueError(f"`split` must be 'class', 'permuted', 'rotated', 'blurry' or 'task-free', got {split!r}")
    if split == "task-free" and num_tasks != 1:
        raise ValueError(f"a task-free benchmark is one stream without task boundaries: `num_tasks` must be 1, "
                         f"got {num_tasks!r}")
    if isinstance(source, Source):
        load = lambda root, download, _s=source: _s  # noqa: E731
    elif callable(source):
        load = lambda root, download, _f=source: _f()  # noqa: E731
    else:
        raise TypeError("`source` must be a lifelong Source or a function returning one")
    BENCHMARKS[name] = Benchmark(name, description or f"{name} (registered)", load, split, int(num_tasks), backbone,
                                 int(augment_padding), builtin=False)
