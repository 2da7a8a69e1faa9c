"""Plans a suite's jobs, runs them through its executor and writes the CSV: nothing else.

One *job* per (dataset, model, attack, seed): it poisons the data, trains the victim (and a clean
model, whose PSR on the triggered test set is the attack's floor), then runs every
detector and, on each detection, every unlearner. Each (detector, unlearner) pair is a *cell* and
becomes one leaderboard row. The executor runs a job as the work units of :mod:`deltabench.units`
(first every victim, then every (victim, detector) pair), in any order or in parallel; the artifact
cache makes a rerun or a resumed run skip every finished stage, and the CSV is rewritten atomically
after each unit so no finished row is lost. Stages are computed by :mod:`deltabench.stages`, rows
built by :mod:`deltabench.rows`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .config import ComponentSpec, ParsedSuite
from .exceptions import NoAffectedPointError
from .locking import hold_output_lock
from .log import log
from .manifest import now, write_manifest
from .outputs import REUSABLE_STATUSES
from .packs import use_victim_pack
from .registry import Registry, default_registry
from .rows import (
    RESULTS_FILE,
    SHARD_PATTERN,
    cell_row,
    error_text,
    read_rows,
    shard_file,
    write_rows_atomically,
)
from .stages import Setting
from .units import forget_stages, run_upstream, stages_for, upstream_units
from .uptodate import run_stamp

__all__ = ["Job", "plan_jobs", "run_suite", "run_job", "RunSummary"]


@dataclass(kw_only=True)
class Job(Setting):
    """One victim's setting plus the cells to run on it: every (detector, unlearner) pair."""

    suite_name: str
    detectors: list[ComponentSpec]
    unlearners: list[ComponentSpec]
    skip_cells: set[str] = field(default_factory=set)
    _cells: list[tuple[str, ComponentSpec, ComponentSpec]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def cells(self) -> list[tuple[str, ComponentSpec, ComponentSpec]]:
        """Every (cell id, detector, unlearner), hashed once (the run asks often)."""
        if self._cells is None:
            self._cells = [(self.cell_id(d, u), d, u) for d in self.detectors for u in self.unlearners]
        return self._cells

    def per_detector(self) -> list[Job]:
        """One job per detector that still has cells to run, its cells taken from this job's."""
        units = []
        for detector in self.detectors:
            unit = dataclasses.replace(self, detectors=[detector], upstream_ready=True)
            cells = [cell for cell in self.cells() if cell[1] is detector]
            unit._cells = cells
            if any(cid not in self.skip_cells for cid, _, _ in cells):
                units.append(unit)
        return units


def run_job(job: Job, registry: Registry | None = None) -> list[dict[str, Any]]:
    """All rows of one job (cells in ``job.skip_cells`` are left out). Never raises for a
    component's failure: the affected cells become rows with ``status='failed'``."""
    registry = registry or default_registry()
    stages = stages_for(job, registry)
    cells = [c for c in job.cells() if c[0] not in job.skip_cells]
    rows: list[dict[str, Any]] = []
    if not cells:
        return rows
    try:
        upstream = {
            "poisoned": stages.poisoned(),
            "victim": stages.victim(),
            "clean": stages.clean_model(),
            "floor": stages.floor(),
        }
    except Exception as exc:  # the attack or the victim failed: every cell of the job fails
        err = error_text(exc)
        log(f"FAILED {stages.describe()}: {err}")
        return [cell_row(job, cid, d, u, status="failed", error=err) for cid, d, u in cells]

    by_detector: dict[str, list] = {}
    for cell in cells:
        by_detector.setdefault(cell[1].params_json + cell[1].name, []).append(cell)
    for group in by_detector.values():
        det = group[0][1]
        try:
            detection = stages.detection(det)
        except Exception as exc:
            skipped = isinstance(exc, NoAffectedPointError)
            err = str(exc) if skipped else error_text(exc)
            if not skipped:
                log(f"FAILED detector {det.name} on {stages.describe()}: {err}")
            status = "skipped" if skipped else "failed"
            rows += [cell_row(job, cid, det, u, **upstream, status=status, error=err) for cid, _, u in group]
            continue
        for cell_id, _, unl in group:
            try:
                unlearning = stages.unlearning(det, unl)
            except Exception as exc:
                err = error_text(exc)
                log(f"FAILED unlearner {unl.name} after {det.name} on {stages.describe()}: {err}")
                rows.append(
                    cell_row(
                        job, cell_id, det, unl, **upstream, detection=detection, status="failed", error=err
                    )
                )
                continue
            rows.append(
                cell_row(job, cell_id, det, unl, **upstream, detection=detection, unlearning=unlearning)
            )
    return rows


@dataclass
class RunSummary:
    """What a run did, for the CLI's closing line."""

    output: Path
    rows: int
    computed: int
    reused: int
    failed: int
    seconds: float


def plan_jobs(parsed: ParsedSuite, *, fresh: bool = False) -> list[Job]:
    """One job per (dataset, model, attack, seed), in suite order."""
    s = parsed.suite
    return [
        Job(
            suite_name=s.name,
            dataset=d,
            model=m,
            attack=a,
            seed=seed,
            detectors=parsed.detectors,
            unlearners=parsed.unlearners,
            training=s.training.model_dump(mode="json"),
            device=s.device,
            cache_dir=s.cache,
            affected_points=s.affected_points,
            clean_model=s.clean_model,
            threads=s.threads,
            stage_timeout=s.stage_timeout,
            deterministic=s.deterministic,
            fresh=fresh,
        )
        for d in parsed.datasets
        for m in parsed.models
        for a in parsed.attacks
        for seed in s.seeds
    ]


def run_suite(
    parsed: ParsedSuite,
    *,
    fresh: bool = False,
    registry: Registry | None = None,
    shard: tuple[int, int] | None = None,
    victims: Path | None = None,
) -> RunSummary:
    """:func:`_run_suite` holding the results file's lock (a second run on it fails fast), then the
    CSV's manifest, even after an interrupt. ``victims``: a victim pack (:mod:`deltabench.packs`)
    whose attack, victim and clean-model stages replace computing them."""
    results = parsed.suite.output_dir / (shard_file(*shard) if shard else RESULTS_FILE)
    started, completed, stamp = now(), False, run_stamp()
    with hold_output_lock(results):
        registry = registry or default_registry()
        jobs = plan_jobs(parsed, fresh=fresh)
        used = use_victim_pack(victims, jobs, registry) if victims is not None else None
        try:
            summary = _run_suite(parsed, jobs, fresh=fresh, registry=registry, shard=shard)
            completed = True
            return summary
        finally:
            if results.is_file():
                write_manifest(
                    results,
                    parsed,
                    started=started,
                    completed=completed,
                    fresh=fresh,
                    victims=used,
                    stamp=stamp,
                )


def _run_suite(
    parsed: ParsedSuite,
    jobs: list[Job],
    *,
    fresh: bool,
    registry: Registry,
    shard: tuple[int, int] | None = None,
) -> RunSummary:
    """Run every cell of a suite not already in its CSV; resume is the default, ``fresh`` recomputes.

    ``shard=(i, n)`` runs only every n-th victim job starting at i and writes its own CSV, so n
    machines sharing the cache folder split a suite; a later run without ``shard`` gathers the
    shards' rows into ``results.csv`` without computing anything.
    """
    started = time.perf_counter()
    out_dir = parsed.suite.output_dir
    if shard is not None:
        index, count = shard
        if not 0 <= index < count:
            raise ValueError(f"shard index must be in 0..{count - 1}, got {index}")
        jobs = jobs[index::count]
        out_path = out_dir / shard_file(index, count)
        shard_paths: list[Path] = []
    else:
        out_path = out_dir / RESULTS_FILE
        shard_paths = sorted(out_dir.glob(SHARD_PATTERN))
    wanted = {cid for job in jobs for cid, _, _ in job.cells()}
    own_rows = [] if fresh else read_rows(out_path)
    previous = own_rows + ([] if fresh else [row for path in shard_paths for row in read_rows(path)])
    kept: dict[str, dict] = {}
    for row in previous:
        if row.get("cell_id") in wanted and row.get("status") in REUSABLE_STATUSES:
            kept[row["cell_id"]] = row
    dropped = len({r.get("cell_id") for r in own_rows} - wanted)
    if dropped:
        log(f"dropping {dropped} rows of cells that are no longer in the suite")
    for job in jobs:
        job.skip_cells = set(kept)
    todo = [job for job in jobs if any(cid not in kept for cid, _, _ in job.cells())]
    # costliest attacks first (a stable sort; rows are written in suite order whatever runs first)
    todo.sort(key=lambda job: -registry.get("attack", job.attack.name).relative_cost)
    total_cells = sum(len(job.cells()) for job in jobs)
    log(
        f"suite '{parsed.suite.name}': {len(jobs)} victims, {total_cells} cells; "
        f"{len(kept)} already done, {total_cells - len(kept)} to run -> {out_path}"
    )
    rows = dict(kept)
    order = {cid: i for i, cid in enumerate(c for j in jobs for c, _, _ in j.cells())}

    def save() -> None:
        write_rows_atomically(out_path, sorted(rows.values(), key=lambda r: order[r["cell_id"]]))

    executor = registry.get("executor", parsed.executor.name)(**parsed.executor.params)
    failed = 0
    bar = tqdm(total=total_cells, initial=len(kept), desc="cells", unit="cell", disable=None)

    def record(result: list[dict[str, Any]]) -> None:
        nonlocal failed
        for row in result:
            rows[row["cell_id"]] = row
            failed += row["status"] == "failed"
        bar.update(len(result))
        save()

    def failed_rows(job: Job, exc: BaseException) -> list[dict[str, Any]]:
        err = error_text(exc)
        cells = [c for c in job.cells() if c[0] not in job.skip_cells]
        return [cell_row(job, cid, d, u, status="failed", error=err) for cid, d, u in cells]

    forget_stages()
    try:
        # phase 1: every victim (and clean model); a registry pickles as the recipe that rebuilt
        # it, so worker processes get the same plugins
        upstream = upstream_units(todo)
        broken: dict[int, BaseException] = {}
        for index, result in executor.map(functools.partial(run_upstream, registry=registry), upstream):
            if isinstance(result, BaseException):
                log(
                    f"FAILED {upstream[index].part} of {upstream[index].setting.describe()}: {error_text(result)}"
                )
                for i in upstream[index].jobs:
                    broken.setdefault(i, result)
        for i, exc in broken.items():
            record(failed_rows(todo[i], exc))
        # phase 2: every (victim, detector) pair with its unlearnings, victims read from the cache
        units = [unit for i, job in enumerate(todo) if i not in broken for unit in job.per_detector()]
        for index, result in executor.map(functools.partial(run_job, registry=registry), units):
            record(failed_rows(units[index], result) if isinstance(result, BaseException) else result)
    finally:
        bar.close()
        forget_stages()
    if not todo and (dropped or len(kept) != len(own_rows) or not out_path.exists()):
        save()  # nothing ran, but rows gathered from shards or cells that left the suite change the CSV
    return RunSummary(
        out_path, len(rows), len(rows) - len(kept), len(kept), failed, time.perf_counter() - started
    )
