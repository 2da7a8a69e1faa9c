"""Leaderboard tables: seed aggregation, the Figure-3 marks, failed cells listed."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from deltabench.cli import app
from deltabench.leaderboard import render_markdown, success_counts, summary_tables


def _rows() -> pd.DataFrame:
    base = {"dataset": "digits", "model": "small-cnn", "attack": "badnet", "status": "ok", "error": "",
            "n_poisons": 60, "clean_model_acc": 0.99, "victim_clean_acc": 0.98, "victim_psr": 1.0,
            "detect_s": 0.1}  # fmt: skip
    rows = []
    for seed, (oracle_psr, spectral_psr) in enumerate([(0.0, 0.9), (0.02, 0.5)]):
        for det, psr, flagged, hits in [("oracle", oracle_psr, 60, 60), ("spectral", spectral_psr, 90, 30)]:
            rows.append({**base, "seed": seed, "detector": det, "unlearner": "eu", "unlearned_psr": psr,
                         "unlearned_clean_acc": 0.97, "success": psr < 0.05, "flagged": flagged,
                         "true_poisons_flagged": hits, "precision": hits / flagged, "recall": hits / 60})  # fmt: skip
    for seed, acc in enumerate([0.10, 0.12]):  # PSR 0 but the model destroyed, as SSD can
        rows.append({**base, "seed": seed, "detector": "oracle", "unlearner": "ssd", "unlearned_psr": 0.0,
                     "unlearned_clean_acc": acc, "success": True, "flagged": 60,
                     "true_poisons_flagged": 60, "precision": 1.0, "recall": 1.0})  # fmt: skip
    rows.append({**base, "seed": 0, "detector": "broken", "unlearner": "eu", "status": "failed",
                 "error": "RuntimeError: boom"})  # fmt: skip
    return pd.DataFrame(rows)


def test_tables_average_over_seeds_and_mark_success():
    tables = summary_tables(_rows())
    fig = tables["figure3"].set_index("detector")
    assert fig.loc["oracle", "badnet"].startswith("✓ 1.0")  # mean PSR 1 % < 5 %
    assert fig.loc["spectral", "badnet"].startswith("✗ 70.0")
    det = tables["detection"].set_index("detector")
    assert det.loc["spectral", "recall %"] == "50.0 [50.0, 50.0]"  # no spread: a zero-width t-interval
    unl = tables["unlearning"].set_index(["detector", "unlearner"])
    assert unl.loc[("oracle", "eu"), "successes"] == "2/2 [34, 100]"  # Wilson: 1 - z^2 / (2 + z^2)
    assert unl.loc[("oracle", "eu"), "with acc kept"] == "2/2 [34, 100]"  # 1 point below the victim
    # PSR 0 at 10-12% accuracy: the paper's PSR mark, but not a kept model
    assert unl.loc[("oracle", "ssd"), "successes"] == "2/2 [34, 100]"
    assert unl.loc[("oracle", "ssd"), "with acc kept"] == "0/2 [0, 66]"
    assert success_counts(_rows()).to_dict() == {"oracle": 1, "spectral": 0}
    ssd = summary_tables(_rows(), figure_unlearner="ssd")["figure3"].set_index("detector")
    assert ssd.loc["oracle", "badnet"].startswith("⚠ 0.0 / 11.0")
    assert success_counts(_rows(), "ssd").to_dict() == {"oracle": 1}
    assert success_counts(_rows(), "ssd", acc_kept=True).to_dict() == {"oracle": 0}


def test_markdown_lists_failed_cells():
    text = render_markdown(_rows(), "T")
    assert text.startswith("# T")
    assert "## Failed cells" in text and "RuntimeError: boom" in text


def test_cli_renders_a_folder_and_reports_a_missing_one(tmp_path):
    _rows().to_csv(tmp_path / "results.csv", index=False)
    result = CliRunner().invoke(app, ["leaderboard", str(tmp_path), "--write"])
    assert result.exit_code == 0 and "Detection" in result.output
    assert (tmp_path / "leaderboard.md").is_file()
    missing = CliRunner().invoke(app, ["leaderboard", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "no leaderboard CSV" in missing.output


def test_influence_collapse_table_from_a_real_run(tmp_path):
    from deltabench.config import suite_from_dict
    from deltabench.detectors.delta_influence import influence_collapse
    from deltabench.registry import default_registry
    from deltabench.runner import run_suite
    from deltabench.stages import StoredStages

    suite = {
        "name": "collapse", "device": "cpu", "output": str(tmp_path / "out"), "cache": str(tmp_path / "cache"),
        "datasets": ["digits"], "models": ["small-cnn"], "training": {"epochs": 8, "translate": 1, "hflip": False},
        "attacks": [{"name": "badnet", "params": {"budget": 0.5}}],
        "detectors": [{"name": "delta-influence", "params": {"T": 10}}], "unlearners": ["none"],
        "references": False, "clean_model": False,
    }  # fmt: skip
    registry = default_registry()
    summary = run_suite(suite_from_dict(suite, registry), registry=registry)
    frame = pd.read_csv(summary.output)
    table = influence_collapse(frame, StoredStages(tmp_path / "cache"))
    assert len(table) == 1 and table.loc[0, "queries"] == 10
    assert table.loc[0, "queries with poison median < 0 %"] >= 90
    assert table.loc[0, "poison median delta"] < 0
    assert table.loc[0, "clean |median| / poison |median|"] < 0.1
    assert "Influence collapse" in render_markdown(
        frame, cache_dir=tmp_path / "cache"
    )  # its plugin's section
    assert influence_collapse(frame, StoredStages(tmp_path / "elsewhere")).empty  # no artifacts, no rows
    assert "Influence collapse" not in render_markdown(frame)
    # the site draws the histograms from the same real stages (tests/test_site.py covers the rest)
    from deltabench.site import build_site

    page = build_site([summary.output.parent], tmp_path / "site", cache_dir=tmp_path / "cache").read_text()
    section = page[page.index("Influence collapse: Δ-Influence deltas") :]
    assert "No delta matrices" not in section[:2000] and "<svg" in section[:5000]


def test_a_plugin_adds_its_own_section_without_a_change_to_the_core():
    import types

    from deltabench import hookimpl
    from deltabench.leaderboard import Section
    from deltabench.registry import load_registry

    @hookimpl
    def leaderboard_sections(frame, stages):
        flagged = frame[frame["status"] == "ok"].groupby("detector")["flagged"].max()
        return [Section("Most flagged", flagged.reset_index())]

    plugin = types.SimpleNamespace(leaderboard_sections=leaderboard_sections)
    registry = load_registry(entry_points=False, extra_plugins=(plugin,))
    text = render_markdown(_rows(), "T", registry=registry)
    assert "## Most flagged" in text and text.index("## Most flagged") < text.index("## Failed cells")
    assert "| spectral   |        90 |" in text
