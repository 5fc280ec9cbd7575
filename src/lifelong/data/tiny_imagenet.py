"""Tiny-ImageNet (Le and Yang, "Tiny ImageNet visual recognition challenge", 2015): 200 classes
of 64x64 colour images, 500 training and 50 validation images per class.

Read from its standard folder layout, ``<data_root>/tiny-imagenet-200``::

    wnids.txt                              one WordNet id per line (200 classes)
    train/<wnid>/images/<wnid>_<k>.JPEG    training images
    val/images/val_<k>.JPEG                validation images (used as the test set)
    val/val_annotations.txt                "<file>\t<wnid>\t<box...>" per line

Classes are numbered in sorted order of their WordNet ids (as torchvision's ImageFolder does).
Decoding 110,000 JPEGs takes a while, so the decoded tensors are cached next to the data
(``lifelong-cache.pt``, loaded with ``weights_only=True``) when that folder is writable.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from lifelong.data.download import download_archive
from lifelong.data.source import Source
from lifelong.errors import DataError

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
MEAN, STD = (0.4802, 0.4480, 0.3975), (0.2770, 0.2691, 0.2821)
_CACHE = "lifelong-cache.pt"
_CACHE_VERSION = 1


def _decode(paths: list[Path], hint: str) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(paths), 64, 64, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as img:
                rgb = img.convert("RGB")
                if rgb.size != (64, 64):
                    rgb = rgb.resize((64, 64))
                out[i] = np.asarray(rgb)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"cannot decode image {path}: {exc}{hint}") from None
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _read_text(path: Path, hint: str) -> str:
    if not path.is_file():
        raise DataError(f"data file not found: {path}{hint}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text{hint}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}{hint}") from None


def _listing(folder: Path, hint: str) -> tuple[list[str], list[tuple[Path, int]], list[tuple[Path, int]]]:
    wnids = sorted(line.strip() for line in _read_text(folder / "wnids.txt", hint).splitlines() if line.strip())
    if not wnids:
        raise DataError(f"{folder / 'wnids.txt'} lists no classes{hint}")
    index = {w: i for i, w in enumerate(wnids)}
    train = []
    for wnid in wnids:
        images = folder / "train" / wnid / "images"
        if not images.is_dir():
            raise DataError(f"folder not found: {images}{hint}")
        train += [(p, index[wnid]) for p in sorted(images.glob("*.JPEG"))]
    annotations = folder / "val" / "val_annotations.txt"
    val = []
    for n, line in enumerate(_read_text(annotations, hint).splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise DataError(f"{annotations}, line {n}: expected '<file>\\t<wnid>' with a wnid from wnids.txt{hint}")
        val.append((folder / "val" / "images" / fields[0], index[fields[1]]))
    return wnids, train, val


def load_tiny_imagenet(data_root: Path, download: bool = False) -> Source:
    """Load Tiny-ImageNet from ``<data_root>/tiny-imagenet-200`` (decoding once, then cached)."""
    folder = Path(data_root) / "tiny-imagenet-200"
    if download and not folder.is_dir():
        download_archive(URL, Path(data_root))
    hint = f" (Tiny-ImageNet looked for in {folder}); pass --download, or unzip tiny-imagenet-200.zip into {data_root}"
    wnids, train, val = _listing(folder, hint)
    fingerprint = [len(wnids), len(train), len(val), wnids[:3]]
    cache = folder / _CACHE
    if cache.is_file():
        try:
            stored = torch.load(cache, weights_only=True)
            if stored.get("version") == _CACHE_VERSION and stored.get("fingerprint") == fingerprint:
                return Source("tiny-imagenet", stored["train_x"], stored["train_y"], stored["test_x"],
                              stored["test_y"], num_classes=len(wnids), mean=MEAN, std=STD)
        except Exception:
            pass  # a stale or damaged cache is rebuilt below
    train_x = _decode([p for p, _ in train], hint)
    test_x = _decode([p for p, _ in val], hint)
    train_y = torch.tensor([c for _, c in train], dtype=torch.long)
    test_y = torch.tensor([c for _, c in val], dtype=torch.long)
    if os.access(folder, os.W_OK):
        tmp = cache.with_suffix(".tmp")
        torch.save({"version": _CACHE_VERSION, "fingerprint": fingerprint, "train_x": train_x,
                    "train_y": train_y, "test_x": test_x, "test_y": test_y}, tmp)
        os.replace(tmp, cache)
    return Source("tiny-imagenet", train_x, train_y, test_x, test_y, num_classes=len(wnids), mean=MEAN, std=STD)
