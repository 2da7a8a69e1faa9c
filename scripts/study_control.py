"""Study of the class control's comparison rule (docs/influence.md, "Control score").

Stage 1 (``capture``): for every victim of a suite that runs ``delta-influence {control: m}``,
re-run that detection exactly as the runner does (same cached victim, same seeded RNGs) while
recording the engine's full score matrix (affected point, T auxiliary queries, m controls), check
that it reproduces the cached detection's flags, and also score every clean test image of the target
class that the victim gets right. One ``.npz`` per victim.

Stage 2 (``evaluate``): candidate comparisons between a point's influence on the controls and on
the affected point, offline: separation of poisons from clean target-class points among the paper
rule's flags, and EU (retrain without the flagged set) for each rule's flagged set with one common
training seed per victim, so accuracy differences come from the flagged sets, not the seed.

Stage 1b (``draws``): more random draws of the auxiliary queries and controls per victim.

    OMP_NUM_THREADS=1 PYTHONPATH=. python -m deltabench run SUITE --no-report   # victims, detections, EU
    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/study_control.py capture SUITE OUT_DIR
    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/study_control.py draws SUITE DRAWS_DIR --count 4
    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/study_control.py evaluate OUT_DIR --suite SUITE \
        --eu paper "raw 1 (current)" "class-median 0.5"

The suite used (docs/influence.md): the quick suite's digits / small-cnn / training recipe,
``seeds: [0, 1, 2, 3, 4, 5]``, ``clean_reference: false``, ``executor: local``, attacks
``badnet {source: 8, target: 5, budget: 0.5}`` and ``frequency {source: 8, target: 5, budget: 0.4,
eps: 0.1}``, detectors ``oracle``, ``delta-influence``, ``delta-influence {control: 8}`` (and
``{control: 8, control_score: class-median}``), unlearners ``none`` and ``eu``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from deltabench.config import load_suite
from deltabench.detectors.delta_influence import DeltaInfluence
from deltabench.influence import engine as engine_mod
from deltabench.influence.detector_support import engine_settings
from deltabench.metrics import accuracy, detection_metrics, poison_success_rate
from deltabench.registry import default_registry
from deltabench.runner import plan_jobs
from deltabench.stages import Stages
from deltabench.training import predict


@contextmanager
def recorded_scores() -> Iterator[list[np.ndarray]]:
    """Inside the block, every score matrix the influence engine returns is appended to the list."""
    recorded: list[np.ndarray] = []
    original = engine_mod.InfluenceEngine.scores

    def spy(self, queries):
        result = original(self, queries)
        recorded.append(result)
        return result

    engine_mod.InfluenceEngine.scores = spy
    try:
        yield recorded
    finally:
        engine_mod.InfluenceEngine.scores = original


def capture(suite: str, out: Path, control: int) -> None:
    registry = default_registry()
    parsed = load_suite(suite, registry)
    spec = next(
        d
        for d in parsed.detectors
        if d.name == "delta-influence"
        and d.params.get("control") == control
        and d.params.get("control_score", "raw") == "raw"
    )
    paper = next(d for d in parsed.detectors if d.name == "delta-influence" and not d.params.get("control"))
    out.mkdir(parents=True, exist_ok=True)
    for job in plan_jobs(parsed):
        stages = Stages(job, registry)
        name = f"{job.attack.name}-s{job.seed}"
        data = stages.poisoned().data
        victim = stages.victim()
        cached = {s.params_json: stages.detection(s).detection for s in (paper, spec)}
        with recorded_scores() as recorded:
            det = stages.detection(spec, reuse=False).detection  # as the runner computes it, uncached
        ref = cached[spec.params_json]
        same = np.array_equal(det.flagged, ref.flagged) and np.allclose(
            det.scores["old_matrix"], ref.scores["old_matrix"], rtol=1e-4, atol=1e-4
        )
        scores = recorded[-1]
        T = det.scores["new_matrix"].shape[0]
        # every clean target-class test image the victim classifies correctly, scored on the same engine
        model = stages.victim_model()
        test = stages.dataset.test
        target = data.target_class
        pool = np.flatnonzero(((predict(model, test.x) == test.y.cpu()) & (test.y == target)).numpy())
        settings = engine_settings(DeltaInfluence.Params(**spec.params))
        eng = engine_mod.get_engine(model, data.train, settings, device=stages.device)
        all_ctl = eng.scores(test.subset(pool))
        np.savez_compressed(
            out / f"{name}.npz",
            old=scores[0],
            aux=scores[1 : 1 + T],
            ctl=scores[1 + T :],
            ctl_all=all_ctl,
            labels=data.train.y.numpy(),
            poisons=data.poison_indices,
            target=target,
            paper_flags=cached[paper.params_json].flagged,
            control_flags=ref.flagged,
            victim_acc=victim.clean_acc,
            victim_psr=victim.psr,
            victim_key=victim.key,
        )
        print(f"{name}: reproduced={same} T={T} controls={scores.shape[0] - 1 - T} all_ctl={len(pool)}")


def draws(suite: str, out: Path, control: int, count: int) -> None:
    """More random draws of the auxiliary queries and controls for each victim (the runner seeds each
    detector from its own cache key, so one suite run is one draw): ``count`` draws seeded 1000+r,
    each scored in one pass on the victim's (cached) engine. Saved like ``capture``."""
    registry = default_registry()
    parsed = load_suite(suite, registry)
    out.mkdir(parents=True, exist_ok=True)
    for job in plan_jobs(parsed):
        stages = Stages(job, registry)
        data = stages.poisoned().data
        victim = stages.victim()
        detector = DeltaInfluence(control=control)
        for r in range(count):
            with recorded_scores() as recorded:
                torch.manual_seed(1000 + r)
                rng, gen = np.random.default_rng(1000 + r), torch.Generator().manual_seed(1000 + r)
                detector.detect(stages.detection_context(detector, rng, gen))
            sc = recorded[-1]
            T = 50
            np.savez_compressed(
                out / f"{job.attack.name}-s{job.seed}-d{r}.npz",
                old=sc[0],
                aux=sc[1 : 1 + T],
                ctl=sc[1 + T :],
                labels=data.train.y.numpy(),
                poisons=data.poison_indices,
                target=data.target_class,
                victim_acc=victim.clean_acc,
                victim_psr=victim.psr,
                victim_key=victim.key,
            )
        print(f"{job.attack.name}-s{job.seed}: {count} draws", flush=True)


# ---------------------------------------------------------------- stage 2: offline evaluation


def _scale(m: np.ndarray, how: str) -> np.ndarray:
    """Each query's influence vector (rows) divided by its scale over the training set."""
    if how == "std":
        return m / m.std(axis=-1, keepdims=True)
    return m / np.median(np.abs(m), axis=-1, keepdims=True)


def _pct(m: np.ndarray) -> np.ndarray:
    return (rankdata(m, axis=-1) - 0.5) / m.shape[-1]


def load_victim(path: Path) -> dict:
    d = dict(np.load(path))
    n = d["old"].size
    d["is_poison"] = np.zeros(n, bool)
    d["is_poison"][d["poisons"]] = True
    d["clean_target"] = (d["labels"] == int(d["target"])) & ~d["is_poison"]
    # the paper rule on the SAME auxiliary queries as the control run (the runner's paper-rule row
    # draws its own queries, so its flags are not comparable point by point)
    d["paper"] = ((d["aux"] - d["old"]) < 0).sum(0) >= d["aux"].shape[0] - 2
    return d


def _parts(d: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Candidate comparisons as (control side, affected side): a flag is removed when
    control side > thr x affected side (for the ratios: the class explains the support)."""
    old, ctl = d["old"], d["ctl"]
    raw = ctl.mean(0) / np.where(old > 0, old, np.nan)
    members = (d["labels"] == int(d["target"])) & (old > 0)
    return {
        "raw": (ctl.mean(0), old),
        "std": (_scale(ctl, "std").mean(0), _scale(old[None], "std")[0]),
        "mad": (_scale(ctl, "mad").mean(0), _scale(old[None], "mad")[0]),
        "rank": (_pct(ctl).mean(0) - _pct(old[None])[0], np.ones_like(old)),  # mean control rank - rank
        "class-median": (ctl.mean(0) / np.median(raw[members]), old),
    } | ({"raw-all": (d["ctl_all"].mean(0), old)} if "ctl_all" in d else {})


def scores(d: dict) -> dict[str, np.ndarray]:
    """The comparisons as one score per point (higher = more the class's point), for separation;
    points with old <= 0 get +inf (any rule with positive control support removes them)."""
    return {k: np.where(a > 0, c / np.where(a > 0, a, 1), np.inf) for k, (c, a) in _parts(d).items()}


def flags(d: dict, score: str, thr: float) -> np.ndarray:
    if score == "paper":
        return d["paper"]
    c, a = _parts(d)[score]
    return d["paper"] & ~(c > thr * a)


def separation(d: dict) -> str:
    fl, p, c = d["paper"], d["is_poison"], d["clean_target"]
    out = []
    for name, s in scores(d).items():
        s = np.minimum(s, 1e30)
        pv, cv = s[fl & p], s[fl & c]
        auc = roc_auc_score(np.r_[np.ones(pv.size), np.zeros(cv.size)], -np.r_[pv, cv])
        out.append(f"{name} {auc:.3f}/{int((cv <= pv.max()).sum())}")
    return "  ".join(out)


RULES = {
    "paper": ("paper", 0.0),
    "raw 1 (current)": ("raw", 1.0),
    "raw 1.5": ("raw", 1.5),
    "raw 2": ("raw", 2.0),
    "std 2": ("std", 2.0),
    "std 3": ("std", 3.0),
    "mad 2": ("mad", 2.0),
    "rank 0": ("rank", 0.0),
    "class-median 0.4": ("class-median", 0.4),
    "class-median 0.5": ("class-median", 0.5),
    "class-median 0.6": ("class-median", 0.6),
}


def evaluate(folder: Path, suite: str | None, eu_rules: list[str]) -> None:
    victims = {p.stem: load_victim(p) for p in sorted(folder.glob("*.npz"))}
    print(
        "separation among the paper rule's flags (same queries): AUC poison vs clean target-class / "
        "clean target-class points scored at or below the highest poison"
    )
    for name, d in victims.items():
        print(
            f"{name:14s} flagged {int(d['paper'].sum()):3d} poisons {int((d['paper'] & d['is_poison']).sum())}"
            f"/{int(d['is_poison'].sum())} clean-target {int((d['paper'] & d['clean_target']).sum()):3d} | "
            f"{separation(d)}"
        )
    print("\nrules: poisons lost vs the paper rule / clean target-class points still flagged")
    print(" " * 18 + "".join(f"{n:>14s}" for n in victims))
    for rule, (score, thr) in RULES.items():
        cells = []
        for d in victims.values():
            f = flags(d, score, thr)
            lost = int((d["paper"] & d["is_poison"]).sum() - (f & d["is_poison"]).sum())
            cells.append(f"{lost:>6d}/{int((f & d['clean_target']).sum()):>3d}")
        print(f"{rule:18s}" + "".join(f"{c:>14s}" for c in cells))
    summarise(victims)
    if eu_rules:
        run_eu(victims, suite, eu_rules)


def summarise(victims: dict) -> None:
    """Per rule, per victim over its draws (files NAME-dR.npz; one draw per victim otherwise): total
    poisons lost vs the paper rule / mean clean target-class points kept; then, over chosen seeds
    0-2 and held-out seeds 3-5, the share of (victim, draw) that lose no poison."""
    groups: dict[str, list[dict]] = {}
    for name, d in victims.items():
        groups.setdefault(name.split("-d")[0], []).append(d)
    print(
        f"\nsummary over draws ({max(len(g) for g in groups.values())} per victim): "
        "poisons lost (sum) / clean target-class kept (mean)"
    )
    print(" " * 18 + "".join(f"{n:>14s}" for n in groups) + "   no-loss 0-2  no-loss 3-5")
    for rule, (score, thr) in RULES.items():
        cells, zero = [], {"0-2": [0, 0], "3-5": [0, 0]}
        for name, ds in groups.items():
            lost = [
                int((d["paper"] & d["is_poison"]).sum() - (flags(d, score, thr) & d["is_poison"]).sum())
                for d in ds
            ]
            kept = np.mean([(flags(d, score, thr) & d["clean_target"]).sum() for d in ds])
            cells.append(f"{sum(lost):>5d}/{kept:5.1f}")
            part = "0-2" if int(name.split("-s")[1]) <= 2 else "3-5"
            zero[part][0] += sum(x == 0 for x in lost)
            zero[part][1] += len(lost)
        print(
            f"{rule:18s}"
            + "".join(f"{c:>14s}" for c in cells)
            + "".join(f"{z[0]:>9d}/{z[1]:<3d}" for z in zero.values())
        )


def run_eu(victims: dict, suite: str, rules: list[str]) -> None:
    """EU for each rule's flags, one common training seed per victim (from the victim key)."""
    registry = default_registry()
    parsed = load_suite(suite, registry)
    jobs = {f"{j.attack.name}-s{j.seed}": j for j in plan_jobs(parsed)}
    print("\nvictim          rule               flagged clean-5 recall precision  EU PSR  acc change")
    for name, d in victims.items():
        stages = Stages(jobs[name.split("-d")[0]], registry)
        data = stages.poisoned().data
        done: dict[bytes, tuple[float, float]] = {}
        for rule in rules:
            f = flags(d, *RULES[rule])
            idx = np.flatnonzero(f)
            if idx.tobytes() not in done:
                torch.manual_seed(int(str(d["victim_key"])[:8], 16))
                gen = torch.Generator().manual_seed(int(str(d["victim_key"])[:8], 16))
                retain = np.setdiff1d(np.arange(len(data.train)), idx)
                model = stages.trainer(gen).fit_new(data.train.subset(retain), desc="eu")
                done[idx.tobytes()] = (
                    poison_success_rate(model, data.triggered_test),
                    accuracy(model, stages.dataset.test) - float(d["victim_acc"]),
                )
            psr, dacc = done[idx.tobytes()]
            m = detection_metrics(idx, d["poisons"])
            print(
                f"{name:15s} {rule:18s} {m['flagged']:5d} {int((f & d['clean_target']).sum()):6d} "
                f"{m['recall']:6.2f} {m['precision']:8.2f} {psr:7.1%} {100 * dacc:+6.1f} pt",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    cap = sub.add_parser("capture")
    cap.add_argument("suite")
    cap.add_argument("out", type=Path)
    cap.add_argument("--control", type=int, default=8)
    dr = sub.add_parser("draws")
    dr.add_argument("suite")
    dr.add_argument("out", type=Path)
    dr.add_argument("--control", type=int, default=8)
    dr.add_argument("--count", type=int, default=3)
    ev = sub.add_parser("evaluate")
    ev.add_argument("folder", type=Path)
    ev.add_argument("--suite", help="the suite captured (needed for --eu)")
    ev.add_argument("--eu", nargs="*", default=[], help="rules to retrain EU for (names of RULES)")
    args = parser.parse_args()
    if args.cmd == "capture":
        capture(args.suite, args.out, args.control)
    elif args.cmd == "draws":
        draws(args.suite, args.out, args.control, args.count)
    else:
        evaluate(args.folder, args.suite, args.eu)


if __name__ == "__main__":
    main()
