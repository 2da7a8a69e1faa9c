"""The leaderboard's summary tables in other formats: markdown (the report), CSV and JSON (numbers a
script or a paper can read back, intervals as separate columns) and LaTeX (tables to paste).

Every format starts from :func:`deltabench.leaderboard.summary_cells`, so all show the same numbers.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

from .leaderboard import TABLE_TITLES, Cell, as_text, render_markdown, summary_cells

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["FORMATS", "Format", "export"]

Format = Literal["md", "csv", "json", "latex"]
FORMATS: tuple[str, ...] = ("md", "csv", "json", "latex")


def _finite(value: object) -> object:
    """NaN (no interval: fewer than 2 victims) as null, which JSON and CSV readers agree on."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _records(table: pd.DataFrame) -> list[dict[str, object]]:
    """One long record per numeric cell: the row's keys, the column, its text and its numbers."""
    keys = [c for c in table.columns if not any(isinstance(v, Cell) for v in table[c])]
    out = []
    for _, row in table.iterrows():
        base = {k: row[k] for k in keys}
        for column in table.columns:
            if column in keys or not isinstance(row[column], Cell):
                continue
            numbers = {k: _finite(v) for k, v in row[column].numbers().items()}
            out.append({**base, "column": column, "text": row[column].text(), **numbers})
    return out


def to_json(cells: dict[str, pd.DataFrame], title: str) -> str:
    """``{"title", "tables": {name: [record, ...]}}`` with one record per numeric cell."""
    tables = {name: _records(cells[name]) for name in TABLE_TITLES if name in cells}
    return json.dumps({"title": title, "tables": tables}, indent=1, ensure_ascii=False, default=str)


def to_csv(cells: dict[str, pd.DataFrame]) -> str:
    """The JSON records of every table as one long CSV, with a ``table`` column."""
    rows = [{"table": name, **r} for name in TABLE_TITLES if name in cells for r in _records(cells[name])]
    buffer = io.StringIO()
    pd.DataFrame(rows).to_csv(buffer, index=False)
    return buffer.getvalue()


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "✓": r"$\checkmark$",
    "✗": r"$\times$",
    "⚠": r"$\triangle$",
}


def latex_escape(text: object) -> str:
    """Text safe inside a LaTeX tabular; the verdict marks become math symbols."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_latex(cells: dict[str, pd.DataFrame], title: str, figure_unlearner: str) -> str:
    """One ``table`` environment per summary table (booktabs rules), cells as in the markdown."""
    parts = [f"% {title}: means over victims [Student-t 95 %], counts k/n [Wilson 95 %, in %]"]
    for name, template in TABLE_TITLES.items():
        heading = template.format(unlearner=figure_unlearner).replace("`", "")
        if name not in cells or cells[name].empty:
            continue
        table = as_text(cells[name])
        header = " & ".join(latex_escape(c) for c in table.columns) + r" \\"
        body = [" & ".join(latex_escape(v) for v in row) + r" \\" for row in table.itertuples(index=False)]
        parts += [
            r"\begin{table}[t]",
            r"\centering",
            f"\\caption{{{latex_escape(heading)}}}",
            f"\\label{{tab:{name}}}",
            f"\\begin{{tabular}}{{{'l' * len(table.columns)}}}",
            r"\toprule",
            header,
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
            "",
        ]
    return "\n".join(parts)


def export(
    frame: pd.DataFrame,
    fmt: Format,
    title: str,
    figure_unlearner: str = "eu",
    cache_dir: str | Path | None = None,
    registry: Registry | None = None,
) -> str:
    """The leaderboard of ``frame`` as text in ``fmt``; only ``md`` carries the plugins' sections."""
    if fmt == "md":
        return render_markdown(frame, title, figure_unlearner, cache_dir=cache_dir, registry=registry)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format '{fmt}': pick one of {', '.join(FORMATS)}")
    cells = summary_cells(frame, figure_unlearner)
    if fmt == "json":
        return to_json(cells, title)
    if fmt == "csv":
        return to_csv(cells)
    return to_latex(cells, title, figure_unlearner)
