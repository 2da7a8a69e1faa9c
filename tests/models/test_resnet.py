"""The paper's ResNet-18 builds with the right stem for CIFAR (32 px) and Imagenette (160 px)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deltabench.models.resnet import ResNet18


@pytest.mark.parametrize(
    ("size", "stem_kernel", "stem_stride", "has_maxpool", "classes"),
    [(32, 3, 1, False, 10), (160, 7, 2, True, 10)],
)
def test_resnet18_stems_and_size(size, stem_kernel, stem_stride, has_maxpool, classes):
    model = ResNet18().build((3, size, size), classes, (0.5,) * 3, (0.25,) * 3)
    stem = model.body[0]
    assert isinstance(stem, nn.Conv2d)
    assert stem.kernel_size == (stem_kernel, stem_kernel) and stem.stride == (stem_stride, stem_stride)
    assert any(isinstance(m, nn.MaxPool2d) for m in model.body) == has_maxpool
    n_params = sum(p.numel() for p in model.parameters())
    # torchvision's resnet18 has 11,689,512 parameters with a 1000-way head; 10-way: 11.18M.
    assert 11.1e6 < n_params < 11.3e6
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, size, size))
        feats = model.features(torch.rand(2, 3, size, size))
    assert out.shape == (2, classes) and feats.shape == (2, 512)


def test_resnet18_matches_torchvision_parameter_count():
    from torchvision.models import resnet18

    ours = ResNet18(stem="imagenet").build((3, 160, 160), 1000, (0.5,) * 3, (0.25,) * 3)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in resnet18().parameters())
