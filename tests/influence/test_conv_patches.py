"""The strided patches are kronfluence's im2col patches, bit for bit, and kronfluence uses them."""

from __future__ import annotations

import pytest
import torch

import deltabench.influence.kronfluence_backend  # noqa: F401  (installs the patches)
from deltabench.influence.conv_patches import strided_patches

conv2d = pytest.importorskip("kronfluence.module.conv2d")


@pytest.mark.parametrize(
    "shape, kernel, stride, padding, dilation",
    [
        ((3, 16, 28, 28), 3, 1, 1, 1),
        ((2, 3, 9, 11), (3, 5), (2, 1), (1, 2), (1, 2)),
        ((2, 1, 8, 8), 2, 2, 0, 1),
        ((1, 4, 7, 7), 1, 1, 0, 1),
    ],
)
def test_bitwise_equal_to_kronfluence(shape, kernel, stride, padding, dilation) -> None:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    original = conv2d.extract_patches.__wrapped__
    expected = original(x, kernel, stride, padding, dilation, 1)
    got = strided_patches(x, kernel, stride, padding, dilation)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)
    assert got.is_contiguous()


def test_installed_once_and_falls_back_for_groups() -> None:
    assert conv2d.extract_patches.__wrapped__ is not conv2d.extract_patches
    assert not hasattr(conv2d.extract_patches.__wrapped__, "__wrapped__")
    x = torch.randn(2, 4, 6, 6)
    grouped = conv2d.extract_patches(x, 3, 1, 1, 1, 2)
    assert torch.equal(grouped, conv2d.extract_patches.__wrapped__(x, 3, 1, 1, 1, 2))
