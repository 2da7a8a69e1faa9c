"""Leaderboard rows, built in one place from typed stage results, and the CSV files that hold them.

One row per (detector, unlearner) cell of a job. A row carries what was run (labels, parameters,
recipe, seed), what came out (victim, detection and unlearning figures), what it cost, and where it
came from (stage keys, library versions, code revision), so a CSV alone can be audited.
"""

from __future__ import annotations

import json
import subprocess
import traceback
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .measure import StageCost
from .metrics import SUCCESS_PSR, detection_metrics
from .outputs import (
    RESULTS_FILE,
    SHARD_PATTERN,
    SUBMISSION_PATTERNS,
    package_version,
    results_files,
    shard_file,
    versions,
)

if TYPE_CHECKING:
    from .config import ComponentSpec
    from .runner import Job
    from .stages import (
        CleanModelStage,
        DetectionStage,
        FloorStage,
        PoisonedStage,
        UnlearningStage,
        VictimStage,
    )

__all__ = [
    "RESULTS_FILE",
    "SHARD_PATTERN",
    "SUBMISSION_PATTERNS",
    "COLUMNS",
    "SETTING",
    "results_files",
    "shard_file",
    "cell_row",
    "error_text",
    "write_rows_atomically",
    "read_rows",
    "ok_rows",
    "success_flags",
]


COLUMNS = [
    "suite", "dataset", "model", "attack", "seed", "detector", "unlearner", "status", "error",
    "n_train", "n_poisons", "target_class", "clean_model_acc", "clean_model_psr",
    "victim_clean_acc", "victim_psr",
    "flagged", "true_poisons_flagged", "precision", "recall",
    "unlearned_clean_acc", "unlearned_psr", "acc_change", "success",
    "attack_s", "victim_s", "detect_s", "unlearn_s",
    "attack_peak_mb", "victim_peak_mb", "detect_peak_mb", "unlearn_peak_mb",
    "attack_gpu_peak_mb", "victim_gpu_peak_mb", "detect_gpu_peak_mb", "unlearn_gpu_peak_mb",
    "dataset_params", "model_params", "attack_params", "detector_params", "unlearner_params",
    "training", "affected_points", "device", "cell_id", "attack_key", "victim_key", "detect_key",
    "versions", "code_revision",
]  # fmt: skip


#: the columns that name an attack setting (a victim is a setting and a seed): what the leaderboard
#: and the stability check group by
SETTING = ["dataset", "model", "attack"]


@cache
def code_revision() -> str:
    """The git commit of the deltabench source (with ``-dirty`` if modified), else its version."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "deltabench"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return f"release-{package_version('deltabench')}"


def error_text(exc: BaseException) -> str:
    """The ``error`` column: type, message, and the file and line that raised."""
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}".replace("\n", " ")[:500]


def _cost(prefix: str, cost: StageCost) -> dict[str, float]:
    return {
        f"{prefix}_s": round(cost.seconds, 3),
        f"{prefix}_peak_mb": round(cost.peak_mb, 1),
        f"{prefix}_gpu_peak_mb": round(cost.gpu_peak_mb, 1),
    }


def cell_row(
    job: Job,
    cell_id: str,
    detector: ComponentSpec,
    unlearner: ComponentSpec,
    *,
    poisoned: PoisonedStage | None = None,
    victim: VictimStage | None = None,
    clean: CleanModelStage | None = None,
    floor: FloorStage | None = None,
    detection: DetectionStage | None = None,
    unlearning: UnlearningStage | None = None,
    status: str = "ok",
    error: str = "",
) -> dict[str, Any]:
    """A cell's row from the stage results it got to; the columns of stages not reached stay empty."""
    from .stages import resolve_device

    row: dict[str, Any] = {
        "suite": job.suite_name,
        "dataset": job.dataset.label,
        "model": job.model.label,
        "attack": job.attack.label,
        "seed": job.seed,
        "detector": detector.label,
        "unlearner": unlearner.label,
        "status": status,
        "error": error,
        "cell_id": cell_id,
        "dataset_params": job.dataset.params_json,
        "model_params": job.model.params_json,
        "attack_params": job.attack.params_json,
        "detector_params": detector.params_json,
        "unlearner_params": unlearner.params_json,
        "training": json.dumps(job.training, sort_keys=True),
        "affected_points": job.affected_points,
        "device": str(resolve_device(job.device)),
        "versions": versions(),
        "code_revision": code_revision(),
    }
    if poisoned is not None and victim is not None:
        data = poisoned.data
        row |= {
            "n_train": len(data.train),
            "n_poisons": int(data.poison_indices.size),
            "target_class": data.target_class,
            "clean_model_acc": clean.clean_acc if clean else float("nan"),
            "clean_model_psr": floor.psr if floor else float("nan"),
            "victim_clean_acc": victim.clean_acc,
            "victim_psr": victim.psr,
            **_cost("attack", poisoned.cost),
            **_cost("victim", victim.cost),
            "attack_key": poisoned.key,
            "victim_key": victim.key,
        }
        if detection is not None:
            row |= {
                **detection_metrics(detection.detection.flagged, data.poison_indices),
                **_cost("detect", detection.cost),
                "detect_key": detection.key,
            }
        if unlearning is not None:
            row |= {
                "unlearned_clean_acc": unlearning.clean_acc,
                "unlearned_psr": unlearning.psr,
                "acc_change": unlearning.clean_acc - victim.clean_acc,
                "success": bool(unlearning.psr < SUCCESS_PSR),
                **_cost("unlearn", unlearning.cost),
            }
    return row


def write_rows_atomically(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write the CSV to a temporary file and rename it into place (never a half-written CSV)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in frame:
            frame[col] = np.nan
    extra = [c for c in frame.columns if c not in COLUMNS]
    frame = frame[COLUMNS + extra]
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return pd.read_csv(path, keep_default_na=False, na_values=[""]).to_dict("records")


def ok_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of cells that ran to the end (``status`` ok): the only ones with outcomes."""
    return frame[frame["status"] == "ok"]


def success_flags(values: pd.Series) -> pd.Series:
    """A ``success`` column as booleans, whether pandas read it as bools or, when the column also
    has empty cells (skipped or failed rows), as objects or the strings ``True`` / ``False``."""
    return values.astype(str).str.lower().eq("true")
