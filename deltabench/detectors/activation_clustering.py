"""Activation clustering (Chen et al. 2018)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from ..artifacts import Detection
from ..components import DetectionContext, Detector, Params
from ..features import penultimate_features
from ..hookspecs import hookimpl
from ._per_class import flag_per_class


def two_clusters(features: np.ndarray, reduction: str, components: int, seed: int) -> np.ndarray:
    """k-means (k=2) labels of ``features`` after reducing them to ``components`` dimensions."""
    from sklearn.cluster import KMeans  # imported here: loading the registry stays fast
    from sklearn.decomposition import PCA, FastICA

    k = min(components, features.shape[0] - 1, features.shape[1])
    if reduction == "pca":
        reduced = PCA(n_components=k, random_state=seed).fit_transform(features)
    else:
        reduced = FastICA(
            n_components=k, random_state=seed, max_iter=1000, whiten="unit-variance"
        ).fit_transform(features)
    return KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(reduced)


class ActivationClustering(Detector):
    """Per class: penultimate features -> PCA(3) or ICA(10) -> 2-means -> flag the smaller cluster.

    Defaults follow the Δ-Influence code (PCA to 3 dimensions); ``reduction="ica"`` with 10
    components is Chen et al.'s original. ``max_cluster_share`` only flags the smaller cluster when
    its share of the class is at most this value; the default 0.5 flags it in every class (as the
    paper's code did, which is why AC flags ~40% of CIFAR-10). Chen et al. suggest ~0.35 as a rule
    that a class holds no poison when both clusters are large. k-means uses 10 restarts seeded from
    the context's RNG (ours). Score per point: 1 - share of its cluster in its class (higher = in a
    smaller cluster).
    """

    name = "activation-clustering"

    class Params(Params):
        reduction: Literal["pca", "ica"] = Field("pca", description="pca (paper's code) or ica (original)")
        components: int | None = Field(
            None, ge=1, description="dimensions after reduction; null = 3 for pca, 10 for ica"
        )
        max_cluster_share: float = Field(
            0.5, gt=0, le=0.5, description="flag the smaller cluster only if its class share is at most this"
        )

    def detect(self, ctx: DetectionContext) -> Detection:
        p = self.params
        components = p.components or (3 if p.reduction == "pca" else 10)
        feats = penultimate_features(ctx.model, ctx.train.x).double().numpy()

        def one_class(members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            seed = int(ctx.rng.integers(2**31 - 1))
            assign = two_clusters(feats[members], p.reduction, components, seed)
            share = np.bincount(assign, minlength=2) / len(members)
            small = int(np.argmin(share))
            chosen = members[assign == small] if share[small] <= p.max_cluster_share else members[:0]
            return 1.0 - share[assign], chosen

        return flag_per_class(ctx.train.y.numpy(), 3, one_class)


@hookimpl
def register_detectors(register) -> None:
    register(ActivationClustering)
