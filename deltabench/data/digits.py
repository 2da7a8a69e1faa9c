"""scikit-learn's bundled handwritten digits: 1,797 real 8x8 grey images, no download needed."""

from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import Field

from ..artifacts import Dataset, ImageSet
from ..components import DatasetInfo, DatasetSource, Params
from ..hookspecs import hookimpl

N_IMAGES = 1797  # scikit-learn's bundled copy: 10 classes of 8x8 grey images


class Digits(DatasetSource):
    """Real 8x8 handwritten digits (UCI via scikit-learn), stratified train/test split."""

    name = "digits"

    class Params(Params):
        test_fraction: float = Field(0.3, gt=0, lt=1, description="share of images held out for test")
        split_seed: int | None = Field(
            0, description="seed of the split; null = use the suite seed (a new split per seed)"
        )

    def info(self) -> DatasetInfo:
        # train_test_split rounds the test share up
        return DatasetInfo(
            self.name, 10, (1, 8, 8), test_size=math.ceil(self.params.test_fraction * N_IMAGES)
        )

    def load(self, seed: int) -> Dataset:
        from sklearn.datasets import load_digits  # imported here: loading the registry stays fast
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        x = np.asarray(bunch.images, dtype=np.float32)[:, None] / 16.0  # values are 0..16
        y = np.asarray(bunch.target, dtype=np.int64)
        split_seed = seed if self.params.split_seed is None else self.params.split_seed
        idx_train, idx_test = train_test_split(
            np.arange(len(y)),
            test_size=self.params.test_fraction,
            stratify=y,
            random_state=split_seed,
        )
        idx_train.sort()
        idx_test.sort()
        train = ImageSet(torch.from_numpy(x[idx_train]), torch.from_numpy(y[idx_train]))
        test = ImageSet(torch.from_numpy(x[idx_test]), torch.from_numpy(y[idx_test]))
        mean = float(train.x.mean())
        std = float(train.x.std())
        return Dataset("digits", train, test, 10, (mean,), (std,), [str(i) for i in range(10)])


@hookimpl
def register_datasets(register) -> None:
    register(Digits)
