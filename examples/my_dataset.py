"""Your own data set as a benchmark, in a few lines: arrays in, a registered name out.

    lifelong run --import examples/my_dataset.py --benchmark stripes --method er --buffer-size 60
    lifelong list --import examples/my_dataset.py        # it is listed as registered

Here the arrays are made up (stripes of six orientations and widths, with noise) so that the
example needs no download; with your own files, load them with NumPy (`np.load`) or take a
torchvision data set (`lifelong.source_from_torchvision(train_set, test_set)`) or a folder of
images (`lifelong.source_from_image_folder("my_images")`, with train/<class>/ and test/<class>/).
"""
import numpy as np

import lifelong


def stripes(n_per_class: int = 200, size: int = 16, seed: int = 0):
    """Images of six classes: horizontal, vertical or diagonal stripes, narrow or wide."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    patterns = []
    for direction in (rows, cols, rows + cols):
        for width in (2, 4):
            patterns.append(((direction // width) % 2).astype(np.float32))
    images, labels = [], []
    for label, pattern in enumerate(patterns):
        noise = rng.random((n_per_class, size, size), dtype=np.float32)
        images.append(np.clip(0.7 * pattern + 0.3 * noise, 0, 1))
        labels.append(np.full(n_per_class, label))
    return np.concatenate(images), np.concatenate(labels)


def load() -> lifelong.Source:
    train_x, train_y = stripes(seed=0)
    test_x, test_y = stripes(n_per_class=50, seed=1)
    return lifelong.source_from_arrays("stripes", train_x, train_y, test_x, test_y)  # floats in [0, 1] -> uint8


lifelong.register_benchmark("stripes", load, num_tasks=3, backbone="mlp",
                            description="six classes of noisy stripes, 3 tasks of 2 (an example of your own data)")
