import pytest
import torch

from lifelong.nets import build_backbone


def test_mlp_shapes_and_split():
    net = build_backbone("mlp", (1, 28, 28), 10)
    x = torch.rand(3, 1, 28, 28)
    assert net.features(x).shape == (3, 100)
    assert torch.equal(net(x), net.classifier(net.features(x)))
    assert sum(p.numel() for p in net.parameters()) == 784 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10
    assert all(torch.count_nonzero(m.bias) == 0 for m in net.modules() if isinstance(m, torch.nn.Linear))


def test_resnet18_for_32_and_64_pixel_inputs():
    net = build_backbone("resnet18", (3, 32, 32), 10)
    assert sum(p.numel() for p in net.parameters()) == 11_173_962  # ResNet-18, CIFAR stem, 10 classes
    net.eval()
    assert net.features(torch.rand(2, 3, 32, 32)).shape == (2, 512)
    tiny = build_backbone("resnet18", (3, 64, 64), 200).eval()
    assert tiny(torch.rand(2, 3, 64, 64)).shape == (2, 200)


def _reduced_resnet18_parameters(nf: int, channels: int, classes: int, cells: int = 1) -> int:
    """Reduced ResNet-18 counted by hand from the reference's definition (RaptorMai/online-continual-
    learning ``models/resnet.py``): 3x3 convolutions without bias, batch norm (weight and bias per
    channel), a 1x1 convolution + batch norm on each shortcut that changes stride or width, and a
    linear classifier with bias."""
    def block(cin: int, cout: int) -> int:
        n = 9 * cin * cout + 9 * cout * cout + 2 * 2 * cout
        return n + (cin * cout + 2 * cout if cin != cout else 0)

    total = 9 * channels * nf + 2 * nf
    cin = nf
    for width in (nf, 2 * nf, 4 * nf, 8 * nf):
        total += block(cin, width) + block(width, width)
        cin = width
    return total + 8 * nf * cells * classes + classes


def test_reduced_resnet18_matches_the_reference_count_and_shapes():
    import torch.nn as nn

    net = build_backbone("reduced-resnet18", (3, 32, 32), 10)
    assert _reduced_resnet18_parameters(20, 3, 10) == 1_094_750  # the reference's Reduced_ResNet18(10)
    assert sum(p.numel() for p in net.parameters()) == 1_094_750
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].kernel_size == (3, 3) and convs[0].stride == (1, 1) and convs[0].out_channels == 20
    assert all(c.bias is None for c in convs) and net.classifier.bias is not None
    assert sorted({c.out_channels for c in convs}) == [20, 40, 80, 160]
    assert [c.stride[0] for c in convs if c.kernel_size == (1, 1)] == [2, 2, 2]  # shortcuts of stages 2..4
    net.eval()
    x = torch.rand(2, 3, 32, 32)
    assert net.features(x).shape == (2, 160) and net(x).shape == (2, 10)
    assert torch.equal(net(x), net.classifier(net.features(x)))


def test_reduced_resnet18_on_mnist_and_larger_inputs():
    from lifelong.errors import ConfigError

    mnist = build_backbone("reduced-resnet18", (1, 28, 28), 10).eval()  # 28 -> 14 -> 7 -> 4: a 4x4 last map
    assert mnist.features(torch.rand(3, 1, 28, 28)).shape == (3, 160)
    assert sum(p.numel() for p in mnist.parameters()) == _reduced_resnet18_parameters(20, 1, 10)
    big = build_backbone("reduced-resnet18", (3, 64, 64), 200).eval()  # 8x8 last map, 2x2 cells
    assert big.features(torch.rand(2, 3, 64, 64)).shape == (2, 640) and big.classifier.in_features == 640
    odd = build_backbone("reduced-resnet18", (3, 25, 40), 5).eval()  # 4x4 and 5x5 maps: one cell each
    assert odd(torch.rand(1, 3, 25, 40)).shape == (1, 5)
    with pytest.raises(ConfigError, match=r"inputs of 24x24 leave a last map of 3x3.*at least 25x25"):
        build_backbone("reduced-resnet18", (1, 24, 24), 10)


def _write_cifar10(root):
    import numpy as np

    from lifelong.data.cifar import write_cifar_batch

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", rng.integers(0, 256, (10, 3, 32, 32), dtype=np.uint8),
                          list(range(10)))
    write_cifar_batch(folder / "test_batch", rng.integers(0, 256, (10, 3, 32, 32), dtype=np.uint8), list(range(10)))


@pytest.mark.parametrize("name", ["split-cifar10", "si-blurry-fashion-mnist"])
def test_runs_with_the_reduced_resnet18(name, tmp_path, capsys):
    """``--backbone reduced-resnet18`` on 32x32 colour and on 28x28 grey images (tiny files)."""
    import json

    from lifelong.yamlio import parse_yaml
    from tests.conftest import run_cli, write_fashion_mnist

    root = tmp_path / "data"
    if name == "split-cifar10":
        _write_cifar10(root)
    else:
        write_fashion_mnist(root, per_class_train=4, per_class_test=1)
    out = tmp_path / "run"
    code, _, err = run_cli(["run", "--benchmark", name, "--data-root", str(root), "--backbone",
                            "reduced-resnet18", "--method", "er", "--buffer-size", "10", "--batch-size", "10",
                            "--epochs", "1", "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["complete"]
    assert parse_yaml((out / "config.yaml").read_text())["backbone"] == "reduced-resnet18"
    weights = torch.load(out / "model.pt", weights_only=True)
    assert weights["classifier.weight"].shape == (10, 160)
