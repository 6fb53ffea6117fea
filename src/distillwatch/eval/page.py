"""An evaluation as one self-contained HTML page: inline CSS, matplotlib plots as inline SVG.

Nothing is fetched when the page opens (no scripts, fonts or style sheets from elsewhere), and the
same result always renders to the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from distillwatch.eval.report import TextTable, num, pct, target_label, text_tables
from distillwatch.eval.result import EvalResult, GroupRate
from distillwatch.report.html import document, esc, figure, svg, table

LEGIT_COLOR = "#4C78A8"
DISTILL_COLOR = "#E45756"
TARGET_COLORS = ("#F58518", "#54A24B", "#B279A2", "#9D755D", "#72B7B2")
ACTIONED_COLOR = "#555555"


def render_html(result: EvalResult, title: str = "distillwatch eval") -> str:
    """The whole report as one HTML document (a string)."""
    r = result
    tables = text_tables(r)
    parts = [
        f'<p class="sub">{r.n_accounts:,} accounts: {r.n_positive:,} distill, '
        f"{r.n_negative:,} legit; {r.n_unscored:,} unscored, {r.n_ignored:,} verdict rows "
        "ignored</p>",
        _cards(r),
    ]
    if r.warnings:
        parts.append('<ul class="warn">' + "".join(f"<li>{esc(w)}</li>" for w in r.warnings))
        parts.append("</ul>")
    parts += ["<h2>ROC curve</h2>", figure(_roc_svg(r), "no ROC curve: the truth lacks a class")]
    parts.append(_table(tables["operating_points"]))
    parts += ["<h2>Score distributions</h2>", figure(_histogram_svg(r), "no finite scores")]
    parts += [
        "<h2>Legitimate personas: false-positive rate</h2>",
        figure(_bars_svg(r, r.legit_personas, "false-positive rate", "fpr"), "no legit accounts"),
        _table(tables["legit_personas"]),
        "<h2>Attack styles: recall</h2>",
        figure(_bars_svg(r, r.attack_styles, "recall", "recall"), "no distill accounts"),
        _table(tables["attack_styles"]),
        "<h2>Campaigns: recall</h2>",
        _table(tables["campaigns"], scroll=True),
    ]
    if "tiers" in tables:
        parts += ["<h2>Tiers</h2>", _table(tables["tiers"])]
    if "clusters" in tables:
        parts += [
            "<h2>Clusters</h2>",
            _table(tables["clusters"]),
            _table(tables["cluster_list"], scroll=True),
        ]
    return document(title, parts, "eval")


def _cards(r: EvalResult) -> str:
    cards = [("ROC-AUC", num(r.roc_auc)), ("PR-AUC", num(r.average_precision))]
    cards += [(f"TPR at {target_label(p.target_fpr)}", pct(p.tpr, 1)) for p in r.operating_points]
    if r.tiers is not None:
        cards += [("actioned TPR", pct(r.tiers.tpr, 1)), ("actioned FPR", pct(r.tiers.fpr, 3))]
    if r.clusters is not None:
        cards.append(("cluster ARI", num(r.clusters.ari)))
    body = "".join(
        f'<div class="card"><b>{esc(v)}</b><span>{esc(k)}</span></div>' for k, v in cards
    )
    return f'<div class="cards">{body}</div>'


def _table(t: TextTable, scroll: bool = False) -> str:
    return table(t.columns, t.rows, left=t.left, note=t.note, scroll=scroll)


def _roc_svg(r: EvalResult) -> str | None:
    if not r.roc.fpr:
        return None
    floor = min(0.5 / max(r.n_negative, 1), *(f / 5 for f in r.target_fprs))
    fig = Figure(figsize=(7.0, 4.6))
    ax = fig.add_subplot()
    ax.plot([max(f, floor) for f in r.roc.fpr], r.roc.tpr, color=DISTILL_COLOR, lw=1.8)
    for i, p in enumerate(r.operating_points):
        color = TARGET_COLORS[i % len(TARGET_COLORS)]
        ax.axvline(p.target_fpr, color=color, ls="--", lw=1, label=target_label(p.target_fpr))
        if not math.isnan(p.tpr):
            ax.plot([max(p.fpr, floor)], [p.tpr], "o", color=color, ms=6)
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("false-positive rate (log; 0 drawn at the left edge)")
    ax.set_ylabel("true-positive rate")
    ax.set_title(f"ROC (AUC {num(r.roc_auc)})")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="lower right", frameon=False)
    return svg(fig, "roc")


def _histogram_svg(r: EvalResult) -> str | None:
    h = r.histogram
    if not h.edges:
        return None
    fig = Figure(figsize=(7.0, 3.6))
    ax = fig.add_subplot()
    for counts, color, label in (
        (h.legit, LEGIT_COLOR, "legit"),
        (h.distill, DISTILL_COLOR, "distill"),
    ):
        total = sum(counts)
        if total:
            shares = [c / total for c in counts]
            ax.stairs(
                shares, h.edges, fill=True, alpha=0.45, color=color, label=f"{label} ({total:,})"
            )
    for i, p in enumerate(r.operating_points):
        if math.isfinite(p.threshold):
            ax.axvline(p.threshold, color=TARGET_COLORS[i % len(TARGET_COLORS)], ls="--", lw=1)
    ax.set_xlabel("score  (dashed: thresholds of the operating points)")
    ax.set_ylabel("share of the class")
    ax.legend(frameon=False)
    ax.grid(True, alpha=0.25)
    return svg(fig, "hist")


def _bars_svg(r: EvalResult, groups: Sequence[GroupRate], xlabel: str, salt: str) -> str | None:
    if not groups:
        return None
    series: list[tuple[str, str, list[float]]] = [
        (
            target_label(p.target_fpr),
            TARGET_COLORS[i % len(TARGET_COLORS)],
            [0.0 if math.isnan(g.rate[i]) else 100 * g.rate[i] for g in groups],
        )
        for i, p in enumerate(r.operating_points)
    ]
    if r.tiers is not None:
        series.append(
            ("actioned tier", ACTIONED_COLOR, [100 * (g.actioned_rate or 0.0) for g in groups])
        )
    height = 0.9 / len(series)
    fig = Figure(figsize=(7.0, 0.9 + 0.32 * len(groups) * max(1, len(series) / 2)))
    ax: Axes = fig.add_subplot()
    for j, (label, color, values) in enumerate(series):
        ys = [k + (j - (len(series) - 1) / 2) * height for k in range(len(groups))]
        ax.barh(ys, values, height=height, color=color, label=label)
    ax.set_yticks(range(len(groups)), [f"{g.group} ({g.n:,})" for g in groups])
    ax.invert_yaxis()
    ax.set_xlabel(f"{xlabel} (%)")
    ax.grid(True, axis="x", alpha=0.25)
    ax.legend(frameon=False, fontsize="small", loc="best")
    return svg(fig, salt)
