import numpy as np
import pytest
import torch
from PIL import Image

from lifelong.data.tiny_imagenet import load_tiny_imagenet
from lifelong.errors import DataError

WNIDS = ["n02", "n01", "n03"]  # sorted order gives n01 -> 0, n02 -> 1, n03 -> 2


def _write(root, per_class=2, val_per_class=1):
    folder = root / "tiny-imagenet-200"
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    lines = []
    for c, wnid in enumerate(sorted(WNIDS)):
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True)
        for k in range(per_class):
            colour = (c * 100, k * 50, 10)
            mode = "L" if k == 1 else "RGB"  # Tiny-ImageNet holds some greyscale images
            Image.new(mode, (64, 64), colour if mode == "RGB" else 90).save(images / f"{wnid}_{k}.JPEG")
        for k in range(val_per_class):
            name = f"val_{c}_{k}.JPEG"
            Image.new("RGB", (64, 64), (c * 100, 0, 0)).save(folder / "val" / "images" / name)
            lines.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_reads_the_folder_layout_and_caches(tmp_path):
    folder = _write(tmp_path)
    source = load_tiny_imagenet(tmp_path)
    assert source.train_x.shape == (6, 3, 64, 64) and source.train_x.dtype == torch.uint8
    assert source.train_y.tolist() == [0, 0, 1, 1, 2, 2] and source.test_y.tolist() == [0, 1, 2]
    # class 2 ("n03"), first image: red 200 (JPEG is lossy, so approximately)
    assert abs(int(source.train_x[4, 0, 32, 32]) - 200) <= 3
    assert int(source.train_x[1, 0, 5, 5]) == int(source.train_x[1, 2, 5, 5])  # greyscale -> RGB
    assert (folder / "lifelong-cache.pt").is_file()
    again = load_tiny_imagenet(tmp_path)
    assert torch.equal(again.train_x, source.train_x)


def test_stale_cache_is_rebuilt(tmp_path):
    folder = _write(tmp_path)
    load_tiny_imagenet(tmp_path)
    Image.new("RGB", (64, 64)).save(folder / "train" / "n01" / "images" / "n01_9.JPEG")
    assert len(load_tiny_imagenet(tmp_path).train_y) == 7


def test_missing_layout_and_bad_annotations(tmp_path):
    with pytest.raises(DataError, match="wnids.txt.*--download"):
        load_tiny_imagenet(tmp_path)
    folder = _write(tmp_path)
    (folder / "val" / "val_annotations.txt").write_text("val_0_0.JPEG\tn99\n")
    with pytest.raises(DataError, match="line 1: expected"):
        load_tiny_imagenet(tmp_path)


def test_undecodable_image(tmp_path):
    folder = _write(tmp_path)
    (folder / "train" / "n01" / "images" / "n01_0.JPEG").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="cannot decode image .*n01_0.JPEG"):
        load_tiny_imagenet(tmp_path)


def test_non_utf8_and_empty_class_list(tmp_path):
    folder = _write(tmp_path)
    (folder / "wnids.txt").write_bytes(b"\xff\xfe\x00n01\n")
    with pytest.raises(DataError, match="wnids.txt is not UTF-8"):
        load_tiny_imagenet(tmp_path)
    (folder / "wnids.txt").write_text("\n")
    with pytest.raises(DataError, match="lists no classes"):
        load_tiny_imagenet(tmp_path)
