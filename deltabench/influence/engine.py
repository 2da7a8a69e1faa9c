"""The engine: settings, the per-victim cache, and dispatch to a backend.

Why a cache keyed by the weights: fitting EK-FAC factors is the expensive part (covariances,
eigendecomposition, eigenvalue correction), and it depends only on the model, the training set and
the settings, not on the queries. Every influence detector run on the same victim in one process
(the runner runs a victim's detectors in one job) therefore shares one fitted engine.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
import tempfile
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Literal, Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..artifacts import ImageSet

__all__ = [
    "BACKENDS",
    "PAPER_DAMPING",
    "Damping",
    "InfluenceSettings",
    "InfluenceEngine",
    "get_engine",
    "clear_engine_cache",
]

Backend = Literal["ekfac", "kfac", "diagonal", "identity", "trak", "exact"]
BACKENDS: tuple[str, ...] = ("ekfac", "kfac", "diagonal", "identity", "trak", "exact")
KRONFLUENCE_STRATEGIES = ("ekfac", "kfac", "diagonal", "identity")
# The paper's code calls kronfluence's compute_pairwise_scores without score arguments, so its
# damping is kronfluence 1.0.1's default ScoreArguments.damping_factor: an absolute 1e-8.
PAPER_DAMPING = 1e-8
Damping = Literal["heuristic", "paper"] | Annotated[float, Field(ge=0)]


class InfluenceSettings(BaseModel):
    """Everything that determines the fitted factors and the scores (part of the cache key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Backend = Field(
        "ekfac", description="ekfac, kfac, diagonal, identity (kronfluence), trak, exact"
    )
    damping: Damping = Field(
        "heuristic",
        description="damping added to the Hessian approximation: heuristic = 0.1 x its mean eigenvalue "
        "(kronfluence's heuristic; ours); paper = 1e-8, kronfluence 1.0.1's default damping_factor, "
        "which the paper's code used; or a number",
    )
    factor_batch_size: int = Field(256, ge=1, description="examples per batch when fitting factors")
    train_batch_size: int = Field(256, ge=1, description="training examples per batch when scoring")
    use_empirical_fisher: bool = Field(
        False, description="EK-FAC/KFAC: true labels instead of labels sampled from the model"
    )
    covariance_max_examples: int | None = Field(
        None, ge=1, description="EK-FAC/KFAC: fit covariances on at most this many examples (null = all)"
    )
    lambda_max_examples: int | None = Field(
        None, ge=1, description="EK-FAC: fit the eigenvalue correction on at most this many (null = all)"
    )
    proj_dim: int = Field(512, ge=8, description="TRAK: dimension of the random gradient projection")
    seed: int = Field(0, description="seed of sampled Fisher labels (kronfluence) and projections (TRAK)")

    @property
    def damping_value(self) -> float | None:
        """The absolute damping, or None for the heuristic (0.1 x the mean eigenvalue)."""
        if self.damping == "heuristic":
            return None
        return PAPER_DAMPING if self.damping == "paper" else float(self.damping)


class _Backend(Protocol):
    def fit(self) -> None: ...

    def score(self, queries: ImageSet) -> np.ndarray: ...

    train_examples_last_score: int


class InfluenceEngine:
    """Scores of every training point on any batch of queries, factors fitted once.

    ``scores(queries)`` returns an ``(n_queries, n_train)`` float32 array in one pass over the
    training set: all query gradients are computed (and preconditioned) first, then each training
    batch's per-example gradients are computed once and dotted with all of them. Positive = the
    training point supports the query's label (removing it lowers the query's margin).

    The engine works on a private eval-mode copy of the model (kronfluence wraps layers in place,
    and batch-norm statistics must not move), and keeps backend files under ``output_dir``
    (a temporary directory it removes itself when none is given).
    """

    def __init__(
        self,
        model: nn.Module,
        train: ImageSet,
        settings: InfluenceSettings | None = None,
        *,
        device: torch.device | str = "cpu",
        output_dir: str | Path | None = None,
    ) -> None:
        self.settings = settings or InfluenceSettings()
        self.device = torch.device(device)
        self.train = ImageSet(train.x.detach().cpu().float(), train.y.detach().cpu().long())
        self.model = copy.deepcopy(model).to(self.device).eval()
        self._own_dir = output_dir is None
        self.output_dir = Path(
            tempfile.mkdtemp(prefix="deltabench-influence-") if output_dir is None else output_dir
        )
        self.output_dir.mkdir(parents=True, exist_ok=True)
        # weakref.finalize also runs at interpreter exit, unlike __del__ for objects still alive then.
        self._cleanup = (
            weakref.finalize(self, shutil.rmtree, str(self.output_dir), True) if self._own_dir else None
        )
        self._backend = self._make_backend()
        self._fitted = False

    def _make_backend(self) -> _Backend:
        s = self.settings
        if s.backend in KRONFLUENCE_STRATEGIES:
            from .kronfluence_backend import KronfluenceBackend

            return KronfluenceBackend(self.model, self.train, s, self.device, self.output_dir)
        if s.backend == "trak":
            from .trak_backend import TrakBackend

            return TrakBackend(self.model, self.train, s, self.device, self.output_dir)
        from .exact import ExactBackend

        return ExactBackend(self.model, self.train, s, self.device)

    def fit(self) -> InfluenceEngine:
        """Fit the backend's factors (idempotent)."""
        if not self._fitted:
            self._backend.fit()
            self._fitted = True
        return self

    def scores(self, queries: ImageSet) -> np.ndarray:
        """``(n_queries, n_train)`` influence scores, all queries in one pass over the training set."""
        if len(queries) == 0:
            return np.zeros((0, len(self.train)), dtype=np.float32)
        self.fit()
        q = ImageSet(queries.x.detach().cpu().float(), queries.y.detach().cpu().long())
        out = np.asarray(self._backend.score(q), dtype=np.float32)
        if out.shape != (len(q), len(self.train)):
            raise RuntimeError(f"backend returned shape {out.shape}, expected {(len(q), len(self.train))}")
        return out

    @property
    def train_examples_last_score(self) -> int:
        """Training examples the last ``scores`` call pushed through the model (one pass = n_train)."""
        return self._backend.train_examples_last_score

    def close(self) -> None:
        """Remove the backend's files if the engine created their directory."""
        if self._cleanup is not None:
            self._cleanup()


def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(str((tuple(t.shape), t.dtype)).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:24]


def engine_key(model: nn.Module, train: ImageSet, settings: InfluenceSettings, device: torch.device) -> str:
    """Hash of the weights (and buffers), the training set, the settings and the device."""
    state = [t for _, t in sorted(model.state_dict().items())]
    return _digest(*state, train.x.float(), train.y) + settings.model_dump_json() + str(device)


_CACHE: OrderedDict[str, InfluenceEngine] = OrderedDict()
_CACHE_SIZE = 2


def get_engine(
    model: nn.Module,
    train: ImageSet,
    settings: InfluenceSettings | None = None,
    *,
    device: torch.device | str = "cpu",
) -> InfluenceEngine:
    """A fitted engine for this victim, reused while the same weights, data and settings come back.

    At most two engines are kept (least recently used dropped), so a process that walks through
    many victims holds the factors of one or two at a time.
    """
    settings = settings or InfluenceSettings()
    device = torch.device(device)
    key = engine_key(model, train, settings, device)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    engine = InfluenceEngine(model, train, settings, device=device).fit()
    _CACHE[key] = engine
    while len(_CACHE) > _CACHE_SIZE:
        _, old = _CACHE.popitem(last=False)
        old.close()
    return engine


def clear_engine_cache() -> None:
    """Drop every cached engine and its files."""
    while _CACHE:
        _, engine = _CACHE.popitem()
        engine.close()
