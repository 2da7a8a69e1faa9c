"""Tables from leaderboard CSVs: victims, detection quality, unlearning outcomes, and a
paper-style (Figure 3) grid of PSR and clean accuracy per detector and attack."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import MAX_ACC_DROP, SUCCESS_PSR, accuracy_kept

__all__ = ["load_results", "render_markdown", "summary_tables"]


def load_results(folder: str | Path) -> pd.DataFrame:
    """The rows of a run: ``results.csv`` in ``folder`` if present, else every shard CSV there
    (each cell once), or the one CSV file ``folder`` names."""
    folder = Path(folder)
    if folder.is_file():
        return pd.read_csv(folder)
    files = [folder / "results.csv"] if (folder / "results.csv").is_file() else sorted(folder.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"{folder}: no leaderboard CSV here (run a suite first)")
    frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    return frame.drop_duplicates("cell_id") if "cell_id" in frame else frame


def _mean_sd(series: pd.Series, scale: float = 100.0, digits: int = 1) -> str:
    values = series.dropna().astype(float) * scale
    if values.empty:
        return "-"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def summary_tables(frame: pd.DataFrame, figure_unlearner: str = "eu") -> dict[str, pd.DataFrame]:
    """Victim, detection, unlearning and Figure-3 tables (means ± sd over seeds, in %)."""
    ok = frame[frame["status"] == "ok"]
    tables: dict[str, pd.DataFrame] = {}
    # victims whose attack did not take have only skipped rows, but belong in the victim table
    trained = frame[frame["status"].isin(["ok", "skipped"])]
    victims = trained.drop_duplicates(["dataset", "model", "attack", "seed"])
    tables["victims"] = (
        victims.groupby(["dataset", "model", "attack"])
        .apply(
            lambda g: pd.Series(
                {
                    "seeds": g["seed"].nunique(),
                    "poisons": _mean_sd(g["n_poisons"], 1, 0),
                    "clean model acc %": _mean_sd(g["clean_model_acc"]),
                    "victim acc %": _mean_sd(g["victim_clean_acc"]),
                    "victim PSR %": _mean_sd(g["victim_psr"]),
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
                    "flagged": _mean_sd(g["flagged"], 1, 0),
                    "true poisons": _mean_sd(g["true_poisons_flagged"], 1, 0),
                    "precision %": _mean_sd(g["precision"]),
                    "recall %": _mean_sd(g["recall"]),
                    "detect s": _mean_sd(g["detect_s"], 1, 1),
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
                    "PSR %": _mean_sd(g["unlearned_psr"]),
                    "clean acc %": _mean_sd(g["unlearned_clean_acc"]),
                    "successes": f"{int(g['success'].astype(bool).sum())}/{len(g)}",
                    "with acc kept": f"{int((g['success'].astype(bool) & _acc_kept(g)).sum())}/{len(g)}",
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
) -> str:
    """A markdown report of :func:`summary_tables`, with failed cells listed at the end."""
    tables = summary_tables(frame, figure_unlearner)
    parts = [f"# {title}", ""]
    seeds = frame["seed"].nunique()
    parts.append(
        f"{len(frame)} rows, {seeds} seed(s); means ± sd over seeds. PSR = poison success rate; "
        f"✓ = PSR below {SUCCESS_PSR:.0%} after unlearning with clean accuracy kept (at most "
        f"{MAX_ACC_DROP * 100:.0f} points below the victim's); ⚠ = PSR below {SUCCESS_PSR:.0%} but the "
        "accuracy was not kept; ✗ = PSR not below it. `successes` counts PSR below "
        f"{SUCCESS_PSR:.0%} (the paper's mark), `with acc kept` also requires the accuracy."
    )
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
    if cache_dir is not None and "detect_key" in frame:
        collapse = influence_collapse(frame, cache_dir)
        if not collapse.empty:
            parts += [
                "",
                "## Influence collapse (Δ-Influence: delta = new - old influence, per auxiliary query)",
                "",
                collapse.to_markdown(index=False, floatfmt=".3g"),
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


def influence_collapse(
    frame: pd.DataFrame, cache_dir: str | Path, detector: str = "delta-influence"
) -> pd.DataFrame:
    """Influence collapse per victim, from the cached Δ-Influence delta matrices (paper, Figure 2).

    For each victim: the share of auxiliary queries in which the median delta of the true poisons
    is negative, and the medians (over queries) of the poisons' and the clean points' median delta.
    Rows whose artifacts are not in ``cache_dir`` are left out.
    """
    from .cache import ArtifactStore

    store = ArtifactStore(cache_dir)
    rows = frame[(frame["status"] == "ok") & (frame["detector"] == detector)]
    out = []
    for _, row in rows.drop_duplicates("detect_key").iterrows():
        if not (store.has("detect", row["detect_key"]) and store.has("attack", row["attack_key"])):
            continue
        delta = store.load("detect", row["detect_key"])["detection"].scores.get("delta_matrix")
        if delta is None:
            continue
        poisons = store.load("attack", row["attack_key"])["data"].poison_indices
        clean = np.setdiff1d(np.arange(delta.shape[1]), poisons)
        poison_median = np.median(delta[:, poisons], axis=1)
        clean_median = np.median(delta[:, clean], axis=1)
        out.append({
            "dataset": row["dataset"], "attack": row["attack"], "seed": row["seed"],
            "queries": delta.shape[0],
            "queries with poison median < 0 %": 100.0 * float((poison_median < 0).mean()),
            "poison median delta": float(np.median(poison_median)),
            "clean median delta": float(np.median(clean_median)),
            "clean |median| / poison |median|": float(abs(np.median(clean_median)) / max(abs(np.median(poison_median)), 1e-12)),
        })  # fmt: skip
    return pd.DataFrame(out)
