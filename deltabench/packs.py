"""Victim packs: the victim side of a published run, so others score new methods on the same victims.

Another machine's floats train another victim from the same seed, so a plugin author's rows would
compare settings, not victims. A pack holds, per victim of a run, what a detector or unlearner
cell needs before detection: the poisoned data (as its difference from the clean dataset, see
:mod:`deltabench.poison_delta`), the victim's weights and affected points, and the clean model.

Layout of a pack folder::

    pack.json                       format, the suite as resolved, victims, SHA-256 of every file
    attack/<identity>.safetensors   poisoned data as deltas
    victim/<identity>.safetensors   VictimStage
    clean/<identity>.safetensors    CleanModelStage

Files are named by stage *identity* (see :mod:`deltabench.stages`), which does not depend on the
core code digest or the thread count, so a pack serves any checkout that draws the same settings.
A run with a pack installs its stages into a cache folder of its own (``<cache>/pack-<digest>``)
under this checkout's cache keys: detections on pack victims never mix with locally trained ones.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from .cache import ArtifactStore, DamagedArtifact
from .config import ParsedSuite
from .exceptions import PackError
from .file_digest import sha256_file
from .log import log
from .manifest import now, resolved_suite
from .poison_delta import dataset_sha256, decode_poisoned, encode_poisoned
from .registry import Registry
from .rows import code_revision
from .stages import CleanModelStage, PoisonedStage, Setting, Stages, VictimStage

__all__ = [
    "PACK_FILE",
    "VictimPack",
    "build_pack",
    "copy_upstream",
    "install_victims",
    "pack_folder",
    "pack_size",
    "use_victim_pack",
]

PACK_FILE = "pack.json"
FORMAT = "deltabench-victim-pack-1"
UPSTREAM = ("attack", "victim", "clean")


def local_keys(stages: Stages) -> dict[str, str]:
    """This checkout's cache keys of a setting's upstream stages."""
    return {stage: stages.cache_key(identity) for stage, identity in stages.upstream_identities().items()}


class VictimPack:
    """An opened pack: its index, and its files each checked against their SHA-256 when read."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        index = self.path / PACK_FILE
        if not index.is_file():
            raise PackError(f"{index}: no victim pack here (make one with `deltabench pack FOLDER -o PACK`)")
        try:
            self.index: dict[str, Any] = json.loads(index.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise PackError(f"{index}: not JSON ({exc}); copy the pack again") from None
        if self.index.get("format") != FORMAT:
            raise PackError(f"{index}: key 'format' is {self.index.get('format')!r}, expected {FORMAT!r}")
        self.sha256 = sha256_file(index)
        self.victims: list[dict[str, Any]] = self.index["victims"]
        self._by_victim = {v["victim"]: v for v in self.victims}

    def entry(self, stages: Stages) -> dict[str, Any] | None:
        """The pack's record of ``stages``' victim, or None when the pack does not hold it."""
        return self._by_victim.get(stages.upstream_identities()["victim"])

    def load(self, stage: str, identity: str) -> Any:
        """A stored value, after checking its file's SHA-256 against ``pack.json``."""
        rel = f"{stage}/{identity}.safetensors"
        expected = self.index["files"].get(rel)
        if expected is None:
            raise PackError(f"{self.path / PACK_FILE}: key 'files' does not list {rel}; rebuild the pack")
        path = self.path / rel
        if not path.is_file():
            raise PackError(f"{path}: missing from the pack; copy the whole pack folder")
        if sha256_file(path) != expected:
            raise PackError(
                f"{path}: SHA-256 differs from {PACK_FILE} (the file was altered or damaged); copy the pack again"
            )
        try:
            return ArtifactStore(self.path).load(stage, identity)
        except DamagedArtifact as exc:
            raise PackError(f"{path}: {exc}; copy the pack again") from None

    def verify_all(self) -> int:
        """Check every file's SHA-256; returns how many files were checked."""
        for rel in self.index["files"]:
            stage, name = rel.split("/", 1)
            self.load(stage, name.removesuffix(".safetensors"))
        return len(self.index["files"])


def build_pack(parsed: ParsedSuite, jobs: list[Setting], registry: Registry, output: Path) -> dict[str, Any]:
    """Write a pack of every job's upstream stages found in its cache (computing nothing); returns
    the pack's index. Jobs whose victim is not cached (e.g. a failed attack) are left out, and said."""
    if (output / PACK_FILE).exists():
        raise PackError(f"{output}: a pack is already there; choose another -o folder or delete it")
    out = ArtifactStore(output)
    victims, files, missing = [], {}, []
    for job in jobs:
        stages = Stages(job, registry)
        cache, ids, keys = ArtifactStore(job.cache_dir), stages.upstream_identities(), local_keys(stages)
        if not (cache.has("attack", keys["attack"]) and cache.has("victim", keys["victim"])):
            missing.append(stages.describe())
            continue
        try:
            poisoned: PoisonedStage = cache.load("attack", keys["attack"])
            victim: VictimStage = cache.load("victim", keys["victim"])
            clean = cache.load("clean", keys["clean"]) if cache.has("clean", keys["clean"]) else None
        except DamagedArtifact as exc:
            raise PackError(
                f"{job.cache_dir}: a stage of {stages.describe()} is damaged ({exc}); rerun the suite"
            ) from None
        packed = encode_poisoned(poisoned.data, stages.dataset) | {"cost": poisoned.cost}
        stored = {"attack": packed, "victim": victim}
        if clean is not None:
            stored["clean"] = clean
        for stage, value in stored.items():
            out.save(stage, ids[stage], value)
            rel = f"{stage}/{ids[stage]}.safetensors"
            (output / rel).chmod(0o644)  # a pack is for publishing
            files[rel] = sha256_file(output / rel)
        victims.append(
            {
                "setting": stages.describe(),
                "attack": ids["attack"],
                "victim": ids["victim"],
                "clean": ids["clean"] if clean is not None else None,
                "dataset_sha256": dataset_sha256(stages.dataset),
            }
        )
    if not victims:
        raise PackError(
            f"{parsed.suite.cache}: no cached victim of suite '{parsed.suite.name}'; run it first, with "
            "the code that made the run (cache keys include the core code digest)"
        )
    for setting in missing:
        log(f"pack: {setting}: no cached victim (its cells failed?); left out")
    index = {
        "format": FORMAT,
        "created": now(),
        "code_revision": code_revision(),
        "suite": resolved_suite(parsed),
        "victims": victims,
        "files": files,
    }
    (output / PACK_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return index


def _intact(store: ArtifactStore, stage: str, key: str) -> bool:
    """Whether a stage installed earlier is still whole (a damaged one would be trained again)."""
    try:
        return store.has(stage, key) and store.load(stage, key) is not None
    except DamagedArtifact:
        return False


def install_victims(pack: VictimPack, job: Setting, registry: Registry) -> int:
    """Put the pack's stages of ``job``'s victim into ``job.cache_dir`` under this checkout's keys;
    returns how many were written (0 when already there)."""
    stages = Stages(job, registry)
    entry = pack.entry(stages)
    if entry is None:
        held = "; ".join(v["setting"] for v in pack.victims)
        raise PackError(
            f"{pack.path}: no victim for {stages.describe()} with these settings (pack holds: {held}); "
            "run the suite without --victims, or use a pack built from this suite"
        )
    if entry["dataset_sha256"] != dataset_sha256(stages.dataset):
        raise PackError(
            f"{pack.path}: {stages.describe()}: dataset '{job.dataset.name}' differs from the one the pack "
            "was built on (SHA-256 of its images and labels); use the same dataset files"
        )
    if entry["clean"] is None:
        job.clean_model = False  # the run has no clean model to report rather than train one
    store, keys, written = ArtifactStore(job.cache_dir), local_keys(stages), 0
    for stage in UPSTREAM:
        identity = entry[stage]
        if identity is None or _intact(store, stage, keys[stage]):
            continue
        value = pack.load(stage, identity)
        if stage == "attack":
            data = decode_poisoned(value, stages.dataset)
            value = PoisonedStage(keys[stage], data, value["cost"])
        elif isinstance(value, VictimStage | CleanModelStage):
            value = dataclasses.replace(value, key=keys[stage])
        store.save(stage, keys[stage], value)
        written += 1
    return written


def pack_folder(pack_sha256: str) -> str:
    """The cache subfolder of the runs on one pack (named by the SHA-256 of its ``pack.json``)."""
    return f"pack-{pack_sha256[:16]}"


def use_victim_pack(path: Path, jobs: list[Setting], registry: Registry) -> dict[str, Any]:
    """Point every job at a cache folder of this pack's own and install its victims there; returns
    what the manifest records about the pack."""
    pack = VictimPack(path)
    if any(job.fresh for job in jobs):
        raise PackError("--fresh recomputes every stage, victims included; it cannot be used with --victims")
    folder = pack_folder(pack.sha256)
    written = 0
    for job in jobs:
        job.cache_dir = str(Path(job.cache_dir) / folder)
        written += install_victims(pack, job, registry)
    log(f"victims from pack {path}: {len(jobs)} victims, {written} stages installed into {folder}")
    return {"path": str(path), "pack_sha256": pack.sha256, "victims": len(jobs)}


def pack_size(path: Path) -> int:
    """Bytes of every file in a pack."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def copy_upstream(job: Setting, registry: Registry, target: Path) -> int:
    """Copy ``job``'s cached upstream stages into the cache folder ``target`` (for recomputing
    downstream stages alone); returns how many were found."""
    stages = Stages(job, registry)
    found = 0
    for stage, key in local_keys(stages).items():
        source = ArtifactStore(job.cache_dir).path(stage, key)
        if source.is_file():
            dest = ArtifactStore(target).path(stage, key)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)
            found += 1
    return found
