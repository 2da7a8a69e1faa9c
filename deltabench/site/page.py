"""One run's part of the site and the whole page: sections in order, then the page template with
its stylesheet and script inlined, so ``index.html`` opens from a file with no network."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from importlib.resources import files
from pathlib import Path
from string import Template

import pandas as pd

from ..leaderboard import TABLE_TITLES, success_grid, summary_cells
from ..metrics import MAX_ACC_DROP, SUCCESS_PSR
from ..rows import ok_rows
from .plots import precision_recall_svg, success_cost_svg
from .sections import SiteSection
from .tables import html_table

__all__ = ["Run", "render_page", "run_sections"]


@dataclass
class Run:
    """A results folder to publish: its name (the folder's), its rows and its plugins' sections."""

    name: str
    frame: pd.DataFrame
    extra: list[SiteSection] = field(default_factory=list)


def _section(key: str, title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{escape(note)}</p>' if note else ""
    return f'<section class="part" data-section="{escape(key)}"><h3>{escape(title)}</h3>{note_html}{body}</section>'


def _figures(svgs: tuple[str, ...] | list[str]) -> str:
    return "".join(f'<figure class="plot">{svg}</figure>' for svg in svgs)


def run_sections(run: Run, figure_unlearner: str) -> str:
    """The run's sections: the two success grids, the three summary tables, the two plots, the
    plugins' sections and any failed cells."""
    frame = run.frame
    cells = summary_cells(frame, figure_unlearner)
    parts = []
    if "figure3" in cells:
        parts.append(
            _section(
                "figure3",
                TABLE_TITLES["figure3"].format(unlearner=figure_unlearner).replace("`", ""),
                html_table(cells["figure3"], f"{run.name} figure3", coloured=True),
                f"Mean PSR % / clean accuracy % after unlearning. ✓ PSR below {SUCCESS_PSR:.0%} with the "
                f"clean accuracy kept (at most {MAX_ACC_DROP * 100:.0f} points below the victim's); "
                f"⚠ PSR below {SUCCESS_PSR:.0%}, accuracy not kept; ✗ PSR not below it.",
            )
        )
    parts.append(
        _section(
            "grid",
            "Success per detector and unlearner",
            html_table(success_grid(frame), f"{run.name} grid", coloured=True),
            "Victims (over every dataset and attack) unlearned with success and the accuracy kept: "
            "k/n with the Wilson 95 % interval of the share, in %. Green: at least 80 % of them; amber: "
            "at least 40 %; red: fewer.",
        )
    )
    for key in ("victims", "detection", "unlearning"):
        if key in cells:
            parts.append(
                _section(
                    key,
                    TABLE_TITLES[key],
                    html_table(cells[key], f"{run.name} {key}"),
                    "Means over victims with their Student-t 95 % interval in brackets; counts k/n "
                    "with the Wilson 95 % interval of the share (in %).",
                )
            )
    ok = ok_rows(frame)
    if not ok.empty:
        parts.append(
            _section(
                "precision-recall",
                "Precision and recall per detector",
                _figures([precision_recall_svg(frame)]),
                "Dots: one victim each. Markers with bars: the mean over victims with its Student-t "
                "95 % interval.",
            )
        )
        parts.append(
            _section(
                "cost",
                "Success against cost",
                _figures([success_cost_svg(frame, figure_unlearner)]),
                f"Share of victims unlearned by {figure_unlearner} with success and accuracy kept (Wilson "
                "95 %) against the detector's mean seconds per victim (Student-t 95 %).",
            )
        )
    for i, extra in enumerate(run.extra):
        table = html_table(extra.table, f"{run.name} plugin {i}") if extra.table is not None else ""
        parts.append(_section(f"plugin-{i}", extra.title, _figures(extra.svgs) + table, extra.note))
    failed = frame[frame["status"] == "failed"]
    if not failed.empty:
        cols = ["dataset", "attack", "seed", "detector", "unlearner", "error"]
        parts.append(_section("failed", "Failed cells", html_table(failed[cols], f"{run.name} failed")))
    header = f"{len(frame)} rows, {frame['seed'].nunique()} seed(s)"
    return (
        f'<section class="run" id="run-{escape(run.name)}" data-run="{escape(run.name)}">'
        f'<h2>{escape(run.name)}</h2><p class="note">{escape(header)}</p>{"".join(parts)}</section>'
    )


def _asset(name: str) -> str:
    return files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def render_page(runs: list[Run], cards: str, title: str, figure_unlearner: str) -> str:
    """The complete ``index.html``: navigation, one part per run, the component cards."""
    nav = "".join(f'<a href="#run-{escape(r.name)}">{escape(r.name)}</a>' for r in runs)
    body = "".join(run_sections(r, figure_unlearner) for r in runs)
    body += (
        f'<section class="run" id="components" data-section="components"><h2>Components</h2>{cards}</section>'
    )
    return Template(_asset("page.html")).substitute(
        title=escape(title),
        css=_asset("site.css"),
        js=_asset("site.js"),
        nav=nav + '<a href="#components">components</a>',
        body=body,
        sources=escape(", ".join(r.name for r in runs)),
    )


def write_page(text: str, out_dir: Path) -> Path:
    """Write ``index.html`` into ``out_dir`` (made if missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "index.html"
    target.write_text(text, encoding="utf-8")
    return target
