"""Δ-Influence's transforms: paper = on the network's input, torchvision's fixed (5, 9) blur, and
labels drawn without replacement where the paper's code did (CIFAR-100)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from deltabench.artifacts import ImageSet
from deltabench.components import DetectionContext
from deltabench.detectors.delta_influence import DeltaInfluence, auxiliary_queries
from deltabench.influence.transforms import apply_transform, from_network_input, to_network_input
from deltabench.models import ImageClassifier


def _gens(seed: int = 0) -> tuple[np.random.Generator, torch.Generator]:
    return np.random.default_rng(seed), torch.Generator().manual_seed(seed)


def test_paper_blur_has_torchvision_s_fixed_5_by_9_kernel():
    # A single bright point spreads over exactly the kernel: 9 rows (height) x 5 columns (width).
    x = torch.zeros(3, 32, 32)
    x[:, 16, 16] = 1.0
    out = apply_transform("gaussian_blur", x, *_gens(), style="paper")
    rows, cols = np.nonzero(out[0].numpy() > 0)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (12, 20, 14, 18)
    # With sigma in [8, 10] the 5x9 kernel is nearly flat: the point's mass spreads ~evenly.
    assert float(out[0].sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(out[0].max()) == pytest.approx(1 / 45, rel=0.1)


def test_paper_colour_jitter_clamps_the_normalised_tensor():
    """By hand, on a 1-channel tensor (brightness and contrast only, random order, each clamped to
    [0, 1] as torchvision's tensor ops do): the first two uniforms are the factors, then the order."""
    z = torch.linspace(-1.5, 2.5, 64).reshape(1, 8, 8)  # a normalised image: far outside [0, 1]
    rng = np.random.default_rng(3)
    b, c = rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1)
    order = rng.permutation(2)
    want = z.clone()
    brightness = lambda t: (t * b).clamp(0, 1)  # noqa: E731
    contrast = lambda t: (c * t + (1 - c) * t.mean()).clamp(0, 1)  # noqa: E731
    for i in order:
        want = (brightness, contrast)[i](want)
    got = apply_transform("color_jitter", z, np.random.default_rng(3), torch.Generator(), style="paper")
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert float(got.min()) >= 0 and float(got.max()) <= 1  # a strong, clipping transform


def test_network_space_round_trip():
    model = ImageClassifier(torch.nn.Flatten(), 192, 10, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    x = torch.rand(2, 3, 8, 8)
    z = to_network_input(model, x)
    torch.testing.assert_close(z, model.normalize(x))
    torch.testing.assert_close(from_network_input(model, z), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(to_network_input(model, x[0]), z[0])


def test_labels_without_replacement():
    affected = ImageSet(torch.rand(1, 3, 8, 8), torch.tensor([4]))
    aux, _ = auxiliary_queries(affected, 10, 9, "MM", *_gens(), labels="without-replacement")
    assert sorted(aux.y.tolist()) == [0, 1, 2, 3, 5, 6, 7, 8, 9]  # the 9 other classes, once each
    with pytest.raises(ValueError, match="lower T to 9"):
        auxiliary_queries(affected, 10, 10, "MM", *_gens(), labels="without-replacement")


def test_paper_style_queries_are_transforms_of_the_network_input(badnet_victim):
    """With transforms: paper the network sees the transformed NORMALISED affected image: for
    'invert' that is 1 - z (pixel style gives (1 - x - mean) / std), for 'hflip' flip(z)."""
    v = badnet_victim
    ctx = DetectionContext(
        model=v.model,
        train=v.poisoned.train,
        affected=v.affected,
        num_classes=10,
        rng=np.random.default_rng(0),
        trainer=v.trainer,
    )
    aux, names = DeltaInfluence(T=40, transforms="paper", distinct=False)._queries(ctx)
    z = v.model.normalize(v.affected.x)[0]
    seen = {name: v.model.normalize(aux.x[i : i + 1])[0] for i, name in enumerate(names)}
    assert {"invert", "hflip"} <= set(seen)
    torch.testing.assert_close(seen["invert"], 1 - z, atol=1e-5, rtol=0)
    torch.testing.assert_close(seen["hflip"], TF.horizontal_flip(z), atol=1e-5, rtol=0)
    assert not torch.allclose(seen["invert"], v.model.normalize(1 - v.affected.x)[0], atol=1e-3)
