"""A check of the GPU path on a machine with one CUDA GPU, in a few minutes: run by gpu_check.sh.

What it shows, none of which a CPU-only test can:

1. every detector and unlearner of the paper suites runs ``ok`` on ``cuda``, with ResNet-18 and
   both stems (CIFAR 3x3 on 32 px BadNet data, ImageNet 7x7 + max-pool on Imagenette-format
   Witches' Brew data), on tiny learnable files made on the spot (tests/suites/learnable_fakes.py);
2. no stored artifact holds a CUDA tensor (a reader on a CPU-only machine must load every one);
3. per stage, the wall time and the GPU peak (``torch.cuda.max_memory_allocated`` of the device);
4. the same short victim trained twice with ``deterministic`` on has identical weights;
5. influence scores of one victim computed on the CPU and on the GPU agree.

``--device cpu`` runs the same steps on the CPU, smaller (a dry run that keeps this script alive in
CPU-only CI); without a CUDA GPU and without ``--device cpu`` it stops at once with exit code 2.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NO_GPU_EXIT = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu = dry run")
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    return parser.parse_args(argv)


def shrink(raw: dict, root: Path, out: Path, device: str, stem: str, width: int) -> dict:
    """A paper suite on tiny learnable files: ResNet-18 with ``stem``, a few epochs, short attack
    searches, one SSD setting of the grid; every detector and every unlearner kept."""
    data = copy.deepcopy(raw)
    dataset = data["datasets"][0]
    dataset["params"] = {**dataset["params"], "root": str(root), "download": False}
    if dataset["name"].startswith("cifar"):
        dataset["params"]["verify"] = False
    else:
        dataset["params"]["size"] = 32
    attack = data["attacks"][0]["params"]
    if data["attacks"][0]["name"] == "witches-brew":
        from learnable_fakes import DECOY_CLASS

        attack.update(steps=2, restarts=1, batch_size=64, intended_class=DECOY_CLASS)
    unlearners, seen = [], set()
    for unlearner in data["unlearners"]:
        name = unlearner if isinstance(unlearner, str) else unlearner["name"]
        if name in seen:
            continue
        seen.add(name)
        if isinstance(unlearner, dict) and name in ("scrub", "bad-teacher"):
            unlearner = {**unlearner, "params": {**unlearner.get("params", {}), "steps": 4}}
        unlearners.append(unlearner)
    data.update(
        models=[{"name": "resnet18", "params": {"stem": stem, "width": width}}],
        training={**data["training"], "epochs": 8, "batch_size": 32},
        unlearners=unlearners,
        device=device,
        deterministic=True,
        output=str(out / data["name"]),
        cache=str(out / "cache"),
        executor={"name": "local"},
    )
    return data


def cuda_tensors(value: Any, where: str = "value") -> list[str]:
    """Where in ``value`` (a decoded artifact) a tensor lives on a GPU."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        return [where] if value.device.type != "cpu" else []
    if isinstance(value, np.ndarray | str | int | float | bool | type(None)):
        return []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in cuda_tensors(v, f"{where}[{k!r}]")]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in cuda_tensors(v, f"{where}[{i}]")]
    if dataclasses.is_dataclass(value):
        return [
            p
            for f in dataclasses.fields(value)
            for p in cuda_tensors(getattr(value, f.name), f"{where}.{f.name}")
        ]
    return []


def check_suites(work: Path, device: str, width: int) -> list:
    """Run both shrunk paper suites; assert every row ok on the device; print per-stage costs."""
    import pandas as pd
    import yaml
    from learnable_fakes import write_cifar10, write_imagenette

    from deltabench.config import suite_from_dict
    from deltabench.registry import default_registry
    from deltabench.runner import plan_jobs, run_suite

    registry = default_registry()
    write_cifar10(work / "data")
    decoy = write_imagenette(work / "data", per_class=15)  # as many images as the CIFAR files
    parsed_suites = []
    for name, stem in [("paper-badnet-cifar10", "cifar"), ("paper-witchesbrew-imagenette", "imagenet")]:
        raw = yaml.safe_load((ROOT / "suites" / f"{name}.yaml").read_text())
        suite = shrink(raw, work / "data", work, device, stem, width)
        if stem == "imagenet":
            suite["attacks"][0]["params"]["target_index"] = decoy
        parsed = suite_from_dict(suite, registry, name)
        started = time.perf_counter()
        summary = run_suite(parsed, registry=registry)
        rows = pd.read_csv(summary.output)
        bad = rows[(rows["status"] != "ok") | ~rows["device"].str.startswith(device)]
        assert bad.empty, (
            f"{name}: cells not ok on {device}:\n"
            + bad[["detector", "unlearner", "status", "error"]].to_string()
        )
        print(
            f"\n{name} (ResNet-18, {stem} stem): {len(rows)} cells ok on {device} in {time.perf_counter() - started:.0f} s"
        )
        for stage in ("attack", "victim", "detect", "unlearn"):
            key = "detector" if stage == "detect" else "unlearner" if stage == "unlearn" else None
            groups = rows.groupby(key) if key else [(stage, rows.head(1))]
            for label, group in groups:
                print(
                    f"  {stage:8s} {label:40s} {group[f'{stage}_s'].max():8.2f} s"
                    f"  gpu peak {group[f'{stage}_gpu_peak_mb'].max():8.1f} MB  host {group[f'{stage}_peak_mb'].max():7.0f} MB"
                )
        parsed_suites.append(plan_jobs(parsed)[0])
    return parsed_suites


def check_cache(cache: Path) -> None:
    from deltabench.cache import ArtifactStore

    store, count = ArtifactStore(cache), 0
    for path in sorted(cache.glob("*/*.safetensors")):
        value = store.load(path.parent.name, path.stem)
        found = cuda_tensors(value)
        assert not found, f"{path}: CUDA tensors at {found[:3]}"
        count += 1
    print(f"\ncache: {count} artifacts, none holds a CUDA tensor")


def check_determinism(job, device: str) -> None:
    """The victim's recipe, twice, from the same seed, with deterministic arithmetic: equal weights."""
    import torch

    from deltabench.determinism import deterministic_algorithms
    from deltabench.registry import default_registry
    from deltabench.stages import Stages

    stages = Stages(dataclasses.replace(job, fresh=True), default_registry())
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        with deterministic_algorithms(True, stages.device):
            model = stages.trainer(torch.Generator().manual_seed(0)).fit_new(stages.dataset.train, epochs=2)
        weights.append({k: v.detach().cpu() for k, v in model.state_dict().items()})
    differ = [k for k in weights[0] if not torch.equal(weights[0][k], weights[1][k])]
    assert not differ, f"deterministic training on {device} differs in {differ[:5]}"
    print(f"determinism: two trainings on {device} give identical weights ({len(weights[0])} tensors)")


def check_influence(job, device: str) -> None:
    """EK-FAC scores of the same victim and queries on the CPU and on ``device``."""
    import numpy as np
    from scipy.stats import spearmanr

    from deltabench.influence import InfluenceEngine, InfluenceSettings
    from deltabench.registry import default_registry
    from deltabench.stages import Stages

    stages = Stages(job, default_registry())
    model = stages.victim_model()
    train = stages.poisoned().data.train.subset(np.arange(64))  # EK-FAC of ResNet-18 on a CPU is slow
    queries = stages.dataset.test.subset(np.arange(4))
    settings = InfluenceSettings(factor_batch_size=64, train_batch_size=64)
    cpu = InfluenceEngine(model, train, settings, device="cpu").fit().scores(queries)
    other = InfluenceEngine(model, train, settings, device=device).fit().scores(queries)
    rho = min(spearmanr(cpu[q], other[q]).statistic for q in range(len(queries)))
    rel = float(np.abs(cpu - other).max() / max(np.abs(cpu).max(), 1e-12))
    print(
        f"influence: CPU vs {device} on {train.x.shape[0]} points x {len(queries)} queries: "
        f"max |diff| / max |score| = {rel:.2e}, lowest Spearman rho = {rho:.4f}"
    )
    assert rho > 0.95, f"CPU and {device} influence rankings disagree (rho {rho:.3f})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA GPU is visible (torch.cuda.is_available() is False); this check needs "
            "one. Run `scripts/gpu_check.sh --device cpu` for the CPU dry run.",
            file=sys.stderr,
        )
        return NO_GPU_EXIT
    sys.path.insert(0, str(ROOT / "tests" / "suites"))  # learnable_fakes: the data made on the spot
    if args.device == "cuda":
        print(f"gpu_check on {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory(prefix="deltabench-gpu-check-") as tmp:
        work = args.out or Path(tmp)
        width = 64 if args.device == "cuda" else 8  # the paper's width on a GPU; a sliver on a CPU
        jobs = check_suites(work, args.device, width)
        check_cache(work / "cache")
        check_determinism(jobs[0], args.device)
        check_influence(jobs[0], args.device)
    print("\ngpu_check: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
