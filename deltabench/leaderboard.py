"""Tables from leaderboard CSVs: victims, detection quality, unlearning outcomes, and a
paper-style (Figure 3) grid of PSR and clean accuracy per detector and attack.

Settings whose attack floor (the clean model's PSR on the triggered test set) is at or above the
success threshold are marked: there a PSR below it is out of reach whatever a detector flags.

It only renders: sections about one component (e.g. Δ-Influence's influence collapse) come from
that component's plugin through the ``leaderboard_sections`` hook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from .metrics import MAX_ACC_DROP, SUCCESS_PSR, accuracy_kept
from .rows import RESULTS_FILE
from .stats import mean_interval, wilson_interval

if TYPE_CHECKING:
    from .registry import Registry

__all__ = [
    "FLOOR_MARK",
    "Section",
    "floor_settings",
    "load_results",
    "render_markdown",
    "summary_tables",
    "success_counts",
]

SETTING = ["dataset", "model", "attack"]
FLOOR_MARK = "⚑"


@dataclass
class Section:
    """A leaderboard section contributed by a plugin: a heading and a table."""

    title: str
    table: pd.DataFrame
    floatfmt: str = "g"


def load_results(folder: str | Path) -> pd.DataFrame:
    """The rows of a run: ``results.csv`` in ``folder`` if present, else every shard CSV there
    (each cell once), or the one CSV file ``folder`` names."""
    folder = Path(folder)
    if folder.is_file():
        return pd.read_csv(folder)
    results = folder / RESULTS_FILE
    files = [results] if results.is_file() else sorted(folder.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"{folder}: no leaderboard CSV here (run a suite first)")
    frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    return frame.drop_duplicates("cell_id") if "cell_id" in frame else frame


def _mean_ci(series: pd.Series, scale: float = 100.0, digits: int = 1) -> str:
    """Mean over victims with its Student-t 95 % interval, e.g. ``"97.8 [95.1, 100.0]"``; shares
    (``scale`` 100) are cut to [0, 100] %, counts and seconds to >= 0."""
    iv = mean_interval(series.dropna().astype(float).to_numpy())
    return iv.clipped(0.0, 1.0 if scale == 100.0 else math.inf).format(scale, digits)


def _count_ci(hits: pd.Series) -> str:
    """``"k/n"`` with the Wilson 95 % interval of the share, in %."""
    k, n = int(hits.sum()), len(hits)
    iv = wilson_interval(k, n)
    return f"{k}/{n} [{iv.low * 100:.0f}, {iv.high * 100:.0f}]" if n else "-"


def _victims(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per trained victim; victims whose attack did not take have only skipped rows."""
    trained = frame[frame["status"].isin(["ok", "skipped"])]
    victims = trained.drop_duplicates([*SETTING, "seed"])
    if "clean_model_psr" not in victims:  # a CSV written before the column existed
        victims = victims.assign(clean_model_psr=math.nan)
    return victims


def _unreachable(mean_floor: float) -> bool:
    """Whether a mean clean-model PSR leaves no room for success (success needs PSR < 5 %)."""
    return bool(mean_floor >= SUCCESS_PSR)


def floor_settings(frame: pd.DataFrame) -> pd.DataFrame:
    """The (dataset, model, attack) settings whose mean clean-model PSR is at least
    ``SUCCESS_PSR``, with that mean as ``floor``: no detector can succeed there."""
    floors = _victims(frame).groupby(SETTING)["clean_model_psr"].mean().rename("floor").reset_index()
    return floors[floors["floor"].map(_unreachable)].reset_index(drop=True)


def summary_tables(frame: pd.DataFrame, figure_unlearner: str = "eu") -> dict[str, pd.DataFrame]:
    """Victim, detection, unlearning and Figure-3 tables: means over victims with Student-t 95 %
    intervals, success counts with Wilson 95 % intervals (in %)."""
    ok = frame[frame["status"] == "ok"]
    tables: dict[str, pd.DataFrame] = {}
    tables["victims"] = (
        _victims(frame)
        .groupby(SETTING)
        .apply(
            lambda g: pd.Series(
                {
                    "seeds": g["seed"].nunique(),
                    "poisons": _mean_ci(g["n_poisons"], 1, 0),
                    "clean model acc %": _mean_ci(g["clean_model_acc"]),
                    "clean model PSR % (floor)": _mean_ci(g["clean_model_psr"])
                    + (f" {FLOOR_MARK}" if _unreachable(g["clean_model_psr"].mean()) else ""),
                    "victim acc %": _mean_ci(g["victim_clean_acc"]),
                    "victim PSR %": _mean_ci(g["victim_psr"]),
                }
            ),
            include_groups=False,
        )
        .reset_index()
    )
    detections = ok.drop_duplicates(["dataset", "model", "attack", "seed", "detector"])
    tables["detection"] = (
        detections.groupby(["dataset", "attack", "detector"])
        .apply(
            lambda g: pd.Series(
                {
                    "flagged": _mean_ci(g["flagged"], 1, 0),
                    "true poisons": _mean_ci(g["true_poisons_flagged"], 1, 0),
                    "precision %": _mean_ci(g["precision"]),
                    "recall %": _mean_ci(g["recall"]),
                    "detect s": _mean_ci(g["detect_s"], 1, 1),
                }
            ),
            include_groups=False,
        )
        .reset_index()
    )
    tables["unlearning"] = (
        ok.groupby(["dataset", "attack", "detector", "unlearner"])
        .apply(
            lambda g: pd.Series(
                {
                    "PSR %": _mean_ci(g["unlearned_psr"]),
                    "clean acc %": _mean_ci(g["unlearned_clean_acc"]),
                    "successes": _count_ci(g["success"].astype(bool)),
                    "with acc kept": _count_ci(g["success"].astype(bool) & _acc_kept(g)),
                }
            ),
            include_groups=False,
        )
        .reset_index()
    )
    fig = ok[ok["unlearner"] == figure_unlearner]
    if not fig.empty:

        def cell(g: pd.DataFrame) -> str:
            psr = g["unlearned_psr"].astype(float).mean()
            kept = _acc_kept(g.mean(numeric_only=True))
            mark = "✗" if psr >= SUCCESS_PSR else "✓" if kept else "⚠"
            return f"{mark} {psr * 100:.1f} / {g['unlearned_clean_acc'].astype(float).mean() * 100:.1f}"

        grid = fig.groupby(["detector", "attack"]).apply(cell, include_groups=False).unstack("attack")
        tables["figure3"] = grid.reset_index()
    return tables


def _acc_kept(rows: pd.DataFrame | pd.Series) -> pd.Series | bool:
    """Whether unlearning kept the clean accuracy: at most ``MAX_ACC_DROP`` below the victim's."""
    drop = rows["victim_clean_acc"] - rows["unlearned_clean_acc"]
    return accuracy_kept(drop)


def render_markdown(
    frame: pd.DataFrame,
    title: str = "Leaderboard",
    figure_unlearner: str = "eu",
    cache_dir: str | Path | None = None,
    registry: Registry | None = None,
) -> str:
    """A markdown report of :func:`summary_tables` and the plugins' sections (reading stored stage
    results from ``cache_dir`` when given), with failed cells listed at the end."""
    tables = summary_tables(frame, figure_unlearner)
    parts = [f"# {title}", ""]
    seeds = frame["seed"].nunique()
    parts.append(
        f"{len(frame)} rows, {seeds} seed(s). Means are over victims (one per seed) with a Student-t 95 % "
        "interval in brackets; counts k/n carry a Wilson 95 % interval of the share (in %). With 3 "
        "victims these intervals are wide: read differences only where they do not overlap, and use "
        "`deltabench compare` for paired tests. PSR = poison success rate; "
        f"✓ = PSR below {SUCCESS_PSR:.0%} after unlearning with clean accuracy kept (at most "
        f"{MAX_ACC_DROP * 100:.0f} points below the victim's); ⚠ = PSR below {SUCCESS_PSR:.0%} but the "
        "accuracy was not kept; ✗ = PSR not below it. `successes` counts PSR below "
        f"{SUCCESS_PSR:.0%} (the paper's mark), `with acc kept` also requires the accuracy."
    )
    floors = floor_settings(frame)
    if not floors.empty:
        listed = "; ".join(
            f"{r.dataset} / {r.model} / {r.attack} ({r.floor * 100:.1f} %)" for r in floors.itertuples()
        )
        parts += [
            "",
            f"**{FLOOR_MARK} No detector can succeed in {len(floors)} setting(s).** A clean model, "
            f"never poisoned, already has a mean PSR of at least {SUCCESS_PSR:.0%} on the triggered "
            f"test set there, so unlearning cannot bring the PSR below {SUCCESS_PSR:.0%}: {listed}. "
            "Their ✗ marks say more about the attack than about the detectors.",
        ]
    headings = {
        "figure3": f"Unlearning with `{figure_unlearner}` on each detector's flagged set "
        "(PSR % / clean accuracy %), as in the paper's Figure 3",
        "victims": "Victims",
        "detection": "Detection",
        "unlearning": "Unlearning (per detector's flagged set)",
    }
    for key in ("figure3", "victims", "detection", "unlearning"):
        if key in tables and not tables[key].empty:
            parts += ["", f"## {headings[key]}", "", tables[key].to_markdown(index=False)]
    for section in plugin_sections(frame, cache_dir, registry):
        parts += [
            "",
            f"## {section.title}",
            "",
            section.table.to_markdown(index=False, floatfmt=section.floatfmt),
        ]
    skipped = frame[frame["status"] == "skipped"].drop_duplicates(["dataset", "model", "attack", "seed"])
    if not skipped.empty:
        parts += ["", "## Victims without an affected point (their cells are skipped)", ""]
        parts.append(skipped[["dataset", "model", "attack", "seed", "error"]].to_markdown(index=False))
    failed = frame[frame["status"] == "failed"]
    if not failed.empty:
        parts += ["", "## Failed cells", ""]
        cols = ["dataset", "attack", "seed", "detector", "unlearner", "error"]
        parts.append(failed[cols].to_markdown(index=False))
    return "\n".join(parts) + "\n"


def success_counts(frame: pd.DataFrame, unlearner: str = "eu", acc_kept: bool = False) -> pd.Series:
    """Per detector: in how many (dataset, attack) settings the mean PSR after unlearning is < 5%
    (and, with ``acc_kept``, the mean clean accuracy at most ``MAX_ACC_DROP`` below the victim's)."""
    ok = frame[(frame["status"] == "ok") & (frame["unlearner"] == unlearner)]
    cols = ["unlearned_psr", "unlearned_clean_acc", "victim_clean_acc"]
    means = ok.groupby(["detector", "dataset", "attack"])[cols].mean()
    hit = means["unlearned_psr"] < SUCCESS_PSR
    if acc_kept:
        hit &= _acc_kept(means)
    return hit.groupby("detector").sum().astype(int).sort_values(ascending=False)


def plugin_sections(
    frame: pd.DataFrame, cache_dir: str | Path | None = None, registry: Registry | None = None
) -> list[Section]:
    """Every plugin's ``leaderboard_sections``, in registration order."""
    from .registry import default_registry
    from .stages import StoredStages

    registry = registry or default_registry()
    stages = StoredStages(cache_dir) if cache_dir is not None else None
    found = registry.plugin_manager.hook.leaderboard_sections(frame=frame, stages=stages)
    return [section for sections in reversed(found) for section in sections]
