import shutil

import pytest
import torch

from lifelong.data.mnist import BUNDLED, load_fashion_mnist, load_mnist
from lifelong.errors import DataError


def test_bundled_mnist_matches_its_published_counts():
    source = load_mnist()
    assert source.train_x.shape == (60000, 1, 28, 28) and source.train_x.dtype == torch.uint8
    assert source.test_x.shape == (10000, 1, 28, 28)
    # label counts from the data set's README
    assert torch.bincount(source.train_y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(source.test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_corrupt_file_is_detected_by_checksum(tmp_path):
    for f in BUNDLED.glob("*.gz"):
        shutil.copy(f, tmp_path / f.name)
    # re-compress the labels with one label changed: a valid IDX file with the wrong contents
    from lifelong.data.idx import read_idx, write_idx

    labels, _ = read_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", ndim=1)
    labels = labels.clone()
    labels[0] = (labels[0] + 1) % 10
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is corrupt: its SHA-256"):
        load_mnist(tmp_path)


def test_missing_mnist_file_says_where_and_how(tmp_path):
    for f in BUNDLED.glob("*.gz"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\[\.gz\].*reinstall"):
        load_mnist(tmp_path)


def test_fashion_mnist_from_torchvision_layout(fashion_root):
    source = load_fashion_mnist(fashion_root)
    assert source.train_x.shape == (60, 1, 28, 28)
    assert source.test_y.tolist() == list(range(10)) * 2


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="FashionMNIST.*--download"):
        load_fashion_mnist(tmp_path)


def test_fashion_mnist_label_out_of_range(fashion_root):
    from lifelong.data.idx import write_idx

    write_idx(fashion_root / "FashionMNIST/raw/t10k-labels-idx1-ubyte.gz", torch.tensor([3] * 19 + [12], dtype=torch.uint8))
    with pytest.raises(DataError, match="labels must lie in 0..9, found 3..12"):
        load_fashion_mnist(fashion_root)


def test_fashion_mnist_count_mismatch(fashion_root):
    from lifelong.data.idx import write_idx

    write_idx(fashion_root / "FashionMNIST/raw/t10k-labels-idx1-ubyte.gz", torch.zeros(7, dtype=torch.uint8))
    with pytest.raises(DataError, match="20 images but .* 7 labels"):
        load_fashion_mnist(fashion_root)
