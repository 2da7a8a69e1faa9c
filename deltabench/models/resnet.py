"""The paper's ResNet-18 (BasicBlock [2, 2, 2, 2], widths 64-512).

The ``cifar`` stem (3x3 stride 1, no max-pool) is for 32x32 images; the ``imagenet`` stem (7x7
stride 2 + max-pool) is what the paper used on 160-px Imagenette. ``auto`` picks by image size.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..components import ModelFamily, Params
from ..hookspecs import hookimpl
from . import ImageClassifier


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def resnet18_body(in_channels: int, stem: str, base_width: int = 64) -> tuple[nn.Module, int]:
    if stem == "cifar":
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base_width, 3, 1, 1, bias=False)]
    else:
        layers = [nn.Conv2d(in_channels, base_width, 7, 2, 3, bias=False)]
    layers += [nn.BatchNorm2d(base_width), nn.ReLU()]
    if stem != "cifar":
        layers.append(nn.MaxPool2d(3, 2, 1))
    cin = base_width
    for i, width in enumerate([base_width * m for m in (1, 2, 4, 8)]):
        for j in range(2):
            layers.append(BasicBlock(cin, width, 2 if (j == 0 and i > 0) else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), cin


class ResNet18(ModelFamily):
    """The paper's ResNet-18 victim (11M parameters; GPU territory)."""

    name = "resnet18"

    class Params(Params):
        stem: Literal["auto", "cifar", "imagenet"] = Field(
            "auto",
            description="cifar: 3x3/1 without max-pool; imagenet: 7x7/2 + max-pool; auto: by size",
        )
        width: int = Field(64, ge=4, description="channels of the first stage (64 in the paper)")

    def build(self, image_shape, num_classes, mean, std) -> ImageClassifier:
        c, h, _ = image_shape
        stem = self.params.stem
        if stem == "auto":
            stem = "cifar" if h <= 64 else "imagenet"
        body, dim = resnet18_body(c, stem, self.params.width)
        return ImageClassifier(body, dim, num_classes, mean, std)


@hookimpl
def register_models(register) -> None:
    register(ResNet18)
