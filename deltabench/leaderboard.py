"""Tables from leaderboard CSVs: victims, detection quality, unlearning outcomes, and a
paper-style (Figure 3) grid of PSR and clean accuracy per detector and attack.

Settings whose attack floor (the clean model's PSR on the triggered test set, averaged over the
victims where the attack took: the only ones whose cells are judged) is at or above the success
threshold are marked: there a PSR below it is out of reach whatever a detector flags.

Each cell is computed once, as a :class:`Cell` holding its numbers (:func:`summary_cells`); the
markdown here, the exports (:mod:`deltabench.exports`) and the site render those cells. It only
renders: sections about one component (e.g. Δ-Influence's influence collapse) come from
that component's plugin through the ``leaderboard_sections`` hook.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from .metrics import MAX_ACC_DROP, SUCCESS_PSR, accuracy_kept
from .rows import SETTING, ok_rows, results_files
from .stats import Interval, mean_interval, wilson_interval

if TYPE_CHECKING:
    from .registry import Registry

__all__ = [
    "Cell",
    "Estimate",
    "FLOOR_MARK",
    "GridCell",
    "Section",
    "Share",
    "TABLE_TITLES",
    "accuracy_kept_rows",
    "as_text",
    "floor_settings",
    "load_results",
    "render_markdown",
    "summary_cells",
    "summary_tables",
    "success_counts",
    "success_grid",
]

FLOOR_MARK = "⚑"


@dataclass
class Section:
    """A leaderboard section contributed by a plugin: a heading and a table."""

    title: str
    table: pd.DataFrame
    floatfmt: str = "g"


# the summary tables, in the order every rendering shows them, with their headings
TABLE_TITLES = {
    "figure3": "Unlearning with `{unlearner}` on each detector's flagged set "
    "(PSR % / clean accuracy %), as in the paper's Figure 3",
    "victims": "Victims",
    "detection": "Detection",
    "unlearning": "Unlearning (per detector's flagged set)",
}


def load_results(folder: str | Path) -> pd.DataFrame:
    """The rows of a folder's results CSVs read together (see :func:`rows.results_files`), each cell
    once (the first file's row wins), or of the one CSV file ``folder`` names. The ``source``
    column says which file each row came from."""
    folder = Path(folder)
    if folder.is_file():
        return pd.read_csv(folder).assign(source=folder.name)
    files = results_files(folder)
    if not files:
        raise FileNotFoundError(f"{folder}: no leaderboard CSV here (run a suite first)")
    frames = [pd.read_csv(f).assign(source=f.relative_to(folder).as_posix()) for f in files]
    frame = pd.concat(frames, ignore_index=True)
    return frame.drop_duplicates("cell_id") if "cell_id" in frame else frame


class Cell(ABC):
    """A summary cell: its text in the markdown table and its numbers for the machine exports."""

    @abstractmethod
    def text(self) -> str:
        """What the markdown table shows, e.g. ``"97.8 [95.1, 100.0]"``."""

    @abstractmethod
    def numbers(self) -> dict[str, float | int | str]:
        """The estimate and interval bounds in the units the text shows (NaN: no interval)."""

    @abstractmethod
    def sort_key(self) -> float:
        """The value a table sorts this cell by (NaN last)."""


@dataclass(frozen=True)
class Estimate(Cell):
    """A mean over victims with its Student-t 95 % interval, shown times ``scale``."""

    interval: Interval
    scale: float = 100.0
    digits: int = 1
    mark: str = ""  # e.g. the floor mark of an unreachable setting

    def text(self) -> str:
        text = self.interval.format(self.scale, self.digits)
        return f"{text} {self.mark}" if self.mark else text

    def numbers(self) -> dict[str, float | int | str]:
        iv = self.interval
        numbers: dict[str, float | int | str] = {
            "estimate": iv.estimate * self.scale,
            "low": iv.low * self.scale,
            "high": iv.high * self.scale,
            "n": iv.n,
        }
        return {**numbers, "mark": self.mark} if self.mark else numbers

    def sort_key(self) -> float:
        return self.interval.estimate * self.scale


@dataclass(frozen=True)
class Share(Cell):
    """``k`` of ``n`` victims, with the Wilson 95 % interval of the share (in %)."""

    k: int
    n: int

    def text(self) -> str:
        iv = wilson_interval(self.k, self.n)
        return f"{self.k}/{self.n} [{iv.low * 100:.0f}, {iv.high * 100:.0f}]" if self.n else "-"

    def numbers(self) -> dict[str, float | int | str]:
        iv = wilson_interval(self.k, self.n)
        return {
            "k": self.k,
            "n": self.n,
            "estimate": iv.estimate * 100,
            "low": iv.low * 100,
            "high": iv.high * 100,
        }

    def sort_key(self) -> float:
        return 100 * self.k / self.n if self.n else math.nan


@dataclass(frozen=True)
class GridCell(Cell):
    """A Figure-3 cell: mean PSR and clean accuracy after unlearning (in %) and the verdict mark."""

    mark: str
    psr: float
    acc: float

    def text(self) -> str:
        return f"{self.mark} {self.psr:.1f} / {self.acc:.1f}"

    def numbers(self) -> dict[str, float | int | str]:
        return {"mark": self.mark, "PSR %": self.psr, "clean acc %": self.acc}

    def sort_key(self) -> float:
        return self.psr


def _mean_ci(series: pd.Series, scale: float = 100.0, digits: int = 1) -> Estimate:
    """Mean over victims with its Student-t 95 % interval; shares (``scale`` 100) are cut to
    [0, 100] %, counts and seconds to >= 0."""
    iv = mean_interval(series.dropna().astype(float).to_numpy())
    return Estimate(iv.clipped(0.0, 1.0 if scale == 100.0 else math.inf), scale, digits)


def _count_ci(hits: pd.Series) -> Share:
    """Successes among victims, with the Wilson 95 % interval of the share."""
    return Share(int(hits.sum()), len(hits))


def as_text(table: pd.DataFrame) -> pd.DataFrame:
    """A table of :class:`Cell` values as the strings the markdown shows."""
    return table.map(lambda v: v.text() if isinstance(v, Cell) else v)


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


def _judged_floor(victims: pd.DataFrame) -> float:
    """The mean clean-model PSR over the victims whose attack took (they have ``ok`` cells): only
    their cells are judged, so a floor under a victim whose attack did not take (its cells are
    skipped) cannot make a detector fail. NaN when the attack took on none."""
    return float(victims.loc[victims["judged"], "clean_model_psr"].mean())


def _with_judged(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`_victims` with a ``judged`` column: whether the victim has any ``ok`` cell."""
    victims = _victims(frame)
    judged = ok_rows(frame)[[*SETTING, "seed"]].drop_duplicates().assign(judged=True)
    victims = victims.merge(judged, on=[*SETTING, "seed"], how="left")
    return victims.assign(judged=victims["judged"].eq(True))


def floor_settings(frame: pd.DataFrame) -> pd.DataFrame:
    """The (dataset, model, attack) settings whose mean clean-model PSR over the judged victims
    (:func:`_judged_floor`) is at least ``SUCCESS_PSR``, with that mean as ``floor``: no detector
    can succeed there."""
    victims = _with_judged(frame)
    floors = victims.groupby(SETTING)[["clean_model_psr", "judged"]].apply(_judged_floor).rename("floor")
    floors = floors.reset_index()
    return floors[floors["floor"].map(_unreachable)].reset_index(drop=True)


def summary_tables(frame: pd.DataFrame, figure_unlearner: str = "eu") -> dict[str, pd.DataFrame]:
    """:func:`summary_cells` as text, e.g. ``"97.8 [95.1, 100.0]"`` and ``"2/3 [21, 94]"``."""
    return {key: as_text(table) for key, table in summary_cells(frame, figure_unlearner).items()}


def summary_cells(frame: pd.DataFrame, figure_unlearner: str = "eu") -> dict[str, pd.DataFrame]:
    """Victim, detection, unlearning and Figure-3 tables whose cells are :class:`Cell` values:
    means over victims with Student-t 95 % intervals, success counts with Wilson 95 % intervals.
    Every rendering (markdown, exports, the site) starts from these, so they show the same numbers."""
    ok = ok_rows(frame)
    tables: dict[str, pd.DataFrame] = {}
    tables["victims"] = (
        _with_judged(frame)
        .groupby(SETTING)
        .apply(
            lambda g: pd.Series(
                {
                    "seeds": g["seed"].nunique(),
                    "poisons": _mean_ci(g["n_poisons"], 1, 0),
                    "clean model acc %": _mean_ci(g["clean_model_acc"]),
                    "clean model PSR % (floor)": dataclasses.replace(
                        _mean_ci(g["clean_model_psr"]),
                        mark=FLOOR_MARK if _unreachable(_judged_floor(g)) else "",
                    ),
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
                    "with acc kept": _count_ci(g["success"].astype(bool) & accuracy_kept_rows(g)),
                }
            ),
            include_groups=False,
        )
        .reset_index()
    )
    fig = ok[ok["unlearner"] == figure_unlearner]
    if not fig.empty:

        def cell(g: pd.DataFrame) -> GridCell:
            psr = g["unlearned_psr"].astype(float).mean()
            kept = accuracy_kept_rows(g.mean(numeric_only=True))
            mark = "✗" if psr >= SUCCESS_PSR else "✓" if kept else "⚠"
            return GridCell(mark, psr * 100, g["unlearned_clean_acc"].astype(float).mean() * 100)

        grid = fig.groupby(["detector", "attack"]).apply(cell, include_groups=False).unstack("attack")
        tables["figure3"] = grid.reset_index()
    return tables


def success_grid(frame: pd.DataFrame) -> pd.DataFrame:
    """Detector x unlearner: of the victims (over every dataset and attack), how many the pair
    unlearned with success (PSR below ``SUCCESS_PSR``) and the clean accuracy kept, as :class:`Share`."""
    ok = ok_rows(frame)
    if ok.empty:
        return pd.DataFrame()
    hits = ok["success"].astype(bool) & accuracy_kept_rows(ok)
    grid = hits.groupby([ok["detector"], ok["unlearner"]]).agg(lambda h: Share(int(h.sum()), len(h)))
    return grid.unstack("unlearner").reset_index()


def accuracy_kept_rows(rows: pd.DataFrame | pd.Series) -> pd.Series | bool:
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
        "interval in brackets; counts k/n carry a Wilson 95 % interval of the share (in %). With few "
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
            f"test set there (over the victims where the attack took, the only ones judged), so "
            f"unlearning cannot bring the PSR below {SUCCESS_PSR:.0%}: {listed}. "
            "Their ✗ marks say more about the attack than about the detectors.",
        ]
    for key, heading in TABLE_TITLES.items():
        if key in tables and not tables[key].empty:
            title = heading.format(unlearner=figure_unlearner)
            parts += ["", f"## {title}", "", tables[key].to_markdown(index=False)]
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
        hit &= accuracy_kept_rows(means)
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
