"""An evaluation as one self-contained HTML page: inline CSS, matplotlib plots as inline SVG.

Nothing is fetched when the page opens (no scripts, fonts or style sheets from elsewhere), and the
same result always renders to the same bytes.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from distillwatch import __version__
from distillwatch.eval.report import TextTable, num, pct, target_label, text_tables
from distillwatch.eval.result import EvalResult, GroupRate

matplotlib.use("Agg")  # figures are drawn straight to SVG; never open a window

LEGIT_COLOR = "#4C78A8"
DISTILL_COLOR = "#E45756"
TARGET_COLORS = ("#F58518", "#54A24B", "#B279A2", "#9D755D", "#72B7B2")
ACTIONED_COLOR = "#555555"

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
background:#fafafa;margin:0}
main{max-width:1100px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:32px 0 8px;
border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:1.35em}.card span{color:#666;font-size:.85em}
.warn{background:#fff6e0;border-left:4px solid #f0b400;padding:8px 14px 8px 30px}
table{border-collapse:collapse;margin:8px 0;font-size:.9em}
th,td{padding:3px 10px;border-bottom:1px solid #eee}th{background:#f3f3f3;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
caption{caption-side:bottom;color:#666;font-size:.85em;text-align:left;padding-top:4px}
figure{margin:8px 0}svg{max-width:100%;height:auto}
.scroll{max-height:480px;overflow:auto}
footer{color:#888;font-size:.8em;margin-top:40px}
"""


def render_html(result: EvalResult, title: str = "distillwatch eval") -> str:
    """The whole report as one HTML document (a string)."""
    r = result
    tables = text_tables(r)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{r.n_accounts:,} accounts: {r.n_positive:,} distill, '
        f"{r.n_negative:,} legit; {r.n_unscored:,} unscored, {r.n_ignored:,} verdict rows "
        "ignored</p>",
        _cards(r),
    ]
    if r.warnings:
        parts.append('<ul class="warn">' + "".join(f"<li>{_e(w)}</li>" for w in r.warnings))
        parts.append("</ul>")
    parts += ["<h2>ROC curve</h2>", _figure(_roc_svg(r), "no ROC curve: the truth lacks a class")]
    parts.append(_table(tables["operating_points"]))
    parts += ["<h2>Score distributions</h2>", _figure(_histogram_svg(r), "no finite scores")]
    parts += [
        "<h2>Legitimate personas: false-positive rate</h2>",
        _figure(_bars_svg(r, r.legit_personas, "false-positive rate", "fpr"), "no legit accounts"),
        _table(tables["legit_personas"]),
        "<h2>Attack styles: recall</h2>",
        _figure(_bars_svg(r, r.attack_styles, "recall", "recall"), "no distill accounts"),
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
    parts.append(f"<footer>distillwatch {_e(__version__)} · eval</footer></main></body></html>")
    return "\n".join(parts) + "\n"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _cards(r: EvalResult) -> str:
    cards = [("ROC-AUC", num(r.roc_auc)), ("PR-AUC", num(r.average_precision))]
    cards += [(f"TPR at {target_label(p.target_fpr)}", pct(p.tpr, 1)) for p in r.operating_points]
    if r.tiers is not None:
        cards += [("actioned TPR", pct(r.tiers.tpr, 1)), ("actioned FPR", pct(r.tiers.fpr, 3))]
    if r.clusters is not None:
        cards.append(("cluster ARI", num(r.clusters.ari)))
    body = "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in cards)
    return f'<div class="cards">{body}</div>'


def _table(t: TextTable, scroll: bool = False) -> str:
    def cls(i: int) -> str:
        return "" if i < t.left else ' class="n"'

    head = "".join(f"<th{cls(i)}>{_e(c)}</th>" for i, c in enumerate(t.columns))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{_e(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in t.rows
    )
    caption = f"<caption>{_e(t.note)}</caption>" if t.note else ""
    table = f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>' if scroll else table


def _figure(svg: str | None, empty: str) -> str:
    return f"<figure>{svg}</figure>" if svg else f'<p class="sub">({_e(empty)})</p>'


def _svg(fig: Figure, salt: str) -> str:
    """The figure as an inline ``<svg>`` element: text kept as text, ids unique per figure."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text[text.index("<svg") :], flags=re.S)
    # several figures share one page: matplotlib numbers ids per figure, so prefix them
    for old in (' id="', 'href="#', "url(#"):
        text = text.replace(old, f"{old}{salt}-")
    return text


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
    return _svg(fig, "roc")


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
    return _svg(fig, "hist")


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
    return _svg(fig, salt)
