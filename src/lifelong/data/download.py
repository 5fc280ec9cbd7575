"""Fetching data sets with torchvision's downloaders (``--download``; needs the internet).

Nothing in the tests or the default run calls this.
"""
from __future__ import annotations

from pathlib import Path

from lifelong.errors import DataError


def download_with_torchvision(name: str, data_root: Path) -> None:
    """Download torchvision's data set ``name`` (train and test) into ``data_root``."""
    try:
        import torchvision.datasets as tvd
    except ImportError as exc:  # pragma: no cover - torchvision is a dependency
        raise DataError(f"--download needs torchvision: {exc}") from None
    try:
        for train in (True, False):
            getattr(tvd, name)(str(data_root), train=train, download=True)
    except Exception as exc:  # network errors come in many types
        raise DataError(f"could not download {name} into {data_root}: {exc}") from None


def download_archive(url: str, data_root: Path) -> None:
    """Download and extract an archive into ``data_root`` with torchvision's helper."""
    try:
        from torchvision.datasets.utils import download_and_extract_archive
    except ImportError as exc:  # pragma: no cover
        raise DataError(f"--download needs torchvision: {exc}") from None
    try:
        download_and_extract_archive(url, str(data_root))
    except Exception as exc:
        raise DataError(f"could not download {url} into {data_root}: {exc}") from None
