import torch

from lifelong.data.transforms import random_crop_flip


def test_each_output_is_a_crop_of_the_padded_input_possibly_flipped():
    x = torch.rand(16, 3, 8, 8)
    out = random_crop_flip(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    flipped = 0
    for i in range(len(x)):
        candidates = [(dy, dx, f) for dy in range(5) for dx in range(5) for f in (False, True)
                      if torch.equal(out[i], (lambda c: c.flip(-1) if f else c)(padded[i, :, dy:dy + 8, dx:dx + 8]))]
        assert candidates, f"image {i} is not a crop of its padded input"
        flipped += all(f for _, _, f in candidates)
    assert 0 < flipped < len(x)  # both outcomes happen


def test_same_seed_same_augmentation():
    x = torch.rand(4, 1, 5, 5)
    a = random_crop_flip(x, 1, torch.Generator().manual_seed(7))
    b = random_crop_flip(x, 1, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_padding_takes_the_fill_value_per_channel():
    x = torch.zeros(64, 2, 4, 4)
    fill = torch.tensor([-1.5, 2.0])
    out = random_crop_flip(x, 2, torch.Generator().manual_seed(1), fill)
    values = set(out[:, 0].unique().tolist()) | {None}
    assert values == {0.0, -1.5, None}  # some crops reach into the padding of channel 0 ...
    assert set(out[:, 1].unique().tolist()) == {0.0, 2.0}  # ... and of channel 1
