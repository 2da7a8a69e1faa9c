"""Δ-Influence (Li et al. 2024): flag the training points whose influence collapses under transforms.

``delta[t, i]`` = influence of training point i on auxiliary query t (the affected input, randomly
transformed and relabelled) minus its influence on the affected input; i is flagged when
``count_t(delta[t, i] < th) >= T - n_tolerate``. A poison supports exactly the trigger -> target
shortcut, so its influence drops on (nearly) every query; a clean point's moves both ways. All
queries are scored in one pass over the training set (the paper's code made one pass per query).

Options beyond the paper (all off by default, each explained with its measurements in
docs/influence.md): several affected points and how their flags ``combine``; the ablation
``variant`` (MM, the method; MI; ML); and the class ``control`` with its ``control_score``, which
unflags clean target-class points that support clean images of their class more than the affected
input. The controls join the one query batch, so a detection with a control scores the same
queries as one without only up to float rounding (sums whose order depends on the batch shape).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, ValidationInfo, field_validator

from ..artifacts import Detection, ImageSet
from ..components import DetectionContext, Detector
from ..hookspecs import hookimpl
from ..influence.detector_support import ENGINE_KEYS, EngineParams, engine_for
from ..influence.transforms import (
    DETERMINISTIC,
    apply_transform,
    available_transforms,
    from_network_input,
    to_network_input,
)
from ..leaderboard import Section
from ..training import predict

if TYPE_CHECKING:
    from ..site import SiteSection
    from ..stages import StoredStages

__all__ = [
    "DeltaInfluence",
    "auxiliary_queries",
    "class_controls",
    "collapse_flags",
    "control_threshold",
    "influence_collapse",
]


def auxiliary_queries(
    affected: ImageSet,
    num_classes: int,
    per_point: int,
    variant: str,
    rng: np.random.Generator,
    gen: torch.Generator,
    distinct: bool = True,
    *,
    style: str = "pixel",
    labels: str = "with-replacement",
) -> tuple[ImageSet, list[str]]:
    """``per_point`` transformed / relabelled queries per affected point, point-major order.

    With ``distinct`` (MM and MI), a (deterministic transform, label) pair already drawn for the same
    point is drawn again: a repeat is the same query, so it would count its delta more than once.
    ``style`` is the transforms' (:func:`~deltabench.influence.transforms.apply_transform`); with
    ``labels="without-replacement"`` (MM and ML) a point's ``per_point`` labels are all different, as
    the paper's code drew them on CIFAR-100 (``random.sample``), so there are at most
    ``num_classes - 1`` queries.
    """
    xs, ys, names = [], [], []
    choices = available_transforms(affected.x.shape[1])
    relabel = variant in ("MM", "ML")
    for x, y in zip(affected.x, affected.y.tolist(), strict=True):
        others = np.array([c for c in range(num_classes) if c != y])
        drawn = None
        if relabel and labels == "without-replacement":
            if per_point > others.size:
                raise ValueError(
                    f"delta-influence: aux_labels without-replacement draws T distinct labels, but only "
                    f"{others.size} exist besides the target: lower T to {others.size} or draw with replacement"
                )
            drawn = rng.choice(others, size=per_point, replace=False)
        used: set[tuple[str, int]] = set()
        for j in range(per_point):
            name, y_t = "none", y
            while True:
                if variant in ("MM", "MI"):
                    name = str(rng.choice(choices))
                if relabel:
                    y_t = int(drawn[j]) if drawn is not None else int(rng.choice(others))
                # the random transforms always remain, so MM and MI never run out of queries; labels
                # drawn without replacement never repeat
                if not (distinct and variant != "ML" and (name, y_t) in used):
                    break
            if name in DETERMINISTIC:
                used.add((name, y_t))
            xs.append(apply_transform(name, x, rng, gen, style) if name != "none" else x)
            ys.append(y_t)
            names.append(name)
    return ImageSet(torch.stack(xs), torch.tensor(ys, dtype=torch.long)), names


def collapse_flags(delta: np.ndarray, th: float, n_tolerate: int) -> tuple[np.ndarray, np.ndarray]:
    """Per training point: how many of the T deltas fall below ``th``, and whether that is enough."""
    counts = (delta < th).sum(axis=0)
    return counts, counts >= delta.shape[0] - n_tolerate


def class_controls(ctx: DetectionContext, per_point: int) -> ImageSet:
    """``per_point`` clean images of each affected point's label that the victim gets right.

    Point-major order, like the auxiliary queries. Drawn with ``ctx.rng`` after the auxiliary
    queries, so switching the control on leaves those queries unchanged.
    """
    ref = ctx.clean_holdout
    if ref is None:
        raise ValueError("delta-influence with control > 0 needs clean labelled data (ctx.clean_holdout)")
    correct = predict(ctx.model, ref.x) == ref.y.cpu()
    picks = []
    for label in ctx.affected.y.tolist():
        pool = np.flatnonzero((correct & (ref.y == label)).numpy())
        if pool.size < per_point:
            raise ValueError(
                f"delta-influence control: {per_point} clean images of class {label} classified "
                f"correctly are needed, the clean holdout (ctx.clean_holdout) has {pool.size}"
            )
        picks.append(ctx.rng.choice(pool, size=per_point, replace=False))
    return ref.subset(np.concatenate(picks))


def control_threshold(
    control_mean: np.ndarray, old: np.ndarray, class_members: np.ndarray, fraction: float
) -> float:
    """``fraction`` x the median control / affected ratio of the training points labelled as the class.

    Why: a clean member's ratio says how much more it supports clean images of its class than the
    affected input; that depends on how class-like the victim finds the affected input (a smooth
    trigger that pushes towards the class raises it for every point), so no fixed ratio fits every
    victim. Clean members are the majority of the points carrying the class's label, so the median
    is a clean member's typical ratio; a dirty-label poison's support is trigger-specific and far
    below it. Only members with ``old > 0`` have a ratio; with none, nothing is unflagged (inf).
    """
    members = class_members & (old > 0)
    if not members.any():
        return float("inf")
    return fraction * float(np.median(control_mean[members] / old[members]))


class DeltaInfluence(Detector):
    """Δ-Influence: flag points whose influence on the affected point collapses under transforms."""

    name = "delta-influence"
    version = "2"  # 2: distinct auxiliary queries by default
    deviations = (
        "Transforms act in pixel space by default (`transforms: pixel`); `transforms: paper` applies them to the normalised tensor as the code does.",
        "EK-FAC damping defaults to kronfluence's heuristic (0.1 x mean eigenvalue); `damping: paper` is the code's 1e-8.",
        "Auxiliary queries are distinct by default; the paper's code lets them repeat (`distinct: false`).",
        "The class control (`control`, `control_score`) is ours; `control: 0` is the paper's method.",
    )

    class Params(EngineParams):
        T: int = Field(50, ge=1, description="auxiliary queries per affected point (50 in the paper)")
        th: float = Field(0.0, description="a delta below th counts as a collapse")
        n_tolerate: int = Field(2, ge=0, description="auxiliary queries allowed not to collapse")
        variant: Literal["MM", "MI", "ML"] = Field(
            "MM", description="MM: transform + relabel (method); MI: image only; ML: label only"
        )
        combine: Literal["union", "intersection", "pooled"] = Field(
            "union", description="how flags of several affected points merge"
        )
        distinct: bool = Field(
            True,
            description="never repeat a (deterministic transform, label) query for a point (ours; the "
            "paper's code could draw the same query several times)",
        )
        transforms: Literal["pixel", "paper"] = Field(
            "pixel",
            description="pixel (ours): transforms act on the [0, 1] image; paper: on the tensor the "
            "network sees (normalised), with torchvision's clamping ColorJitter and fixed (5, 9) blur "
            "kernel, as the paper's code",
        )
        aux_labels: Literal["with-replacement", "without-replacement"] = Field(
            "with-replacement",
            description="how a point's T labels are drawn (paper: without replacement on CIFAR-100, "
            "with replacement on CIFAR-10 and Imagenette)",
        )
        control: int = Field(
            0, ge=0, description="clean target-class control images (ours; 0 = the paper's method)"
        )
        control_ratio: float = Field(
            1.0, gt=0, description="keep a flag if influence on the controls <= ratio x on the affected point"
        )
        control_score: Literal["raw", "class-median"] = Field(
            "raw",
            description="raw: the ratio threshold is control_ratio; class-median: class_fraction x the "
            "median ratio of the training points labelled as the affected point's class (ours)",
        )
        class_fraction: float = Field(
            0.5, gt=0, description="class-median: a flag is removed above this fraction of the median ratio"
        )

        @field_validator("n_tolerate")
        @classmethod
        def _below_t(cls, n_tolerate: int, info: ValidationInfo) -> int:
            t = info.data.get("T")
            if t is not None and n_tolerate >= t:
                raise ValueError(
                    f"n_tolerate must be below T ({t}): allowing {n_tolerate} of {t} queries not to "
                    "collapse flags every training point; lower n_tolerate or raise T"
                )
            return n_tolerate

    def detect(self, ctx: DetectionContext) -> Detection:
        p = self.params
        k = len(ctx.affected)
        aux, names = self._queries(ctx)
        controls = class_controls(ctx, p.control) if p.control else ctx.affected.subset([])
        queries = ImageSet(
            torch.cat([ctx.affected.x, aux.x, controls.x]), torch.cat([ctx.affected.y, aux.y, controls.y])
        )
        scores = engine_for(ctx, p.model_dump(include=ENGINE_KEYS)).scores(queries)  # one pass: (k + k*T + k*control, n)
        old, new = scores[:k], scores[k : k + k * p.T].reshape(k, p.T, -1)
        delta = new - old[:, None, :]
        per_point = [collapse_flags(delta[j], p.th, p.n_tolerate) for j in range(k)]
        extra: dict[str, np.ndarray] = {}
        if p.control:
            control_mean = scores[k + k * p.T :].reshape(k, p.control, -1).mean(1)
            labels = ctx.train.y.cpu().numpy()
            ratio = np.array(
                [
                    self._ratio(control_mean[j], old[j], labels == y)
                    for j, y in enumerate(ctx.affected.y.tolist())
                ]
            )
            explained = control_mean > ratio[:, None] * old  # (k, n): the class explains the support
            per_point = [(c, f & ~explained[j]) for j, (c, f) in enumerate(per_point)]
            extra = {"control_mean": control_mean.astype(np.float32), "explained_by_class": explained}
            if p.control_score != "raw":
                extra["control_threshold"] = ratio.astype(np.float32)
        if p.combine == "pooled":
            counts, flags = collapse_flags(delta.reshape(k * p.T, -1), p.th, k * p.n_tolerate)
            if p.control:
                members = np.isin(labels, ctx.affected.y.cpu().numpy())
                cm, om = control_mean.mean(0), old.mean(0)
                flags &= ~(cm > self._ratio(cm, om, members) * om)
        else:
            counts = np.sum([c for c, _ in per_point], axis=0)
            stack = np.stack([f for _, f in per_point])
            flags = stack.any(0) if p.combine == "union" else stack.all(0)
        flat = delta.reshape(k * p.T, -1)
        return Detection(
            np.flatnonzero(flags),
            {
                **extra,
                "old": old.mean(0),
                "collapse_count": counts.astype(np.int32),
                "median_delta": np.median(flat, axis=0),
                "old_matrix": old.astype(np.float32),
                "new_matrix": new.reshape(k * p.T, -1).astype(np.float32),
                "delta_matrix": flat.astype(np.float32),
                "aux_labels": aux.y.numpy(),
                "aux_transforms": np.array(names),
            },
        )

    def _queries(self, ctx: DetectionContext) -> tuple[ImageSet, list[str]]:
        """The auxiliary queries as pixel-space inputs; ``paper`` transforms act on the network's input."""
        p = self.params
        affected = ctx.affected
        if p.transforms == "paper":
            affected = ImageSet(to_network_input(ctx.model, affected.x.cpu()), affected.y)
        aux, names = auxiliary_queries(
            affected,
            ctx.num_classes,
            p.T,
            p.variant,
            ctx.rng,
            ctx.trainer.generator,
            p.distinct,
            style=p.transforms,
            labels=p.aux_labels,
        )
        if p.transforms == "paper":
            aux = ImageSet(from_network_input(ctx.model, aux.x), aux.y)
        return aux, names

    def _ratio(self, control_mean: np.ndarray, old: np.ndarray, class_members: np.ndarray) -> float:
        """The control / affected ratio above which a flag is removed."""
        p = self.params
        if p.control_score == "raw":
            return p.control_ratio
        return control_threshold(control_mean, old, class_members, p.class_fraction)


def influence_collapse(frame: pd.DataFrame, stages: StoredStages) -> pd.DataFrame:
    """Influence collapse per victim, from the stored Δ-Influence delta matrices (paper, Figure 2).

    For each victim: the share of auxiliary queries in which the median delta of the true poisons
    is negative, and the medians (over queries) of the poisons' and the clean points' median delta.
    Rows of the detector under its plain name only; rows whose stages are not stored are left out.
    """
    rows = frame[(frame["status"] == "ok") & (frame["detector"] == DeltaInfluence.name)]
    out = []
    for _, row in rows.drop_duplicates("detect_key").iterrows():
        detected, poisoned = stages.detection(row["detect_key"]), stages.poisoned(row["attack_key"])
        if detected is None or poisoned is None or "delta_matrix" not in detected.detection.scores:
            continue
        delta = detected.detection.scores["delta_matrix"]
        poisons = poisoned.data.poison_indices
        clean = np.setdiff1d(np.arange(delta.shape[1]), poisons)
        poison_median = np.median(delta[:, poisons], axis=1)
        clean_median = np.median(delta[:, clean], axis=1)
        out.append({
            "dataset": row["dataset"], "attack": row["attack"], "seed": row["seed"],
            "queries": delta.shape[0],
            "queries with poison median < 0 %": 100.0 * float((poison_median < 0).mean()),
            "poison median delta": float(np.median(poison_median)),
            "clean median delta": float(np.median(clean_median)),
            "clean |median| / poison |median|": float(abs(np.median(clean_median)) / max(abs(np.median(poison_median)), 1e-12)),
        })  # fmt: skip
    return pd.DataFrame(out)


@hookimpl
def register_detectors(register) -> None:
    register(DeltaInfluence)


@hookimpl
def leaderboard_sections(frame: pd.DataFrame, stages: StoredStages | None) -> list[Section]:
    if stages is None or "detect_key" not in frame:
        return []
    table = influence_collapse(frame, stages)
    title = "Influence collapse (Δ-Influence: delta = new - old influence, per auxiliary query)"
    return [] if table.empty else [Section(title, table, floatfmt=".3g")]


@hookimpl
def site_sections(frame: pd.DataFrame, stages: StoredStages | None) -> list[SiteSection]:
    """Figure-2-style histograms of the stored deltas, true poisons against clean points, per victim;
    a note in their place when the run's cache does not hold them."""
    from ..site import SiteSection
    from ..site.plots import histogram_svg

    rows = frame[(frame["status"] == "ok") & (frame["detector"] == DeltaInfluence.name)]
    if rows.empty:
        return []
    title = "Influence collapse: Δ-Influence deltas, poisons against clean points (paper, Figure 2)"
    panels = []
    stored = rows.drop_duplicates("detect_key") if stages is not None else rows.iloc[:0]
    for _, row in stored.iterrows():
        detected, poisoned = stages.detection(row["detect_key"]), stages.poisoned(row["attack_key"])
        if detected is None or poisoned is None or "delta_matrix" not in detected.detection.scores:
            continue
        delta = detected.detection.scores["delta_matrix"]
        poisons = np.zeros(delta.shape[1], dtype=bool)
        poisons[poisoned.data.poison_indices] = True
        label = f"{row['dataset']} / {row['attack']} / seed {row['seed']}"
        panels.append((label, delta[:, poisons].ravel(), delta[:, ~poisons].ravel()))
    if not panels:
        where = (
            "the cache folder is not there"
            if stages is None
            else "the cache holds none of this run's Δ-Influence detection stages"
        )
        note = f"No delta matrices to plot: {where}. Build the site with --cache pointing at the run's cache."
        return [SiteSection(title, note=note)]
    note = (
        "delta = new - old influence of each training point, over every auxiliary query (density; "
        "the extreme 1 % clipped to the edges). Poisons collapse: their deltas sit below 0."
    )
    figures = tuple(histogram_svg(panels[i : i + 3], "delta") for i in range(0, len(panels), 3))
    return [SiteSection(title, note=note, svgs=figures, table=influence_collapse(frame, stages))]
