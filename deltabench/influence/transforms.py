"""The seven auxiliary-query transforms of Δ-Influence, applied in pixel space ([0, 1] images).

The paper's code applied them to normalised tensors; we apply them to pixel-space images (the model
normalises afterwards), so "invert" is ``1 - x`` and colour jitter acts on real intensities.
Parameters are the paper's (its method, step 2; docs/influence.md), drawn from the caller's generators:

- horizontal flip;
- colour jitter: brightness and contrast factors in [0.9, 1.1], saturation in [0.6, 1.4], hue in
  [-0.1, 0.1], applied in a random order (as torchvision's ``ColorJitter``). On 1-channel images
  saturation and hue do not exist, so only brightness and contrast act;
- random affine: rotation in [-180, 180] degrees, scale in [1, 2], x-shear in [-10, 10] degrees;
- elastic: alpha 150, sigma 5 (torchvision's default) at 32 px, displacement drawn as torchvision
  does; sigma is scaled with the image side (1.25 on 8x8 digits) so its kernel fits the image;
- Gaussian blur: kernel 5, 7 or 9 px at 32 px, sigma in [8, 10]. The kernel is scaled with the
  image side (``k * H / 32``, rounded to an odd size >= 3): on 8x8 digits that is always 3, since a
  9-px kernel would cover more than the whole image. With sigma >= 8 either kernel is close to a
  box filter, so the scaling keeps the transform's character (a local smoothing);
- invert: ``1 - x``;
- swap R and G channels. On 1-channel images it would be the identity, so it is skipped there:
  transforms are drawn uniformly from the six others (deviation, documented in docs/influence.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..lazy import lazy_module

TF = lazy_module("torchvision.transforms.v2.functional")  # imported when a transform first runs

__all__ = ["TRANSFORMS", "DETERMINISTIC", "available_transforms", "apply_transform"]

Transform = Callable[[torch.Tensor, np.random.Generator, torch.Generator], torch.Tensor]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def hflip(x, rng, gen):
    return TF.horizontal_flip(x)


def color_jitter(x, rng, gen):
    ops = [(TF.adjust_brightness, _u(rng, 0.9, 1.1)), (TF.adjust_contrast, _u(rng, 0.9, 1.1))]
    if x.shape[-3] == 3:
        ops += [(TF.adjust_saturation, _u(rng, 0.6, 1.4)), (TF.adjust_hue, _u(rng, -0.1, 0.1))]
    for i in rng.permutation(len(ops)):
        op, factor = ops[i]
        x = op(x, factor)
    return x.clamp(0, 1)


def affine(x, rng, gen):
    return TF.affine(
        x, angle=_u(rng, -180, 180), translate=[0, 0], scale=_u(rng, 1, 2), shear=[_u(rng, -10, 10), 0.0]
    )


def elastic(x, rng, gen, alpha: float = 150.0, sigma: float = 5.0):
    h, w = x.shape[-2:]
    # sigma is given for 32-px images; scaled with the side so the smoothing kernel fits the image
    # (torchvision's 41-px kernel cannot pad an 8x8 image).
    sigma = sigma * min(h, w) / 32
    # As torchvision's ElasticTransform: uniform noise in [-1, 1], Gaussian-smoothed, scaled by
    # alpha / size, in the normalised [-1, 1] grid units that F.elastic expects.
    k = int(8 * sigma + 1) | 1
    dx = torch.rand(1, 1, h, w, generator=gen) * 2 - 1
    dy = torch.rand(1, 1, h, w, generator=gen) * 2 - 1
    if sigma > 0:
        dx = TF.gaussian_blur(dx, [k, k], [sigma, sigma])
        dy = TF.gaussian_blur(dy, [k, k], [sigma, sigma])
    displacement = torch.cat([dx * alpha / w, dy * alpha / h], 1).permute(0, 2, 3, 1)
    return TF.elastic(x, displacement.to(x.device)).clamp(0, 1)


def blur_kernel(base: int, side: int) -> int:
    """The paper's kernel size (given for 32-px images) scaled to an image side, odd and >= 3."""
    k = max(3, int(round(base * side / 32)))
    return k if k % 2 else k + 1


def gaussian_blur(x, rng, gen):
    k = blur_kernel(int(rng.choice([5, 7, 9])), min(x.shape[-2:]))
    s = _u(rng, 8, 10)
    return TF.gaussian_blur(x, [k, k], [s, s])


def invert(x, rng, gen):
    return 1.0 - x


def swap_rg(x, rng, gen):
    return x[..., [1, 0, 2], :, :]


TRANSFORMS: dict[str, Transform] = {
    "hflip": hflip,
    "color_jitter": color_jitter,
    "affine": affine,
    "elastic": elastic,
    "gaussian_blur": gaussian_blur,
    "invert": invert,
    "swap_rg": swap_rg,
}


# Transforms without random parameters: drawing one twice with the same label repeats a query exactly.
DETERMINISTIC = frozenset({"hflip", "invert", "swap_rg"})


def available_transforms(channels: int) -> list[str]:
    """The transforms that change an image with this many channels (swap R/G needs colour)."""
    return [name for name in TRANSFORMS if channels >= 3 or name != "swap_rg"]


def apply_transform(
    name: str, x: torch.Tensor, rng: np.random.Generator, gen: torch.Generator
) -> torch.Tensor:
    """Transform one image ``(C, H, W)`` or a batch in [0, 1]; the result stays in [0, 1]."""
    return TRANSFORMS[name](x, rng, gen).float()
