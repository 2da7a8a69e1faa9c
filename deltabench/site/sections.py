"""What a plugin adds to the site: a titled section with a note, inline SVG figures and a table."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["SiteSection"]


@dataclass(frozen=True)
class SiteSection:
    """A section of one run's part of the site, contributed through the ``site_sections`` hook.

    ``note`` is plain text (escaped when rendered), ``svgs`` are complete ``<svg>`` documents (make
    them with :func:`deltabench.site.plots.figure_svg`, so the page needs no network), ``table`` is
    rendered sortable and filterable.
    """

    title: str
    note: str = ""
    svgs: tuple[str, ...] = ()
    table: pd.DataFrame | None = None
