"""Spectral signatures (Tran, Li and Madry 2018)."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from ..artifacts import Detection
from ..components import DetectionContext, Detector, Params
from ..features import penultimate_features
from ..hookspecs import hookimpl


def spectral_scores(features: torch.Tensor) -> np.ndarray:
    """Squared projection of each centred feature vector on the top right-singular vector."""
    centred = features - features.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(centred.double(), full_matrices=False)
    return (centred.double() @ vh[0]).pow(2).numpy()


class SpectralSignatures(Detector):
    """Per class: centre penultimate features, score by the top singular direction, drop the top 1.5 eps n."""

    name = "spectral"

    class Params(Params):
        expected_poison_rate: float = Field(
            0.05, gt=0, lt=1, description="eps, the poison share assumed per class"
        )
        removal_factor: float = Field(1.5, gt=0, description="remove the top factor * eps * n_class")

    def detect(self, ctx: DetectionContext) -> Detection:
        feats = penultimate_features(ctx.model, ctx.train.x)
        labels = ctx.train.y.numpy()
        scores = np.zeros(len(labels))
        flagged: list[np.ndarray] = []
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            if len(members) < 2:
                continue
            s = spectral_scores(feats[members])
            scores[members] = s
            k = int(round(self.params.removal_factor * self.params.expected_poison_rate * len(members)))
            if k > 0:
                flagged.append(members[np.argsort(-s)[:k]])
        chosen = np.concatenate(flagged) if flagged else np.empty(0, dtype=np.int64)
        return Detection(chosen, {"score": scores})


@hookimpl
def register_detectors(register) -> None:
    register(SpectralSignatures)
