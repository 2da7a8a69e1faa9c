"""The site generator: every section, intervals in the tables, Δ-Influence's histograms from a cache
(or a note without one), component cards, one-line errors, no external resource."""

from __future__ import annotations

import re

import pytest
from tiny_results import tiny_results, write_cache
from typer.testing import CliRunner

from deltabench.cli import app
from deltabench.site import build_site

SECTIONS = ["figure3", "grid", "victims", "detection", "unlearning", "precision-recall", "cost", "plugin-0"]


def _section(page: str, key: str) -> str:
    start = page.index(f'data-section="{key}"')
    return page[start : page.find("</section>", start)]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    tiny_results().to_csv(folder / "results.csv", index=False)
    return folder


def test_page_has_every_section_with_intervals_and_cards(run_folder, tmp_path):
    page = build_site([run_folder], tmp_path / "site", cache_dir=tmp_path / "no-cache").read_text()
    for key in SECTIONS:
        assert f'data-section="{key}"' in page, key
    detection = _section(page, "detection")
    # recall of delta-influence over 3 victims: 14/15 with its Student-t interval, sortable by the mean
    assert re.search(
        r'<td data-sort="93.3333">93.3 <span class="ci">\[\d+\.\d, 100.0\]</span></td>', detection
    )
    grid = _section(page, "figure3")
    assert (
        'class="ok">✓ 0.0' in grid and 'class="bad">✗ 16.7' in grid
    )  # mean PSR with eu: 0 / (0 + 0 + 50) / 3
    shares = _section(page, "grid")
    assert 'class="ok">3/3 <span class="ci">[44, 100]</span>' in shares  # Wilson interval shown
    assert _section(page, "precision-recall").count("<svg") == 1 and _section(page, "cost").count("<svg") == 1
    plugin = _section(page, "plugin-0")
    assert "No delta matrices to plot: the cache folder is not there" in plugin and "<svg" not in plugin
    cards = page[page.index('id="components"') :]
    assert 'id="card-detector-delta-influence"' in cards and "Differs from the paper" in cards
    assert "in these runs" in cards  # oracle and delta-influence are used
    # self-contained: no script, stylesheet, image or font fetched from anywhere
    assert not re.search(r"<(script|img|link|iframe)[^>]*\b(src|href)=", page)
    assert "@import" not in page
    assert not re.search(r"url\((?!#)", page)  # SVG clip paths point inside the page only


def test_histograms_come_from_the_cached_delta_matrices(run_folder, tmp_path):
    write_cache(tiny_results(), tmp_path / "cache")
    page = build_site([run_folder], tmp_path / "site", cache_dir=tmp_path / "cache").read_text()
    plugin = _section(page, "plugin-0")
    assert "No delta matrices" not in plugin
    assert plugin.count("<svg") == 1  # 3 victims, 3 panels in one figure
    assert plugin.count("seed ") >= 3 and "poisons" in plugin and "clean" in plugin
    assert '<td data-sort="100">100</td>' in plugin  # every query: the poisons' median delta < 0


def test_two_runs_and_one_line_errors(run_folder, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    frame = tiny_results()
    frame.loc[frame["detector"] == "oracle", "detect_s"] = 9.0
    frame.to_csv(other / "results.csv", index=False)
    result = CliRunner().invoke(app, ["site", str(run_folder), str(other), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "out" / "index.html").read_text()
    assert f'data-run="{run_folder.name}"' in page and 'data-run="other"' in page
    assert page.count('data-section="detection"') == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = CliRunner().invoke(app, ["site", str(empty), "-o", str(tmp_path / "out2")])
    assert (
        missing.exit_code == 2
        and missing.output.strip() == f"error: {empty}: no leaderboard CSV here (run a suite first)"
    )
    assert not (tmp_path / "out2" / "index.html").exists()


def test_a_plugin_adds_its_own_section(run_folder, tmp_path):
    import types

    import matplotlib.pyplot as plt
    import pandas as pd

    from deltabench import hookimpl
    from deltabench.registry import load_registry
    from deltabench.site import SiteSection
    from deltabench.site.plots import figure_svg

    @hookimpl
    def site_sections(frame, stages):
        fig, ax = plt.subplots()
        ax.plot(frame["seed"], frame["detect_s"])
        table = pd.DataFrame({"rows": [len(frame)]})
        return [
            SiteSection("Third-party <scores>", note="from a plugin", svgs=(figure_svg(fig),), table=table)
        ]

    registry = load_registry(extra_plugins=(types.SimpleNamespace(site_sections=site_sections),))
    page = build_site([run_folder], tmp_path / "site", registry=registry).read_text()
    titles = re.findall(r'data-section="plugin-\d+"><h3>([^<]*)</h3>', page)
    assert "Third-party &lt;scores&gt;" in titles and len(titles) == 2  # escaped; Δ-Influence's too
    mine = _section(page, f"plugin-{titles.index('Third-party &lt;scores&gt;')}")
    assert mine.count("<svg") == 1 and '<td data-sort="12">12</td>' in mine
