"""Whether a suite's last run is still current, decided from files alone (no torch, no components).

A rerun of a finished suite computes nothing, yet the full path loads the registry, which imports
every component module and torch with them: ~2.5 s of a ~3.6 s cached rerun of the quick suite.
So ``deltabench run`` asks here first. When the suite file, the deltabench code, the installed
plugins and package versions are those its last complete run recorded (:func:`run_stamp`, in the
manifest), the CSV is the one that run wrote and holds no failed cell, and no GPU could be in play,
the full path would reuse every row and write the same files: the run is skipped. Anything else,
however small, takes the full path, which decides cell by cell as before.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from importlib import metadata
from pathlib import Path

import yaml

from .file_digest import sha256_file
from .locking import OutputLockError, hold_output_lock
from .outputs import (
    RESULTS_FILE,
    REUSABLE_STATUSES,
    SHARD_PATTERN,
    default_output,
    manifest_path,
    read_manifest,
    report_is_current,
    versions,
)

__all__ = ["gpu_possible", "run_stamp", "finished_rows"]

_PACKAGE = Path(__file__).resolve().parent


def gpu_possible() -> bool:
    """Whether ``device: auto`` could pick a GPU here, answered without torch: on Linux only when
    an NVIDIA or AMD device node exists; on any other system, conservatively, always."""
    if not sys.platform.startswith("linux"):
        return True
    dev = Path("/dev")
    return any(dev.glob("nvidia[0-9]*")) or (dev / "kfd").exists()


def _package_digest() -> str:
    """Every file of the installed deltabench package (code, site assets), byte for byte."""
    digest = hashlib.sha256()
    for path in sorted(p for p in _PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _plugins() -> list[str]:
    """The installed plugins (entry points of the ``deltabench`` group, as hookspecs.PROJECT) with
    their distributions' versions: a plugin upgrade changes the stamp."""
    found = []
    for ep in metadata.entry_points(group=_PACKAGE.name):
        dist = ep.dist
        found.append(f"{ep.name}={ep.value} ({dist.name if dist else '?'} {dist.version if dist else '?'})")
    return sorted(found)


def run_stamp() -> str:
    """What, besides the suite file and the cache, decides a run's rows on this machine."""
    parts = {
        "code": _package_digest(),
        "plugins": _plugins(),
        "packages": versions(),
        "gpu_possible": gpu_possible(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _output_folder(suite: Path) -> Path | None:
    try:
        data = yaml.safe_load(suite.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    output = data.get("output")
    return default_output(data["name"], output if isinstance(output, str) else None)


def _all_reusable(results: Path) -> int | None:
    """The CSV's row count when every row would be kept by a rerun, else None."""
    with results.open(newline="", encoding="utf-8") as handle:
        statuses = [row.get("status") for row in csv.DictReader(handle)]
    return len(statuses) if statuses and all(s in REUSABLE_STATUSES for s in statuses) else None


def finished_rows(suite: Path, *, report: bool = True) -> tuple[int, Path] | None:
    """``(rows, results CSV)`` when running ``suite`` again would compute nothing and write the
    same files (with ``report``, ``leaderboard.md`` too); None when the full path must decide."""
    folder = _output_folder(suite)
    if folder is None or gpu_possible():
        return None
    results = folder / RESULTS_FILE
    if not results.is_file() or any(folder.glob(SHARD_PATTERN)):
        return None  # shard CSVs are gathered into results.csv by the full path
    manifest = read_manifest(manifest_path(results))
    runs = (manifest or {}).get("runs") or [{}]
    last = runs[-1] if isinstance(runs[-1], dict) else {}
    if not (manifest and last.get("completed") is True and last.get("stamp")):
        return None
    try:
        with hold_output_lock(results):  # a run writing this folder now is left to the full path
            if (
                manifest.get("suite_sha256") != sha256_file(suite)
                or manifest.get("csv_sha256") != sha256_file(results)
                or last["stamp"] != run_stamp()
            ):
                return None
            rows = _all_reusable(results)
            if rows is None:
                return None
            if report and not report_is_current(folder):
                return None
            return rows, results
    except OutputLockError:
        return None
