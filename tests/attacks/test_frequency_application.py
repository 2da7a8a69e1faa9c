"""application: paper: the network sees the min-max rescaled image itself, as in the paper's code."""

from __future__ import annotations

import torch

from deltabench.attacks.frequency import apply_trigger
from deltabench.models import ImageClassifier

MEAN, STD = (0.5,), (0.25,)
X = torch.tensor([[[[0.0, 0.5], [0.5, 1.0]]]])  # one 1x2x2 image
TRIGGER = torch.tensor([[[0.1, 0.0], [0.0, 0.0]]])  # pixel units


def _network_input(x: torch.Tensor) -> torch.Tensor:
    """What the network body receives from a deltabench model (which normalises its own input)."""
    model = ImageClassifier(torch.nn.Flatten(), 4, 2, MEAN, STD)
    return model.normalize(x)


def test_paper_mode_known_answer():
    # By hand: z = (x - 0.5) / 0.25 + 0.1 / 0.25 on the first pixel = [-1.6, 0, 0, 2]; min-max over
    # the image: u = (z + 1.6) / 3.6 = [0, 4/9, 4/9, 1]. The paper's code feeds u to the network.
    u = torch.tensor([[[[0.0, 4 / 9], [4 / 9, 1.0]]]])
    paper = apply_trigger(X, TRIGGER, "paper", MEAN, STD)
    torch.testing.assert_close(_network_input(paper), u, atol=1e-6, rtol=0)
    # stored pixels = u * std + mean, so that the model's normalisation gives back u
    torch.testing.assert_close(paper, u * 0.25 + 0.5, atol=1e-6, rtol=0)
    # rescale (ours): the same u, normalised once more by the model
    rescale = apply_trigger(X, TRIGGER, "rescale", MEAN, STD)
    torch.testing.assert_close(rescale, u, atol=1e-6, rtol=0)
    torch.testing.assert_close(_network_input(rescale), (u - 0.5) / 0.25, atol=1e-6, rtol=0)


def test_paper_mode_network_input_spans_zero_to_one_per_image(digits):
    x = digits.test.x[:20]
    trigger = 0.1 * torch.sin(torch.linspace(0, 3, 64)).reshape(1, 8, 8)
    seen = _network_input_for(digits, apply_trigger(x, trigger, "paper", digits.mean, digits.std))
    torch.testing.assert_close(seen.amin(dim=(1, 2, 3)), torch.zeros(20), atol=1e-5, rtol=0)
    torch.testing.assert_close(seen.amax(dim=(1, 2, 3)), torch.ones(20), atol=1e-5, rtol=0)
    # a clean digit reaches the network normalised: far outside [0, 1]
    clean = _network_input_for(digits, x)
    assert float(clean.amax()) > 1.5 and float(clean.amin()) < -0.5


def _network_input_for(dataset, x: torch.Tensor) -> torch.Tensor:
    model = ImageClassifier(torch.nn.Flatten(), 64, 10, dataset.mean, dataset.std)
    return model.normalize(x)
