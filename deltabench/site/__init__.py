"""``deltabench site``: one self-contained ``index.html`` from one or more results folders.

Sortable, filterable tables with 95 % intervals, the Figure-3 grids, precision-recall and
success-against-cost plots, the plugins' own sections (``site_sections`` hook, e.g. Δ-Influence's
histograms of deltas from the run's cache) and a card per component. Styles, script and figures
(SVG) are inline: the page opens from a file with no network.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..leaderboard import load_results
from .sections import SiteSection

if TYPE_CHECKING:
    import pandas as pd

    from ..registry import Registry

__all__ = ["SiteSection", "build_site", "plugin_site_sections"]


def plugin_site_sections(
    frame: pd.DataFrame, cache_dir: str | Path | None, registry: Registry
) -> list[SiteSection]:
    """Every plugin's ``site_sections`` for one run, in registration order; ``stages`` is None
    when the cache folder is not there (a plugin then says what is missing)."""
    from ..stages import StoredStages

    stages = StoredStages(cache_dir) if cache_dir is not None and Path(cache_dir).is_dir() else None
    found = registry.plugin_manager.hook.site_sections(frame=frame, stages=stages)
    return [section for sections in reversed(found) for section in sections]


def build_site(
    folders: list[Path],
    out_dir: Path,
    *,
    cache_dir: str | Path | None = None,
    figure_unlearner: str = "eu",
    title: str = "deltabench leaderboard",
    registry: Registry | None = None,
) -> Path:
    """Write ``out_dir/index.html`` for the results in ``folders``; returns its path.

    Raises :class:`FileNotFoundError` (one line) for a folder with no results CSV, and
    :class:`ValueError` when two folders share a name (their sections would clash).
    """
    from ..registry import default_registry
    from .cards import component_cards
    from .page import Run, render_page, write_page

    registry = registry or default_registry()
    names = [Path(f).resolve().name for f in folders]
    if len(set(names)) != len(names):
        raise ValueError(f"folders must have distinct names, got {', '.join(names)}")
    runs = []
    for folder, name in zip(folders, names):
        frame = load_results(folder)
        runs.append(Run(name, frame, plugin_site_sections(frame, cache_dir, registry)))
    used = {
        str(v)
        for r in runs
        for col in ("attack", "detector", "unlearner", "dataset", "model")
        for v in r.frame[col].unique()
    }
    page = render_page(runs, component_cards(registry, used), title, figure_unlearner)
    return write_page(page, Path(out_dir))
