"""CIFAR-10 and CIFAR-100 (Krizhevsky, "Learning multiple layers of features from tiny images",
2009) from the standard "python version" pickle batches, in the layout torchvision uses:

- ``<data_root>/cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch``
- ``<data_root>/cifar-100-python/train, test``

Each batch is a pickled dict with ``b"data"`` (N x 3072 uint8, channel-major rows) and
``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100). Pickles can run code, so they are
read with an unpickler that only admits the numpy types these files contain.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from lifelong.data.download import download_with_torchvision
from lifelong.data.source import Source
from lifelong.errors import DataError

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2615)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden object {module}.{name}")


def _read_batch(path: Path, label_key: bytes, hint: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not path.is_file():
        raise DataError(f"data file not found: {path}{hint}")
    try:
        with open(path, "rb") as f:
            entry = _SafeUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # truncated or foreign files raise many kinds of errors
        raise DataError(f"{path} is not a readable CIFAR batch ({type(exc).__name__}: {exc}){hint}") from None
    if not isinstance(entry, dict) or b"data" not in entry or label_key not in entry:
        raise DataError(f"{path} lacks the keys b'data' and {label_key!r} of a CIFAR batch{hint}")
    data = np.asarray(entry[b"data"])
    labels = np.asarray(entry[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: b'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}{hint}")
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {len(data)} images but {labels.size} labels{hint}")
    if len(labels) and not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: labels must be integers, got {labels.dtype} values like {labels[0]!r}{hint}")
    images = torch.from_numpy(np.ascontiguousarray(data)).view(-1, 3, 32, 32)
    return images, torch.from_numpy(labels.astype(np.int64))


def _load(folder: Path, train_files: list[str], test_files: list[str], label_key: bytes, hint: str):
    parts = [_read_batch(folder / name, label_key, hint) for name in train_files]
    test = [_read_batch(folder / name, label_key, hint) for name in test_files]
    train_x = torch.cat([p[0] for p in parts])
    train_y = torch.cat([p[1] for p in parts])
    return train_x, train_y, torch.cat([p[0] for p in test]), torch.cat([p[1] for p in test])


def load_cifar10(data_root: Path, download: bool = False) -> Source:
    """Load CIFAR-10 from ``<data_root>/cifar-10-batches-py``."""
    folder = Path(data_root) / "cifar-10-batches-py"
    if download:
        download_with_torchvision("CIFAR10", data_root)
    hint = f" (CIFAR-10 looked for in {folder}); pass --download to fetch it, or unpack cifar-10-python.tar.gz into {data_root}"
    train = [f"data_batch_{i}" for i in range(1, 6)]
    tensors = _load(folder, train, ["test_batch"], b"labels", hint)
    return Source("cifar10", *tensors, num_classes=10, mean=CIFAR10_MEAN, std=CIFAR10_STD)


def load_cifar100(data_root: Path, download: bool = False) -> Source:
    """Load CIFAR-100 (fine labels) from ``<data_root>/cifar-100-python``."""
    folder = Path(data_root) / "cifar-100-python"
    if download:
        download_with_torchvision("CIFAR100", data_root)
    hint = f" (CIFAR-100 looked for in {folder}); pass --download to fetch it, or unpack cifar-100-python.tar.gz into {data_root}"
    tensors = _load(folder, ["train"], ["test"], b"fine_labels", hint)
    return Source("cifar100", *tensors, num_classes=100, mean=CIFAR100_MEAN, std=CIFAR100_STD)


def write_cifar_batch(path: Path, images: np.ndarray, labels: list[int], label_key: bytes = b"labels") -> None:
    """Write a batch in the standard format (used by the tests to make small real-format files)."""
    entry = {b"data": np.ascontiguousarray(images.reshape(len(images), -1), dtype=np.uint8), label_key: list(labels)}
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)
