"""A tiny, hand-made results frame (and optionally a cache holding its Δ-Influence stages) for the
exports and site tests: 3 victims, 2 detectors, 2 unlearners, known numbers, built in milliseconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deltabench.artifacts import Detection, ImageSet, PoisonedData
from deltabench.cache import ArtifactStore
from deltabench.measure import StageCost
from deltabench.stages import DetectionStage, PoisonedStage

N_TRAIN, POISONS = 40, np.arange(5)


def tiny_results() -> pd.DataFrame:
    """Rows of a run: oracle always succeeds with eu; delta-influence succeeds on seeds 0 and 1."""
    rows = []
    for seed in range(3):
        victim = {"suite": "tiny", "dataset": "digits", "model": "small-cnn", "attack": "badnet", "seed": seed,
                  "status": "ok", "error": "", "n_poisons": 5, "clean_model_acc": 0.98, "victim_clean_acc": 0.97,
                  "victim_psr": 1.0, "attack_key": f"a{seed}", "detect_s": 0.01}  # fmt: skip
        for detector, flagged, hits, seconds in [
            ("oracle", 5, 5, 0.01),
            ("delta-influence", 8, 4 + (seed < 2), 2.0),
        ]:
            for unlearner in ["none", "eu"]:
                psr = 1.0 if unlearner == "none" else (0.0 if hits == 5 else 0.5)
                rows.append({**victim, "detector": detector, "unlearner": unlearner, "flagged": flagged,
                             "true_poisons_flagged": hits, "precision": hits / flagged, "recall": hits / 5,
                             "unlearned_psr": psr, "unlearned_clean_acc": 0.96 + 0.005 * seed,
                             "success": psr < 0.05, "detect_s": seconds + 0.5 * seed,
                             "detect_key": f"d-{detector}-{seed}"})  # fmt: skip
    return pd.DataFrame(rows)


def write_cache(frame: pd.DataFrame, cache: Path) -> None:
    """Store each victim's poisoned data and Δ-Influence detection as the runner would: the poisons'
    deltas are negative for every auxiliary query, the clean points' centred on 0."""
    store = ArtifactStore(cache)
    rng = np.random.default_rng(0)
    images = ImageSet(torch.zeros(N_TRAIN, 1, 4, 4), torch.zeros(N_TRAIN, dtype=torch.long))
    for _, row in frame[frame["detector"] == "delta-influence"].drop_duplicates("detect_key").iterrows():
        data = PoisonedData(images, POISONS, images, target_class=0)
        store.save("attack", row["attack_key"], PoisonedStage(row["attack_key"], data, StageCost()))
        delta = rng.normal(0.0, 1.0, (10, N_TRAIN)).astype(np.float32)
        delta[:, POISONS] = -np.abs(delta[:, POISONS]) - 3.0
        detection = Detection(np.arange(8), {"delta_matrix": delta})
        store.save("detect", row["detect_key"], DetectionStage(row["detect_key"], detection, StageCost()))
