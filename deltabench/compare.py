"""Paired comparison of two sets of leaderboard rows: two runs, or two methods within one run.

Rows are paired on their setting (dataset, model, attack and their parameters, seed, and the
component that is not being compared); each (attack, detector, unlearner) group gets the mean
difference B - A of PSR, clean accuracy, precision and recall with a paired-bootstrap interval, and
an exact McNemar test on the success flags. Pairs whose victims differ (another machine's floats
give another victim from the same seed) are still paired by setting, and counted, so a reader
knows the comparison is of settings, not of identical victims.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .rows import ok_rows, success_flags
from .stats import CONFIDENCE, Interval, McNemar, mcnemar_exact, paired_bootstrap, sign_flip_p

__all__ = ["Comparison", "compare_runs", "compare_components", "METRICS", "render_comparison"]

#: metric column -> (label, which direction is better for the defender)
METRICS: dict[str, tuple[str, int]] = {
    "unlearned_psr": ("PSR", -1),
    "unlearned_clean_acc": ("clean acc", +1),
    "precision": ("precision", +1),
    "recall": ("recall", +1),
}
SETTING = ["dataset", "dataset_params", "model", "model_params", "attack", "attack_params", "seed"]
VICTIM = ["victim_clean_acc", "victim_psr", "n_poisons"]
GROUP = ["attack", "detector", "unlearner"]


@dataclass
class GroupResult:
    """The paired differences of one (attack, detector, unlearner) group."""

    key: tuple[str, str, str]
    pairs: int
    victims_differ: int
    differences: dict[str, Interval]
    p_values: dict[str, float]
    success: McNemar
    successes: tuple[int, int]

    def significant(self) -> list[str]:
        """Metrics whose sign-flip p < 1 - confidence, and ``success`` when McNemar's is."""
        names = [m for m, p in self.p_values.items() if p < 1 - CONFIDENCE]
        return names + (["success"] if self.success.p_value < 1 - CONFIDENCE else [])

    def worse(self) -> list[str]:
        """Significant differences in the defender's disfavour for B."""
        bad = [
            m
            for m, p in self.p_values.items()
            if p < 1 - CONFIDENCE and self.differences[m].estimate * METRICS[m][1] < 0
        ]
        if self.success.p_value < 1 - CONFIDENCE and self.successes[1] < self.successes[0]:
            bad.append("success")
        return bad


@dataclass
class Comparison:
    """A whole comparison: group results and the rows that could not be paired, with why."""

    a_name: str
    b_name: str
    groups: list[GroupResult]
    unpaired: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[GroupResult]:
        return [g for g in self.groups if g.worse()]


def _pair(a: pd.DataFrame, b: pd.DataFrame, on: list[str], what: str) -> tuple[pd.DataFrame, list[str]]:
    """Inner-join ``a`` and ``b`` on ``on``; describe the rows left out on each side and why."""
    unpaired: list[str] = []
    for side, frame in (("A", a), ("B", b)):
        failed = frame[frame["status"] != "ok"]
        if len(failed):
            unpaired.append(f"{side}: {len(failed)} rows not ok ({', '.join(sorted(set(failed['status'])))})")
    a, b = ok_rows(a), ok_rows(b)
    for side, frame in (("A", a), ("B", b)):
        if frame.duplicated(on).any():
            raise ValueError(f"{side} has several rows per {what}; name the rows to compare more precisely")
    merged = a.merge(b, on=on, suffixes=("_a", "_b"), how="outer", indicator=True)
    for side, flag in (("A", "left_only"), ("B", "right_only")):
        alone = merged[merged["_merge"] == flag]
        if len(alone):
            groups = alone.groupby([c for c in on if c in GROUP]).size()
            listed = "; ".join(
                f"{'/'.join(map(str, k if isinstance(k, tuple) else (k,)))}: {n}" for k, n in groups.items()
            )
            unpaired.append(f"only in {side} ({len(alone)} rows, no matching {what}): {listed}")
    return merged[merged["_merge"] == "both"], unpaired


def _groups(paired: pd.DataFrame) -> list[GroupResult]:
    out = []
    for key, rows in paired.groupby(GROUP, sort=False):
        diffs = {m: paired_bootstrap(rows[f"{m}_a"], rows[f"{m}_b"]) for m in METRICS}
        p_values = {m: sign_flip_p(rows[f"{m}_a"], rows[f"{m}_b"]) for m in METRICS}
        sa = success_flags(rows["success_a"]).to_numpy()
        sb = success_flags(rows["success_b"]).to_numpy()
        differ = np.zeros(len(rows), dtype=bool)
        for col in VICTIM:
            if f"{col}_a" in rows:
                differ |= ~np.isclose(
                    rows[f"{col}_a"].astype(float), rows[f"{col}_b"].astype(float), rtol=0, atol=1e-9
                )
        out.append(
            GroupResult(
                tuple(str(k) for k in key), len(rows), int(differ.sum()), diffs, p_values, mcnemar_exact(sa, sb),
                (int(sa.sum()), int(sb.sum())),
            )
        )  # fmt: skip
    return out


def compare_runs(a: pd.DataFrame, b: pd.DataFrame, a_name: str = "A", b_name: str = "B") -> Comparison:
    """Two runs of the same suite (two machines, two code revisions): cells paired on their setting."""
    on = [*SETTING, "detector", "detector_params", "unlearner", "unlearner_params"]
    paired, unpaired = _pair(a, b, on, "cell")
    return Comparison(a_name, b_name, _groups(paired), unpaired)


def compare_components(frame: pd.DataFrame, kind: str, a: str, b: str) -> Comparison:
    """Two detectors (``kind='detector'``) or two unlearners within one run, paired on everything else."""
    other = {"detector": "unlearner", "unlearner": "detector"}.get(kind)
    if other is None:
        raise ValueError(f"compare two detectors or two unlearners, not {kind}s")
    labels = set(frame[kind])
    for name in (a, b):
        if name not in labels:
            raise ValueError(f"no {kind} labelled '{name}' in these rows (have: {', '.join(sorted(labels))})")
    on = [*SETTING, other, f"{other}_params"]
    paired, unpaired = _pair(frame[frame[kind] == a], frame[frame[kind] == b], on, f"{other} and seed")
    paired = paired.assign(**{kind: f"{a} -> {b}"})
    return Comparison(a, b, _groups(paired), unpaired)


def render_comparison(comparison: Comparison) -> str:
    """Markdown: one row per group with B - A differences, [95 % interval], and the success test."""
    rows = []
    for g in comparison.groups:
        row = {"attack": g.key[0], "detector": g.key[1], "unlearner": g.key[2], "pairs": g.pairs}
        for metric, iv in g.differences.items():
            star = " *" if g.p_values[metric] < 1 - CONFIDENCE else ""
            row[f"Δ {METRICS[metric][0]} (points)"] = iv.format(100, 1) + star
        row["successes A / B"] = f"{g.successes[0]} / {g.successes[1]}"
        row["McNemar p"] = f"{g.success.p_value:.3g}" + (" *" if g.success.p_value < 1 - CONFIDENCE else "")
        row["victims differ"] = g.victims_differ
        rows.append(row)
    lines = [
        f"# {comparison.b_name} vs {comparison.a_name}",
        "",
        f"Differences are B - A ({comparison.b_name} minus {comparison.a_name}) in percentage points, "
        f"mean over paired cells with a paired-bootstrap {CONFIDENCE:.0%} interval; * = significant "
        f"(exact sign-flip permutation test p < {1 - CONFIDENCE:.2f}; for success = PSR < 5 %, exact "
        "McNemar). With 5 or fewer pairs no difference can be significant at this level. "
        "'victims differ' counts pairs whose victims are not the same model (e.g. another machine).",
        "",
        pd.DataFrame(rows).to_markdown(index=False) if rows else "(no paired cells)",
    ]
    significant = [(g, g.significant()) for g in comparison.groups if g.significant()]
    lines += ["", f"Significant differences: {len(significant)} of {len(comparison.groups)} groups."]
    lines += [f"- {'/'.join(g.key)}: {', '.join(names)}" for g, names in significant]
    if comparison.unpaired:
        lines += ["", "Not paired:"] + [f"- {line}" for line in comparison.unpaired]
    return "\n".join(lines) + "\n"
