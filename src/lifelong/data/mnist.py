"""MNIST (bundled with the package) and Fashion-MNIST (read from a data root).

MNIST: LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to document
recognition", 1998. The four standard files ship inside the package and are checked against
their SHA-256, so the default run needs nothing from the network.

Fashion-MNIST: Xiao, Rasul and Vollgraf, 2017; the same IDX format, in the layout torchvision
uses: ``<data_root>/FashionMNIST/raw/<file>[.gz]``.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lifelong.data.download import download_with_torchvision
from lifelong.data.idx import read_idx
from lifelong.data.source import Source
from lifelong.errors import DataError

BUNDLED = Path(__file__).parent / "bundled" / "mnist"

# SHA-256 of the uncompressed contents (also listed in bundled/mnist/README.md).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def _find(folder: Path, stem: str, hint: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"data file not found: {folder / stem}[.gz]{hint}")


def _read_pair(folder: Path, prefix: str, hint: str, checksums: dict[str, str] | None):
    images_path = _find(folder, f"{prefix}-images-idx3-ubyte", hint)
    labels_path = _find(folder, f"{prefix}-labels-idx1-ubyte", hint)
    images, images_sha = read_idx(images_path, ndim=3, hint=hint)
    labels, labels_sha = read_idx(labels_path, ndim=1, hint=hint)
    if checksums is not None:
        for path, sha in ((images_path, images_sha), (labels_path, labels_sha)):
            expected = checksums[path.name.removesuffix(".gz")]
            if sha != expected:
                raise DataError(f"{path} is corrupt: its SHA-256 is {sha[:12]}..., expected {expected[:12]}...{hint}")
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels{hint}")
    return images.unsqueeze(1), labels.long()


def load_mnist(folder: Path | None = None) -> Source:
    """Load MNIST from the package (default) or from ``folder``, checking every file's SHA-256.

    The bundled copy is read once per process (several seeds in one process share it; its
    tensors are never changed in place)."""
    if folder is None:
        return _bundled_mnist()
    return _read_mnist(Path(folder))


@lru_cache(maxsize=1)
def _bundled_mnist() -> Source:
    return _read_mnist(BUNDLED)


def _read_mnist(folder: Path) -> Source:
    hint = "; reinstall lifelong (`pip install -e .`) or restore the files from git (`git checkout src/lifelong/data/bundled`)"
    train_x, train_y = _read_pair(folder, "train", hint, MNIST_SHA256)
    test_x, test_y = _read_pair(folder, "t10k", hint, MNIST_SHA256)
    return Source("mnist", train_x, train_y, test_x, test_y, num_classes=10)


def load_fashion_mnist(data_root: Path, download: bool = False) -> Source:
    """Load Fashion-MNIST from ``<data_root>/FashionMNIST/raw`` (torchvision's layout)."""
    folder = Path(data_root) / "FashionMNIST" / "raw"
    if download:
        download_with_torchvision("FashionMNIST", data_root)
    hint = f" (looked in {folder}); pass --download to fetch it, or copy the four IDX files there"
    train_x, train_y = _read_pair(folder, "train", hint, None)
    test_x, test_y = _read_pair(folder, "t10k", hint, None)
    return Source("fashion-mnist", train_x, train_y, test_x, test_y, num_classes=10)
