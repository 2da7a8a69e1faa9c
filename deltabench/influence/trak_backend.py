"""TRAK (Park et al. 2023) through traker, from the single victim checkpoint.

TRAK's image-classification output function is the margin ``log p_y - log(1 - p_y)``, the same
margin as our measurement (``logit_y - logsumexp_{k!=y} logit_k``), so its scores are positive when a
training point supports the query's label: our convention, no flip needed.

On a CPU traker uses its ``BasicProjector``. We give it one block (``block_size = proj_dim``: 3x
faster than blocks of 100 here) and work around traker 0.3.2's single-block bug: ``finalize_features``
frees the projection matrix and never rebuilds it, so ``score`` would fail (or, were it rebuilt from
the generator's current state, project queries with a different matrix than the training set). We
regenerate it from the first block's saved generator state before scoring, i.e. the same matrix.
"""

from __future__ import annotations

import logging
from itertools import count
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..artifacts import ImageSet

__all__ = ["TrakBackend"]


class TrakBackend:
    def __init__(self, model: nn.Module, train: ImageSet, settings, device: torch.device, output_dir: Path):
        from trak import TRAKer
        from trak.projectors import BasicProjector, ProjectionType

        self.model = model.eval()
        self.train = train
        self.settings = settings
        self.device = device
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        projector = None
        if device.type == "cpu":
            projector = BasicProjector(
                grad_dim=n_params,
                proj_dim=settings.proj_dim,
                seed=settings.seed,
                proj_type=ProjectionType.normal,
                device=device,
                block_size=settings.proj_dim,
            )
        self.traker = TRAKer(
            model=self.model,
            task="image_classification",
            train_set_size=len(train),
            save_dir=str(output_dir),
            load_from_save_dir=True,  # (False skips creating experiments.json, which scoring needs)
            device="cpu" if device.type == "cpu" else str(device),
            projector=projector,
            proj_dim=settings.proj_dim,
            use_half_precision=False,
            projector_seed=settings.seed,
            logging_level=logging.WARNING,
        )
        self._names = count()
        self.train_examples_last_score = 0

    def _batches(self, data: ImageSet):
        b = self.settings.train_batch_size
        for i in range(0, len(data), b):
            yield [data.x[i : i + b].to(self.device), data.y[i : i + b].to(self.device)]

    def _restore_projection(self) -> None:
        proj = self.traker.projector
        if getattr(proj, "num_blocks", 2) == 1 and not proj.proj_matrix_available:
            proj.generate_sketch_matrix(proj.generator_states[0])

    def fit(self) -> None:
        state = self.model.state_dict()
        self.traker.load_checkpoint(state, model_id=0)
        for batch in self._batches(self.train):
            self.traker.featurize(batch=batch, num_samples=len(batch[1]))
        self.traker.finalize_features()
        self._restore_projection()

    def score(self, queries: ImageSet) -> np.ndarray:
        name = f"q{next(self._names)}"
        self._restore_projection()
        self.traker.start_scoring_checkpoint(
            exp_name=name, checkpoint=self.model.state_dict(), model_id=0, num_targets=len(queries)
        )
        for batch in self._batches(queries):
            self.traker.score(batch=batch, num_samples=len(batch[1]))
        scores = np.asarray(self.traker.finalize_scores(exp_name=name), dtype=np.float32)
        # The training features were computed once in fit(); scoring reuses them.
        self.train_examples_last_score = 0
        return scores.T.copy()
