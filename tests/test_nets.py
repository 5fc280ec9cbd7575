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
