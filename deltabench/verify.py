"""Recompute random cells of a published folder and check that they give its numbers.

A reader need not trust a CSV: each results CSV's manifest holds the suite as resolved, so any of
its cells can be run again. Detection and unlearning are recomputed in a scratch cache; the
victim comes from the run's victim pack (when its manifest names one that is here) or the run's
cache, and is trained again only when neither has it (then another machine's victim may differ).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import suite_from_dict
from .file_digest import sha256_file
from .leaderboard import load_results
from .manifest import manifest_path, read_manifest
from .packs import VictimPack, copy_upstream, install_victims, pack_folder
from .registry import Registry
from .rows import cell_row, ok_rows, results_files
from .runner import plan_jobs
from .stages import Stages

__all__ = ["COUNTS", "RATES", "CellCheck", "edited_csvs", "verify_cells"]

#: compared exactly
COUNTS = ["n_poisons", "flagged", "true_poisons_flagged"]
#: compared within the tolerance ``atol``
RATES = ["victim_clean_acc", "victim_psr", "precision", "recall", "unlearned_clean_acc", "unlearned_psr"]


@dataclass
class CellCheck:
    """One recomputed cell: where it is, where its victim came from, and what disagreed."""

    cell: str
    source: str
    victim_from: str
    differences: list[str]

    @property
    def agrees(self) -> bool:
        return not self.differences


def _differences(published: dict[str, Any], again: dict[str, Any], atol: float) -> list[str]:
    out = []
    for col in COUNTS + RATES:
        a, b = float(published.get(col, math.nan)), float(again.get(col, math.nan))
        if math.isnan(a) and math.isnan(b):
            continue
        same = a == b if col in COUNTS else abs(a - b) <= atol
        if not same:
            out.append(f"{col} {a:g} (CSV) vs {b:g} (recomputed)")
    return out


def _planned(folder: Path, registry: Registry) -> dict[str, tuple[Any, Any, Any, Path | None]]:
    """cell_id -> (job, detector, unlearner, victim pack if here) over the manifests of the folder's
    CSVs; a job's ``cache_dir`` is where its run kept its stages (a pack run's own folder)."""
    cells: dict[str, tuple[Any, Any, Any, Path | None]] = {}
    for csv in results_files(folder):
        manifest = read_manifest(manifest_path(csv))
        if manifest is None:
            continue
        parsed = suite_from_dict(manifest["suite"], registry, str(manifest_path(csv)))
        used = next((r["victims_pack"] for r in reversed(manifest["runs"]) if r.get("victims_pack")), None)
        pack = Path(used["path"]) if used and Path(used["path"]).is_dir() else None
        for job in plan_jobs(parsed):
            if used:
                job.cache_dir = str(Path(job.cache_dir) / pack_folder(used["pack_sha256"]))
            for cid, det, unl in job.cells():
                cells.setdefault(cid, (job, det, unl, pack))
    return cells


def edited_csvs(folder: Path) -> list[str]:
    """The folder's CSVs whose SHA-256 is not the one their manifest recorded (edited after the run)."""
    out = []
    for csv in results_files(folder):
        manifest = read_manifest(manifest_path(csv))
        if manifest is not None and manifest.get("csv_sha256") != sha256_file(csv):
            out.append(f"{csv}: SHA-256 differs from {manifest_path(csv).name} (changed after its run)")
    return out


def verify_cells(
    folder: Path,
    count: int,
    registry: Registry,
    *,
    seed: int = 0,
    atol: float = 1e-6,
    victims: Path | None = None,
) -> list[CellCheck]:
    """Recompute ``count`` random ``ok`` cells of ``folder`` (drawn with ``seed``)."""
    frame = load_results(folder)
    rows = ok_rows(frame)
    planned = _planned(folder, registry)
    if not planned:
        raise FileNotFoundError(
            f"{folder}: no manifest.json beside its results CSVs; rerun the suite with this version to write one"
        )
    rows = rows[rows["cell_id"].isin(planned)]
    if rows.empty:
        raise ValueError(
            f"{folder}: no ok cell of its CSVs is in its manifests' suites with this code "
            "(cell ids include the core code digest); check out the code_revision in manifest.json"
        )
    picked = np.random.default_rng(seed).choice(len(rows), size=min(count, len(rows)), replace=False)
    checks = []
    for i in sorted(picked):
        row = rows.iloc[i].to_dict()
        job, det, unl, pack_path = planned[row["cell_id"]]
        pack_path = victims or pack_path
        with tempfile.TemporaryDirectory(prefix="deltabench-verify-") as scratch:
            if pack_path is not None:
                job = dataclasses.replace(job, cache_dir=scratch, fresh=False)
                install_victims(VictimPack(pack_path), job, registry)
                origin = f"pack {pack_path}"
            else:
                found = copy_upstream(job, registry, Path(scratch))
                job = dataclasses.replace(job, cache_dir=scratch, fresh=False)
                origin = "cache" if found >= 2 else "trained again"  # attack and victim
            stages = Stages(job, registry)
            again = cell_row(
                job,
                row["cell_id"],
                det,
                unl,
                poisoned=stages.poisoned(),
                victim=stages.victim(),
                detection=stages.detection(det),
                unlearning=stages.unlearning(det, unl),
            )
        label = f"{row['dataset']}/{row['attack']}/seed {row['seed']}/{row['detector']}/{row['unlearner']}"
        checks.append(CellCheck(label, str(row.get("source", "")), origin, _differences(row, again, atol)))
    return checks
