"""HTML tables for the site: sortable and filterable, intervals shown, verdicts coloured.

Each cell carries ``data-sort`` (the estimate of a :class:`~deltabench.leaderboard.Cell`, or the
number itself) so the page's script sorts numbers as numbers, not as the text ``"97.8 [95.1, ...]"``.
"""

from __future__ import annotations

import math
from html import escape

import pandas as pd

from ..leaderboard import Cell, GridCell, Share

__all__ = ["html_table"]

# verdict marks of the Figure-3 grid -> CSS class of the cell's colour
_MARKS = {"✓": "ok", "⚠": "warn", "✗": "bad"}


def _sort_value(value: object) -> str | None:
    if isinstance(value, Cell):
        key = value.sort_key()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        key = float(value)
    else:
        return None
    return "" if math.isnan(key) else f"{key:.6g}"


def _cell_class(value: object) -> str:
    if isinstance(value, GridCell):
        return _MARKS.get(value.mark, "")
    if isinstance(value, Share) and value.n:
        share = value.k / value.n
        return "ok" if share >= 0.8 else "warn" if share >= 0.4 else "bad"  # the page's note says so
    return ""


def _cell_text(value: object) -> str:
    """The cell as HTML: an interval's brackets in a muted span, missing values as a dash."""
    if isinstance(value, Cell):
        text = value.text()
    elif value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    elif isinstance(value, float):
        text = f"{value:.3g}"
    else:
        text = str(value)
    head, sep, tail = text.partition(" [")
    return escape(head) + (f' <span class="ci">[{escape(tail)}</span>' if sep else "")


def html_table(table: pd.DataFrame, name: str, *, coloured: bool = False, filterable: bool = True) -> str:
    """``table`` as a sortable ``<table>`` (click a header), with a filter box above it.

    ``coloured`` paints verdict cells (Figure-3 marks, success shares) green / amber / red.
    """
    if table.empty:
        return '<p class="empty">No rows.</p>'
    head = "".join(
        f'<th scope="col" tabindex="0" aria-sort="none">{escape(str(c))}</th>' for c in table.columns
    )
    rows = []
    for values in table.itertuples(index=False):
        cells = []
        for value in values:
            sort = _sort_value(value)
            attrs = f' data-sort="{sort}"' if sort is not None else ""
            css = _cell_class(value) if coloured else ""
            attrs += f' class="{css}"' if css else ""
            cells.append(f"<td{attrs}>{_cell_text(value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    search = (
        f'<input type="search" class="filter" placeholder="filter rows" aria-label="filter {escape(name)}">'
        if filterable
        else ""
    )
    return (
        f'<div class="table" data-table="{escape(name)}">{search}'
        f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )
