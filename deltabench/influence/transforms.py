"""The seven auxiliary-query transforms of Δ-Influence, in two styles.

``pixel`` (ours, the default): applied to pixel-space images in [0, 1] (the model normalises
afterwards), so "invert" is ``1 - x`` and colour jitter acts on real intensities.
``paper`` (the paper's code): applied to the tensor the network sees (the normalised image; for the
frequency attack's ``paper`` poisons, the rescaled [0, 1] image), where torchvision's ColorJitter
clamps to [0, 1] (a strong, clipping transform), "invert" is ``1 - z`` and affine / elastic fill with
0 = the mean colour. :func:`to_network_input` / :func:`from_network_input` move between the spaces.

Parameters are the paper's, drawn from the caller's generators:

- horizontal flip;
- colour jitter: brightness and contrast factors in [0.9, 1.1], saturation in [0.6, 1.4], hue in
  [-0.1, 0.1], applied in a random order (as torchvision's ``ColorJitter``). On 1-channel images
  saturation and hue do not exist, so only brightness and contrast act;
- random affine: rotation in [-180, 180] degrees, scale in [1, 2], x-shear in [-10, 10] degrees;
- elastic: alpha 150, sigma 5 (torchvision's default), displacement drawn as torchvision does.
  ``pixel`` scales sigma with the image side (``5 * side / 32``: 1.25 on 8x8 digits, 25 at 160 px)
  and clips the result to [0, 1]; ``paper`` keeps sigma 5 (scaled only below 21 px, where
  torchvision's 41-px kernel cannot pad the image) and does not clip, as torchvision;
- Gaussian blur, sigma in [8, 10]: ``paper`` = torchvision ``GaussianBlur(kernel_size=(5, 9))``, one
  fixed kernel 5 px wide and 9 px high; ``pixel`` = a square kernel of 5, 7 or 9 px at 32 px, scaled
  with the image side (``k * H / 32``, odd, >= 3: always 3 on 8x8 digits). With sigma >= 8 either
  kernel is close to a box filter;
- invert: ``1 - x``;
- swap R and G channels. On 1-channel images it would be the identity, so it is skipped there:
  transforms are drawn uniformly from the six others (deviation, documented in docs/influence.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..lazy import lazy_module

TF = lazy_module("torchvision.transforms.v2.functional")  # imported when a transform first runs

__all__ = [
    "TRANSFORMS",
    "PAPER_TRANSFORMS",
    "DETERMINISTIC",
    "available_transforms",
    "apply_transform",
    "to_network_input",
    "from_network_input",
]

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


def _elastic(x, gen, sigma: float, alpha: float = 150.0) -> torch.Tensor:
    # As torchvision's ElasticTransform: uniform noise in [-1, 1], Gaussian-smoothed, scaled by
    # alpha / size, in the normalised [-1, 1] grid units that F.elastic expects.
    h, w = x.shape[-2:]
    k = int(8 * sigma + 1) | 1
    dx = torch.rand(1, 1, h, w, generator=gen) * 2 - 1
    dy = torch.rand(1, 1, h, w, generator=gen) * 2 - 1
    if sigma > 0:
        dx = TF.gaussian_blur(dx, [k, k], [sigma, sigma])
        dy = TF.gaussian_blur(dy, [k, k], [sigma, sigma])
    displacement = torch.cat([dx * alpha / w, dy * alpha / h], 1).permute(0, 2, 3, 1)
    return TF.elastic(x, displacement.to(x.device))


def elastic(x, rng, gen, sigma: float = 5.0):
    # sigma is given for 32-px images; scaled with the side so the smoothing kernel fits the image
    # (torchvision's 41-px kernel cannot pad an 8x8 image).
    return _elastic(x, gen, sigma * min(x.shape[-2:]) / 32).clamp(0, 1)


def paper_elastic(x, rng, gen, sigma: float = 5.0):
    side = min(x.shape[-2:])
    # torchvision's kernel is int(8 sigma + 1) px; reflect padding needs half of it below the side
    return _elastic(x, gen, sigma if int(8 * sigma + 1) // 2 < side else sigma * side / 32)


def blur_kernel(base: int, side: int) -> int:
    """The paper's kernel size (given for 32-px images) scaled to an image side, odd and >= 3."""
    k = max(3, int(round(base * side / 32)))
    return k if k % 2 else k + 1


def gaussian_blur(x, rng, gen):
    k = blur_kernel(int(rng.choice([5, 7, 9])), min(x.shape[-2:]))
    s = _u(rng, 8, 10)
    return TF.gaussian_blur(x, [k, k], [s, s])


def paper_gaussian_blur(x, rng, gen):
    s = _u(rng, 8, 10)
    return TF.gaussian_blur(x, [5, 9], [s, s])  # torchvision's kernel_size=(5, 9): 5 wide, 9 high


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


# The paper's code: the same transforms on the network's input, with torchvision's fixed blur
# kernel and unscaled, unclipped elastic. Colour jitter already clamps to [0, 1] after each op, as
# torchvision's does.
PAPER_TRANSFORMS: dict[str, Transform] = {
    **TRANSFORMS,
    "elastic": paper_elastic,
    "gaussian_blur": paper_gaussian_blur,
}

# Transforms without random parameters: drawing one twice with the same label repeats a query exactly.
DETERMINISTIC = frozenset({"hflip", "invert", "swap_rg"})


def available_transforms(channels: int) -> list[str]:
    """The transforms that change an image with this many channels (swap R/G needs colour)."""
    return [name for name in TRANSFORMS if channels >= 3 or name != "swap_rg"]


def apply_transform(
    name: str, x: torch.Tensor, rng: np.random.Generator, gen: torch.Generator, style: str = "pixel"
) -> torch.Tensor:
    """Transform one image ``(C, H, W)`` or a batch. ``pixel``: ``x`` in [0, 1], the result stays in
    [0, 1]. ``paper``: ``x`` is the network's input (see :func:`to_network_input`)."""
    table = PAPER_TRANSFORMS if style == "paper" else TRANSFORMS
    return table[name](x, rng, gen).float()


def _statistics(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    norm = getattr(model, "normalize", None)
    if norm is None:
        raise ValueError(
            "transforms: paper needs a model that normalises its own input (an ImageClassifier with "
            "a 'normalize' module); use transforms: pixel"
        )
    return norm.mean.detach().cpu(), norm.std.detach().cpu()


def to_network_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The tensor the network body sees for pixel-space ``x``: the model's own normalisation."""
    mean, std = _statistics(model)
    return (x - mean[0]) / std[0] if x.dim() == 3 else (x - mean) / std


def from_network_input(model: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """The pixel-space input the model maps to network input ``z`` (inverse of :func:`to_network_input`)."""
    mean, std = _statistics(model)
    return z * std[0] + mean[0] if z.dim() == 3 else z * std + mean
