"""Crosses a suite's components and runs the stages, caching each stage's artifact.

One *job* per (dataset, model, attack, seed): it poisons the data, trains the victim (and a clean
reference), then runs every detector and, on each detection, every unlearner. Each (detector,
unlearner) pair is a *cell* and becomes one leaderboard row. Jobs are independent, so an executor
may run them in any order or in parallel; the artifact cache makes a rerun or a resumed run skip
every finished stage, and the CSV is rewritten atomically after each job so no finished row is lost.
"""

from __future__ import annotations

import copy
import json
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .artifacts import Dataset, Detection, ImageSet, PoisonedData
from .cache import ArtifactStore, stable_hash
from .components import AttackContext, DetectionContext, UnlearningContext
from .config import ComponentSpec, ParsedSuite
from .exceptions import ComponentError, NoAffectedPointError
from .locking import hold_output_lock
from .measure import StageCost, StageMeter
from .metrics import SUCCESS_PSR, accuracy, detection_metrics, poison_success_rate
from .registry import Registry, default_registry
from .timeouts import time_limited
from .training import Trainer, TrainingRecipe, predict

__all__ = ["Job", "run_suite", "run_job", "RunSummary", "resolve_device", "RESULTS_FILE"]

RESULTS_FILE = "results.csv"
# Part of every stage key. Component versions cover a component's own code; bump this when shared
# code changes what stages compute (the training loop, the influence engine), so caches miss.
CORE_VERSION = 3


def _log(message: str) -> None:
    print(f"[deltabench] {message}", file=sys.stderr, flush=True)


def resolve_device(name: str) -> torch.device:
    """``auto`` means the GPU when there is one, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    return torch.device(name)


@cache
def code_revision() -> str:
    """The git commit of the deltabench source (with ``-dirty`` if modified), else its version."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "deltabench"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return f"release-{_version('deltabench')}"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "n/a"


@cache
def versions() -> str:
    names = ["deltabench", "torch", "torchvision", "numpy", "scikit-learn", "kronfluence", "traker"]
    found = {n: _version(n) for n in names}
    found["python"] = platform.python_version()
    return json.dumps(found, sort_keys=True)


def _seed_from(key: str) -> int:
    return int(key[:8], 16) & 0x7FFFFFFF


def _seeded(key: str) -> tuple[np.random.Generator, torch.Generator]:
    """Seed torch's global RNG (for weight initialisation) and make fresh RNGs for a stage."""
    seed = _seed_from(key)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    return np.random.default_rng(seed), gen


def _spec_key(spec: ComponentSpec, registry: Registry) -> dict[str, Any]:
    cls = registry.get(spec.kind, spec.name)
    return {"kind": spec.kind, "name": spec.name, "version": cls.version, "params": spec.params}


@dataclass
class Job:
    """Everything one worker needs to produce the rows of one (dataset, model, attack, seed)."""

    suite_name: str
    dataset: ComponentSpec
    model: ComponentSpec
    attack: ComponentSpec
    seed: int
    detectors: list[ComponentSpec]
    unlearners: list[ComponentSpec]
    training: dict[str, Any]
    device: str
    cache_dir: str
    affected_points: int
    clean_reference: bool
    fresh: bool = False
    skip_cells: set[str] = field(default_factory=set)
    stage_timeout: float | None = None

    def cell_id(self, detector: ComponentSpec, unlearner: ComponentSpec, registry: Registry) -> str:
        return stable_hash(
            "cell",
            [_spec_key(s, registry) for s in (self.dataset, self.model, self.attack, detector, unlearner)],
            self.training,
            self.seed,
            self.affected_points,
            CORE_VERSION,  # rows computed by an older core are recomputed, not reused
        )

    def cells(self, registry: Registry) -> list[tuple[str, ComponentSpec, ComponentSpec]]:
        return [(self.cell_id(d, u, registry), d, u) for d in self.detectors for u in self.unlearners]


class _JobState:
    """Lazily computed, cached stages of one job."""

    def __init__(self, job: Job, registry: Registry) -> None:
        self.job = job
        self.registry = registry
        self.store = ArtifactStore(job.cache_dir, enabled=not job.fresh)
        self.device = resolve_device(job.device)
        self.recipe = TrainingRecipe(**job.training)
        self.dataset_key = stable_hash("dataset", _spec_key(job.dataset, registry), job.seed, CORE_VERSION)
        self.attack_key = stable_hash("attack", self.dataset_key, _spec_key(job.attack, registry), job.seed)
        self.model_key = _spec_key(job.model, registry)
        self.victim_key = stable_hash(
            "victim", self.attack_key, self.model_key, job.training, job.seed, job.affected_points
        )
        self.clean_key = stable_hash("clean", self.dataset_key, self.model_key, job.training, job.seed)
        self._dataset: Dataset | None = None
        self._poisoned: dict | None = None
        self._victim: dict | None = None
        self._victim_model: torch.nn.Module | None = None

    def _make(self, kind: str, spec: ComponentSpec):
        return self.registry.get(kind, spec.name)(**spec.params)

    @property
    def dataset(self) -> Dataset:
        if self._dataset is None:
            self._dataset = self._make("dataset", self.job.dataset).load(self.job.seed)
        return self._dataset

    def trainer(self, generator: torch.Generator) -> Trainer:
        family = self._make("model", self.job.model)
        return Trainer.for_dataset(family, self.dataset, self.recipe, self.device, generator)

    def _staged(self, stage: str, key: str, compute: Callable[[], dict]) -> dict:
        def timed() -> dict:
            meter = StageMeter()
            with meter:
                value = time_limited(compute, stage, key, self.job.stage_timeout)
            value["cost"] = meter.cost
            return value

        value, cached = self.store.get_or_compute(stage, key, timed)
        if not cached:
            _log(f"{stage} {self.describe()}: {value['cost'].seconds:.1f} s")
        return value

    def describe(self) -> str:
        j = self.job
        return f"{j.dataset.name}/{j.model.name}/{j.attack.name}/seed {j.seed}"

    @property
    def poisoned(self) -> dict:
        if self._poisoned is None:

            def compute() -> dict:
                rng, gen = _seeded(self.attack_key)
                ctx = AttackContext(self.dataset, rng, self.trainer(gen))
                data = self._make("attack", self.job.attack).poison(ctx)
                if not isinstance(data, PoisonedData):
                    raise ComponentError(f"attack '{self.job.attack.name}' did not return PoisonedData")
                if len(data.train) != len(self.dataset.train):
                    raise ComponentError("the poisoned training set must keep the clean set's length")
                return {"data": data}

            self._poisoned = self._staged("attack", self.attack_key, compute)
        return self._poisoned

    @property
    def victim(self) -> dict:
        if self._victim is None:

            def compute() -> dict:
                data: PoisonedData = self.poisoned["data"]
                rng, gen = _seeded(self.victim_key)
                model = self.trainer(gen).fit_new(data.train, desc="victim")
                hits = (
                    np.flatnonzero(_predict(model, data.triggered_test) == data.target_class)
                    if len(data.triggered_test)
                    else np.empty(0, dtype=np.int64)
                )
                k = min(self.job.affected_points, hits.size)
                affected = np.sort(rng.choice(hits, size=k, replace=False)) if k else hits[:0]
                return {
                    "state": {n: t.detach().cpu() for n, t in model.state_dict().items()},
                    "clean_acc": accuracy(model, self.dataset.test),
                    "psr": poison_success_rate(model, data.triggered_test),
                    "affected": affected,
                }

            self._victim = self._staged("victim", self.victim_key, compute)
        return self._victim

    def victim_model(self) -> torch.nn.Module:
        if self._victim_model is None:
            model = self.trainer(torch.Generator()).new_model()
            model.load_state_dict(self.victim["state"])
            self._victim_model = model.eval()
        return self._victim_model

    def clean_reference(self) -> dict | None:
        if not self.job.clean_reference:
            return None

        def compute() -> dict:
            _, gen = _seeded(self.clean_key)
            model = self.trainer(gen).fit_new(self.dataset.train, desc="clean model")
            return {"clean_acc": accuracy(model, self.dataset.test)}

        return self._staged("clean", self.clean_key, compute)

    def detection(self, spec: ComponentSpec) -> tuple[str, dict]:
        key = stable_hash("detect", self.victim_key, _spec_key(spec, self.registry))

        def compute() -> dict:
            data: PoisonedData = self.poisoned["data"]
            affected_idx = self.victim["affected"]
            if affected_idx.size == 0:
                raise NoAffectedPointError(
                    f"the attack did not take (victim PSR {self.victim['psr']:.0%}): no triggered test "
                    "input is sent to the target class, so there is no affected point to trace back"
                )
            # a private copy (some libraries wrap layers in place), made before seeding so that a
            # cached victim and a fresh one leave the RNG in the same state
            victim = copy.deepcopy(self.victim_model())
            rng, gen = _seeded(key)
            detector = self._make("detector", spec)
            triggered = data.triggered_test
            extras = {}
            if getattr(detector, "needs_ground_truth", False):
                extras["true_poisons"] = data.poison_indices.copy()
            ctx = DetectionContext(
                model=victim,
                train=data.train,
                affected=triggered.subset(affected_idx),
                num_classes=self.dataset.num_classes,
                rng=rng,
                trainer=self.trainer(gen),
                extras=extras,
                reference=self.dataset.test,
            )
            result = detector.detect(ctx)
            if not isinstance(result, Detection):
                raise ComponentError(f"detector '{spec.name}' did not return a Detection")
            if result.flagged.size and (result.flagged.min() < 0 or result.flagged.max() >= len(data.train)):
                raise ComponentError(f"detector '{spec.name}' flagged indices outside the training set")
            return {"detection": result}

        return key, self._staged("detect", key, compute)

    def unlearning(self, detect_key: str, flagged: np.ndarray, spec: ComponentSpec) -> dict:
        key = stable_hash("unlearn", detect_key, _spec_key(spec, self.registry), self.job.training)

        def compute() -> dict:
            data: PoisonedData = self.poisoned["data"]
            victim = self.victim_model()
            rng, gen = _seeded(key)
            model = copy.deepcopy(victim)  # unlearners may change weights in place
            retain = np.setdiff1d(np.arange(len(data.train)), flagged)
            ctx = UnlearningContext(
                model=model.eval(),
                train=data.train,
                forget=flagged.copy(),
                retain=retain,
                num_classes=self.dataset.num_classes,
                rng=rng,
                trainer=self.trainer(gen),
            )
            out = self._make("unlearner", spec).unlearn(ctx)
            if not isinstance(out, torch.nn.Module):
                raise ComponentError(f"unlearner '{spec.name}' did not return a torch module")
            out.eval()
            return {
                "clean_acc": accuracy(out, self.dataset.test),
                "psr": poison_success_rate(out, data.triggered_test),
            }

        return self._staged("unlearn", key, compute)


def _predict(model: torch.nn.Module, data: ImageSet) -> np.ndarray:
    return predict(model, data.x).numpy()


def _base_row(job: Job, cell_id: str, det: ComponentSpec, unl: ComponentSpec) -> dict[str, Any]:
    return {
        "suite": job.suite_name,
        "dataset": job.dataset.label,
        "model": job.model.label,
        "attack": job.attack.label,
        "seed": job.seed,
        "detector": det.label,
        "unlearner": unl.label,
        "status": "ok",
        "error": "",
        "cell_id": cell_id,
        "dataset_params": job.dataset.params_json,
        "model_params": job.model.params_json,
        "attack_params": job.attack.params_json,
        "detector_params": det.params_json,
        "unlearner_params": unl.params_json,
        "training": json.dumps(job.training, sort_keys=True),
        "affected_points": job.affected_points,
        "device": str(resolve_device(job.device)),
        "versions": versions(),
        "code_revision": code_revision(),
    }


def _error_text(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}".replace("\n", " ")[:500]


def _cost_fields(prefix: str, cost: StageCost | None) -> dict[str, float]:
    if cost is None:
        return {f"{prefix}_s": float("nan"), f"{prefix}_peak_mb": float("nan")}
    return {f"{prefix}_s": round(cost.seconds, 3), f"{prefix}_peak_mb": round(cost.peak_mb, 1)}


def run_job(job: Job, registry: Registry | None = None) -> list[dict[str, Any]]:
    """All rows of one job (cells in ``job.skip_cells`` are left out). Never raises for a
    component's failure: the affected cells become rows with ``status='failed'``."""
    registry = registry or default_registry()
    state = _JobState(job, registry)
    cells = [c for c in job.cells(registry) if c[0] not in job.skip_cells]
    rows: list[dict[str, Any]] = []
    if not cells:
        return rows
    try:
        poisoned = state.poisoned
        victim = state.victim
        clean = state.clean_reference()
    except Exception as exc:  # the attack or the victim failed: every cell of the job fails
        err = _error_text(exc)
        _log(f"FAILED {state.describe()}: {err}")
        for cell_id, det, unl in cells:
            rows.append({**_base_row(job, cell_id, det, unl), "status": "failed", "error": err})
        return rows

    data: PoisonedData = poisoned["data"]
    victim_fields = {
        "n_train": len(data.train),
        "n_poisons": int(data.poison_indices.size),
        "target_class": data.target_class,
        "clean_model_acc": clean["clean_acc"] if clean else float("nan"),
        "victim_clean_acc": victim["clean_acc"],
        "victim_psr": victim["psr"],
        **_cost_fields("attack", poisoned["cost"]),
        **_cost_fields("victim", victim["cost"]),
        "attack_key": state.attack_key,
        "victim_key": state.victim_key,
    }
    by_detector: dict[str, list] = {}
    for cell in cells:
        by_detector.setdefault(cell[1].params_json + cell[1].name, []).append(cell)
    for group in by_detector.values():
        det = group[0][1]
        try:
            detect_key, detected = state.detection(det)
            detection: Detection = detected["detection"]
            det_fields = {
                **detection_metrics(detection.flagged, data.poison_indices),
                **_cost_fields("detect", detected["cost"]),
                "detect_key": detect_key,
            }
        except Exception as exc:
            skipped = isinstance(exc, NoAffectedPointError)
            err = str(exc) if skipped else _error_text(exc)
            if not skipped:
                _log(f"FAILED detector {det.name} on {state.describe()}: {err}")
            for cell_id, _, unl in group:
                rows.append(
                    {
                        **_base_row(job, cell_id, det, unl),
                        **victim_fields,
                        "status": "skipped" if skipped else "failed",
                        "error": err,
                    }
                )
            continue
        for cell_id, _, unl in group:
            row = {**_base_row(job, cell_id, det, unl), **victim_fields, **det_fields}
            try:
                result = state.unlearning(detect_key, detection.flagged, unl)
            except Exception as exc:
                err = _error_text(exc)
                _log(f"FAILED unlearner {unl.name} after {det.name} on {state.describe()}: {err}")
                rows.append({**row, "status": "failed", "error": err})
                continue
            rows.append(
                {
                    **row,
                    "unlearned_clean_acc": result["clean_acc"],
                    "unlearned_psr": result["psr"],
                    "acc_change": result["clean_acc"] - victim["clean_acc"],
                    "success": bool(result["psr"] < SUCCESS_PSR),
                    **_cost_fields("unlearn", result["cost"]),
                }
            )
    return rows


COLUMNS = [
    "suite", "dataset", "model", "attack", "seed", "detector", "unlearner", "status", "error",
    "n_train", "n_poisons", "target_class", "clean_model_acc", "victim_clean_acc", "victim_psr",
    "flagged", "true_poisons_flagged", "precision", "recall",
    "unlearned_clean_acc", "unlearned_psr", "acc_change", "success",
    "attack_s", "victim_s", "detect_s", "unlearn_s",
    "attack_peak_mb", "victim_peak_mb", "detect_peak_mb", "unlearn_peak_mb",
    "dataset_params", "model_params", "attack_params", "detector_params", "unlearner_params",
    "training", "affected_points", "device", "cell_id", "attack_key", "victim_key", "detect_key",
    "versions", "code_revision",
]  # fmt: skip


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
            clean_reference=s.clean_reference,
            fresh=fresh,
            stage_timeout=s.stage_timeout,
        )
        for d in parsed.datasets
        for m in parsed.models
        for a in parsed.attacks
        for seed in s.seeds
    ]


def shard_file(index: int, count: int) -> str:
    """CSV name of one shard's rows (``deltabench run --shard I/N``)."""
    return f"results.shard-{index}-of-{count}.csv"


def run_suite(
    parsed: ParsedSuite,
    *,
    fresh: bool = False,
    registry: Registry | None = None,
    shard: tuple[int, int] | None = None,
) -> RunSummary:
    """:func:`_run_suite` holding the results file's lock: a second run on it fails fast."""
    results = parsed.suite.output_dir / (shard_file(*shard) if shard else RESULTS_FILE)
    with hold_output_lock(results):
        return _run_suite(parsed, fresh=fresh, registry=registry, shard=shard)


def _run_suite(
    parsed: ParsedSuite,
    *,
    fresh: bool = False,
    registry: Registry | None = None,
    shard: tuple[int, int] | None = None,
) -> RunSummary:
    """Run every cell of a suite not already in its CSV; resume is the default, ``fresh`` recomputes.

    ``shard=(i, n)`` runs only every n-th victim job starting at i and writes its own CSV, so n
    machines sharing the cache folder split a suite; a later run without ``shard`` gathers the
    shards' rows into ``results.csv`` without computing anything.
    """
    started = time.perf_counter()
    registry = registry or default_registry()
    jobs = plan_jobs(parsed, fresh=fresh)
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
        shard_paths = sorted(out_dir.glob("results.shard-*-of-*.csv"))
    wanted = {cid for job in jobs for cid, _, _ in job.cells(registry)}
    own_rows = [] if fresh else read_rows(out_path)
    previous = own_rows + ([] if fresh else [row for path in shard_paths for row in read_rows(path)])
    kept: dict[str, dict] = {}
    for row in previous:
        if row.get("cell_id") in wanted and row.get("status") in ("ok", "skipped"):
            kept[row["cell_id"]] = row
    dropped = len({r.get("cell_id") for r in own_rows} - wanted)
    if dropped:
        _log(f"dropping {dropped} rows of cells that are no longer in the suite")
    for job in jobs:
        job.skip_cells = set(kept)
    todo = [job for job in jobs if any(cid not in kept for cid, _, _ in job.cells(registry))]
    # costliest attacks first (a stable sort; rows are written in suite order whatever runs first)
    todo.sort(key=lambda job: -registry.get("attack", job.attack.name).relative_cost)
    total_cells = sum(len(job.cells(registry)) for job in jobs)
    _log(
        f"suite '{parsed.suite.name}': {len(jobs)} victims, {total_cells} cells; "
        f"{len(kept)} already done, {total_cells - len(kept)} to run -> {out_path}"
    )
    rows = dict(kept)
    order = {cid: i for i, cid in enumerate(c for j in jobs for c, _, _ in j.cells(registry))}

    def save() -> None:
        write_rows_atomically(out_path, sorted(rows.values(), key=lambda r: order[r["cell_id"]]))

    executor = registry.get("executor", parsed.executor.name)(**parsed.executor.params)
    failed = 0
    bar = tqdm(total=total_cells, initial=len(kept), desc="cells", unit="cell", disable=None)
    try:
        run = run_job if parsed.executor.name == "local" else _run_job_default_registry
        fn = (lambda job: run_job(job, registry)) if run is run_job else run
        for index, result in executor.map(fn, todo):
            job = todo[index]
            if isinstance(result, BaseException):
                err = _error_text(result)
                result = [
                    {**_base_row(job, cid, d, u), "status": "failed", "error": err}
                    for cid, d, u in job.cells(registry)
                    if cid not in kept
                ]
            for row in result:
                rows[row["cell_id"]] = row
                failed += row["status"] == "failed"
            bar.update(len(result))
            save()
    finally:
        bar.close()
    if not todo and (dropped or len(kept) != len(own_rows) or not out_path.exists()):
        save()  # nothing ran, but rows gathered from shards or cells that left the suite change the CSV
    return RunSummary(
        out_path, len(rows), len(rows) - len(kept), len(kept), failed, time.perf_counter() - started
    )


def _run_job_default_registry(job: Job) -> list[dict[str, Any]]:
    return run_job(job)
