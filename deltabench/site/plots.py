"""The site's figures, drawn with matplotlib and returned as inline SVG text.

SVG keeps the page self-contained (no image files, no plotting library fetched from a CDN) and
sharp at any zoom; text stays text (``svg.fonttype: none``), which keeps the figures small. Means
carry the same intervals as the tables (:mod:`deltabench.stats`).
"""

from __future__ import annotations

import io
import itertools
import sys

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..leaderboard import accuracy_kept_rows
from ..rows import ok_rows
from ..stats import mean_interval, wilson_interval

__all__ = ["figure_svg", "histogram_svg", "precision_recall_svg", "success_cost_svg"]

_counter = itertools.count()
_STYLE = {
    "svg.fonttype": "none",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def figure_svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element to inline (XML prolog dropped, figure closed).

    Each figure gets its own id salt: several SVGs in one page must not share clip-path ids. The
    site's own figures are plain :class:`Figure` objects (no pyplot, so no backend or global state
    is touched); a plugin's pyplot figure is closed here.
    """
    buffer = io.StringIO()
    with mpl.rc_context({"svg.hashsalt": f"deltabench-{next(_counter)}"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _points(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (victim, detector): detection does not depend on the unlearner."""
    ok = ok_rows(frame)
    return ok.drop_duplicates(["dataset", "model", "attack", "seed", "detector"])


def _panels(count: int) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(3.4 * count, 3.2))
    return fig, fig.subplots(1, count, squeeze=False)[0]


def precision_recall_svg(frame: pd.DataFrame) -> str:
    """Per (dataset, attack): each victim's precision and recall per detector (small dots) and
    their means with 95 % Student-t intervals (error bars)."""
    rows = _points(frame)
    keys = sorted(rows.groupby(["dataset", "attack"]).groups)
    with mpl.rc_context(_STYLE):
        fig, axes = _panels(len(keys))
        colours = _colours(rows["detector"])
        for ax, (dataset, attack) in zip(axes, keys):
            part = rows[(rows["dataset"] == dataset) & (rows["attack"] == attack)]
            for detector, g in part.groupby("detector"):
                c = colours[detector]
                rec, prec = g["recall"].astype(float), g["precision"].astype(float)
                ax.scatter(rec, prec, s=10, color=c, alpha=0.4)
                r, p = mean_interval(rec.to_numpy()), mean_interval(prec.to_numpy())
                ax.errorbar(
                    r.estimate, p.estimate, xerr=_err(r), yerr=_err(p), fmt="o", color=c, ms=5, label=detector
                )
            ax.set(xlim=(-0.05, 1.05), ylim=(-0.05, 1.05), xlabel="recall", ylabel="precision")
            ax.set_title(f"{dataset} / {attack}")
        _legend(fig, axes)
    return figure_svg(fig)


def success_cost_svg(frame: pd.DataFrame, unlearner: str) -> str:
    """Per detector: share of victims unlearned by ``unlearner`` with success and accuracy kept
    (Wilson 95 %) against mean detection seconds (Student-t 95 %), over every dataset and attack."""
    ok = frame[(frame["status"] == "ok") & (frame["unlearner"] == unlearner)]
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(5.5, 3.4))
        ax = fig.subplots()
        colours = _colours(ok["detector"])
        for detector, g in ok.groupby("detector"):
            hits = g["success"].astype(bool) & accuracy_kept_rows(g)
            share = wilson_interval(int(hits.sum()), len(hits))
            cost = mean_interval(g["detect_s"].astype(float).to_numpy())
            ax.errorbar(
                max(cost.estimate, 1e-3),
                share.estimate * 100,
                xerr=_err(cost, floor=1e-3),
                yerr=_err(share, 100),
                fmt="o",
                color=colours[detector],
                label=detector,
            )
        ax.set_xscale("log")
        ax.set(
            xlabel="detection time per victim (s, log scale)",
            ylabel=f"success with accuracy kept, {unlearner} (%)",
            ylim=(-5, 105),
        )
        _legend(fig, np.array([ax]))
    return figure_svg(fig)


def histogram_svg(
    panels: list[tuple[str, np.ndarray, np.ndarray]],
    xlabel: str,
    labels: tuple[str, str] = ("poisons", "clean"),
) -> str:
    """Overlaid density histograms of two samples per panel ``(title, first, second)``: e.g. a
    detector's scores on the true poisons against the clean points."""
    with mpl.rc_context(_STYLE):
        fig, axes = _panels(len(panels))
        for ax, (title, first, second) in zip(axes, panels):
            both = np.concatenate([first, second])
            lo, hi = np.percentile(both, [0.5, 99.5]) if both.size else (0.0, 1.0)
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 50)
            ax.hist(np.clip(second, lo, hi), bins, density=True, alpha=0.55, color="#4c78a8", label=labels[1])
            ax.hist(np.clip(first, lo, hi), bins, density=True, alpha=0.55, color="#e45756", label=labels[0])
            ax.axvline(0, color="black", lw=0.6)
            ax.set(xlabel=xlabel, ylabel="density")
            ax.set_title(title)
        axes[0].legend(frameon=False)
    return figure_svg(fig)


def _err(iv, scale: float = 1.0, floor: float = -np.inf) -> np.ndarray | None:
    """matplotlib's asymmetric error bar for an interval (none when it has no interval)."""
    if np.isnan(iv.low):
        return None
    low = max(iv.low, floor)
    est = max(iv.estimate, floor)
    return np.array([[max(est - low, 0) * scale], [max(iv.high - est, 0) * scale]])


def _colours(names: pd.Series) -> dict[str, str]:
    """A fixed colour per name, the same in every panel (sorted, so stable between runs)."""
    cycle = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(sorted(names.unique()))}


def _legend(fig: Figure, axes: np.ndarray) -> None:
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, frameon=False)
