"""Spectral signatures (Tran, Li and Madry 2018), standard form and the Δ-Influence code's variant."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from ..artifacts import Detection
from ..components import DetectionContext, Detector, Params
from ..features import penultimate_features
from ..hookspecs import hookimpl
from ._per_class import flag_per_class


def _top_direction(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The centred features (float64) and their top right-singular vector (sign arbitrary)."""
    centred = (features - features.mean(0, keepdim=True)).double()
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    return centred, vh[0]


def top_projection(features: torch.Tensor) -> np.ndarray:
    """Projection of each centred feature vector on the top right-singular vector (sign arbitrary)."""
    centred, v = _top_direction(features)
    return (centred @ v).numpy()


def tran_code_scores(features: torch.Tensor) -> np.ndarray:
    """Tran et al.'s released code: the top singular vector of the *centred* features, but the score
    is the absolute projection of the *uncentred* features on it.

    The paper's Algorithm 1 squares the centred projection. The offset <mean, v> of the released
    code turns the score into a signed one in effect whenever the offset is large against the
    spread (ReLU features lie in the positive orthant): points are ranked by how far they sit from
    the origin along v, not from the class mean, so clean points far on the near side of the mean
    no longer rank with the poisons. Facts read from their public ``compute_corr.py``.
    """
    _, v = _top_direction(features)
    return (features.double() @ v).abs().numpy()


def spectral_scores(features: torch.Tensor) -> np.ndarray:
    """Tran et al.'s score: squared projection of each centred feature vector on the top singular vector."""
    return top_projection(features) ** 2


def skew_signed_scores(features: torch.Tensor) -> np.ndarray:
    """Ours: the projection itself, its sign chosen so that its third moment is positive.

    A poison share eps < 1/2 of the class sits at (1 - eps) * delta from the class mean along the
    top direction and the clean points at -eps * delta, so the distribution is skewed toward the
    poisons. Squaring also ranks the clean points far on the other side of the mean highly, which
    costs recall when eps is large (about a third of the class); the signed score does not.
    """
    proj = top_projection(features)
    return proj if (proj**3).mean() >= 0 else -proj


def paper_code_scores(features: torch.Tensor, sv_threshold: float) -> np.ndarray:
    """Norm of each (uncentred) feature vector's projection on every right-singular direction whose
    singular value exceeds ``sv_threshold``; the SVD is of all training points together."""
    u, s, _ = torch.linalg.svd(features.double(), full_matrices=False)
    keep = s > sv_threshold
    return (u[:, keep] * s[keep]).norm(dim=1).numpy()


class SpectralSignatures(Detector):
    """Per class: centre penultimate features, score by the top singular direction, drop the top 1.5 eps n.

    ``form="standard"`` is Tran et al.: per class, centred, score = squared projection on the top
    singular vector, remove the ``removal_factor * expected_poison_rate * n_class`` highest scores.

    ``form="paper-code"`` is what the Δ-Influence authors' notebook computed (facts read from their
    public code): one SVD of the *uncentred* penultimate features of the whole training set (no
    split by class), keep every singular direction with singular value > ``sv_threshold`` (7 in
    their BadNet/CIFAR-10 notebook), score = norm of a point's projection on those directions, flag
    when the score > ``contribution_threshold`` (7). Both thresholds are absolute and were set for a
    ResNet-18 on 50,000 CIFAR images; they do not transfer to other models or set sizes, so on the
    digits CNN this form flags whatever the raw feature norms make of them (see the docs page).

    ``score="tran-code"`` (standard form only) is the score of Tran et al.'s released code
    (:func:`tran_code_scores`): same direction, uncentred absolute projection.

    ``score="skew-signed"`` (standard form only) is ours, not Tran et al.'s: rank by the signed
    projection oriented toward the skewed tail (:func:`skew_signed_scores`) instead of its square.
    It is not the default; the published method is ``score="squared"``.
    """

    name = "spectral"

    class Params(Params):
        form: Literal["standard", "paper-code"] = Field(
            "standard", description="standard Tran et al. form, or the Δ-Influence code's global variant"
        )
        expected_poison_rate: float = Field(
            0.05, gt=0, lt=1, description="standard form: eps, the poison share assumed per class"
        )
        removal_factor: float = Field(
            1.5, gt=0, description="standard form: remove the top factor * eps * n_class"
        )
        score: Literal["squared", "tran-code", "skew-signed"] = Field(
            "squared",
            description="standard form: the paper's squared centred projection; tran-code: their released "
            "code's absolute uncentred projection; skew-signed (ours): the signed projection oriented "
            "toward its skewed tail",
        )
        sv_threshold: float = Field(
            7.0, ge=0, description="paper-code form: keep singular directions with singular value above this"
        )
        contribution_threshold: float = Field(
            7.0, ge=0, description="paper-code form: flag points whose projection norm exceeds this"
        )

    def detect(self, ctx: DetectionContext) -> Detection:
        feats = penultimate_features(ctx.model, ctx.train.x)
        if self.params.form == "paper-code":
            scores = paper_code_scores(feats, self.params.sv_threshold)
            return Detection(np.flatnonzero(scores > self.params.contribution_threshold), {"score": scores})
        score = {
            "squared": spectral_scores,
            "tran-code": tran_code_scores,
            "skew-signed": skew_signed_scores,
        }[self.params.score]
        share = self.params.removal_factor * self.params.expected_poison_rate

        def one_class(members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            s = score(feats[members])
            return s, members[np.argsort(-s)[: int(round(share * len(members)))]]

        return flag_per_class(ctx.train.y.numpy(), 2, one_class)


@hookimpl
def register_detectors(register) -> None:
    register(SpectralSignatures)
