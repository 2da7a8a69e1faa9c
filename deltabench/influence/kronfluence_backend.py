"""EK-FAC, KFAC, diagonal and identity influence through kronfluence.

Settings follow the paper's code (docs/influence.md, "The engine"): every Conv2d and Linear layer tracked (kronfluence's default when the
task names no modules), train loss = summed cross-entropy, measurement = -margin summed over the
query batch. With that measurement kronfluence's score ``grad(-margin)^T H^-1 grad(loss_i)`` is
positive when removing training point i would raise the query's loss, i.e. i supports the query's
label: our sign convention, no flip needed.

One pass: all queries go in ONE query batch (``per_device_query_batch_size = n_queries``), so the
training set is walked once per ``score`` call whatever the number of queries (kronfluence walks it
once per query batch).

Conv2d patches are built by :mod:`.conv_patches` (bitwise the same as kronfluence's, ~25 % cheaper).
"""

from __future__ import annotations

import logging
import shutil
import warnings
from importlib import metadata
from itertools import count
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from ..artifacts import ImageSet
from .measurement import margin, summed_cross_entropy

warnings.filterwarnings("ignore", message=".*torch.cuda.amp.GradScaler.*", category=FutureWarning)

import kronfluence.module.conv2d  # noqa: E402
from kronfluence.analyzer import Analyzer, prepare_model  # noqa: E402
from kronfluence.arguments import FactorArguments, ScoreArguments  # noqa: E402
from kronfluence.task import Task  # noqa: E402
from kronfluence.utils.state import State  # noqa: E402

from .conv_patches import install  # noqa: E402

# the same patches without im2col (conv_patches.py); only on the kronfluence line whose
# extract_patches signature and column order it was checked against (bitwise, in its test)
if metadata.version("kronfluence").startswith("1.0."):
    install(kronfluence.module.conv2d)

__all__ = ["KronfluenceBackend", "MarginTask", "pin_device"]

FACTORS = "factors"


class MarginTask(Task):
    """Summed cross-entropy for training, -margin for queries; counts training examples seen."""

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.generator = generator
        self.train_examples = 0

    def compute_train_loss(self, batch, model: nn.Module, sample: bool = False) -> torch.Tensor:
        x, y = batch
        self.train_examples += len(y)
        logits = model(x)
        if sample:  # true Fisher: labels drawn from the model's own predictive distribution
            with torch.no_grad():
                probs = torch.softmax(logits.detach().double().cpu(), dim=1)
                y = torch.multinomial(probs, 1, generator=self.generator).squeeze(1).to(logits.device)
        return summed_cross_entropy(logits, y)

    def compute_measurement(self, batch, model: nn.Module) -> torch.Tensor:
        x, y = batch
        return -margin(model(x), y).sum()


def pin_device(device: torch.device) -> None:
    """Make kronfluence compute on ``device``. Its process-wide ``State`` is set by the first
    Analyzer of the process (a later one with another ``cpu`` flag keeps it) and knows only the
    current CUDA device (``cuda``, never ``cuda:1``); both are reset here, before every Analyzer."""
    State._reset_state()
    State(cpu=device.type == "cpu").device = device


class KronfluenceBackend:
    def __init__(self, model: nn.Module, train: ImageSet, settings, device: torch.device, output_dir: Path):
        self.settings = settings
        self.device = device
        self.train_ds = TensorDataset(train.x, train.y)
        self.task = MarginTask(torch.Generator().manual_seed(settings.seed))
        self.model = prepare_model(model, self.task)
        pin_device(device)
        self.analyzer = Analyzer(
            analysis_name="deltabench",
            model=self.model,
            task=self.task,
            cpu=device.type == "cpu",
            disable_tqdm=True,
            log_level=logging.WARNING,
            output_dir=str(output_dir),
        )
        self._names = count()
        self.train_examples_last_score = 0

    def fit(self) -> None:
        s = self.settings
        args = FactorArguments(
            strategy=s.backend,
            use_empirical_fisher=s.use_empirical_fisher,
            covariance_max_examples=s.covariance_max_examples,
            lambda_max_examples=s.lambda_max_examples,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.analyzer.fit_all_factors(
                factors_name=FACTORS,
                dataset=self.train_ds,
                per_device_batch_size=s.factor_batch_size,
                factor_args=args,
                overwrite_output_dir=True,
            )

    def score(self, queries: ImageSet) -> np.ndarray:
        name = f"scores{next(self._names)}"
        self.task.train_examples = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.analyzer.compute_pairwise_scores(
                scores_name=name,
                factors_name=FACTORS,
                query_dataset=TensorDataset(queries.x, queries.y),
                train_dataset=self.train_ds,
                per_device_query_batch_size=len(queries),
                per_device_train_batch_size=self.settings.train_batch_size,
                score_args=ScoreArguments(damping_factor=self.settings.damping_value),
                overwrite_output_dir=True,
            )
        self.train_examples_last_score = self.task.train_examples
        scores = self.analyzer.load_pairwise_scores(name)["all_modules"].float().cpu().numpy().copy()
        shutil.rmtree(self.analyzer.scores_output_dir(name), ignore_errors=True)
        return scores
