"""Your own network as a backbone: any `nn.Module` factory, registered by name.

    lifelong run --import examples/my_backbone.py --backbone small-cnn --method er

A factory takes the input shape `(C, H, W)` and the number of classes. Methods that use the
representation (iCaRL, LwF's warm-up) need a `features`/`classifier` split: a model without one
is cut at its last linear layer, so a plain `nn.Sequential` or a torchvision model works as it is.
"""
import torch.nn as nn

import lifelong


@lifelong.register_backbone("small-cnn")
def small_cnn(input_shape, num_classes):
    """Two convolutions and a linear classifier."""
    channels, height, width = input_shape
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, num_classes),
    )


@lifelong.register_backbone("torchvision-resnet18")
def torchvision_resnet18(input_shape, num_classes):
    """torchvision's ResNet-18, randomly initialised (nothing is downloaded)."""
    import torchvision

    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    if input_shape[0] != 3:  # e.g. one-channel MNIST
        model.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model
