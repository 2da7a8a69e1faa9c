"""A small CNN that trains on the 8x8 digits in seconds on a CPU (the default suite's model)."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from ..components import ModelFamily, Params
from ..hookspecs import hookimpl
from . import ImageClassifier


class SmallCNN(ModelFamily):
    """Three 3x3 conv layers and two linear layers, with batch norm (~23k parameters on digits)."""

    name = "small-cnn"

    class Params(Params):
        width: int = Field(16, ge=4, description="channels of the first conv layer (then 2x)")
        hidden: int = Field(64, ge=8, description="size of the penultimate feature layer")

    def build(self, image_shape, num_classes, mean, std) -> ImageClassifier:
        c = image_shape[0]
        k = self.params.width
        body = nn.Sequential(
            nn.Conv2d(c, k, 3, padding=1, bias=False),
            nn.BatchNorm2d(k),
            nn.ReLU(),
            nn.Conv2d(k, 2 * k, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * k),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * k, 2 * k, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * k),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d((2, 2)),
            nn.Flatten(),
            nn.Linear(2 * k * 4, self.params.hidden),
            nn.ReLU(),
        )
        return ImageClassifier(body, self.params.hidden, num_classes, mean, std)


@hookimpl
def register_models(register) -> None:
    register(SmallCNN)
