"""An evaluation as JSON and as text tables (the same tables feed the console and the HTML page)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

from distillwatch.eval.result import EvalResult, GroupRate

JSON_FORMAT = "distillwatch.eval/1"
"""The ``format`` tag of ``eval.json``; bump the number when a field changes meaning."""


@dataclass(frozen=True, slots=True)
class TextTable:
    """A titled table of formatted cells; the first ``left`` columns are text, the rest numbers."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    left: int = 1
    note: str = ""


def to_json(result: EvalResult) -> dict[str, Any]:
    """Every number of ``result`` as JSON-ready data; ``nan`` and ``±inf`` become ``null``.

    A null operating-point threshold with ``n_flagged == 0`` means nothing is flagged; the ROC
    curve's first and last thresholds are +inf and -inf.

    >>> from distillwatch.eval.metrics import evaluate
    >>> import polars as pl
    >>> t = pl.DataFrame({"account_id": ["a", "b"], "label": ["legit", "distill"],
    ...                   "persona": ["casual_chat", "alpaca_sweep"]})
    >>> to_json(evaluate(t, pl.DataFrame({"account_id": ["a", "b"], "score": [0, 1]})))["roc_auc"]
    1.0
    """
    return {"format": JSON_FORMAT, **_finite(asdict(result))}


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def pct(x: float | None, digits: int = 2) -> str:
    """A rate as a percentage; ``—`` when undefined.

    >>> pct(0.001), pct(float("nan")), pct(1.0, 1)
    ('0.10 %', '—', '100.0 %')
    """
    if x is None or math.isnan(x):
        return "—"
    return f"{100 * x:.{digits}f} %"


def num(x: float) -> str:
    """A metric or score in six significant digits; ``—`` when undefined, ``±inf`` spelled out."""
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.6g}"


def target_label(target: float) -> str:
    """``0.001`` -> ``FPR ≤ 0.1 %``."""
    return f"FPR ≤ {100 * target:g} %"


def threshold_label(threshold: float) -> str:
    """The flagging rule of an operating point in words."""
    if math.isnan(threshold):
        return "undefined"
    if math.isinf(threshold) and threshold > 0:
        return "none flagged"
    return f"score ≥ {num(threshold)}"


def text_tables(result: EvalResult, max_clusters: int = 200) -> dict[str, TextTable]:
    """The report's tables by key, in reading order; absent sections have no table."""
    r = result
    tables = [
        TextTable(
            "summary",
            "summary",
            ("metric", "value"),
            (
                ("accounts", f"{r.n_accounts:,}"),
                ("distill (positive)", f"{r.n_positive:,}"),
                ("legit (negative)", f"{r.n_negative:,}"),
                ("unscored", f"{r.n_unscored:,} ({r.n_unscored_positive:,} distill)"),
                ("verdict rows ignored", f"{r.n_ignored:,}"),
                ("ROC-AUC", num(r.roc_auc)),
                ("PR-AUC (average precision)", num(r.average_precision)),
            ),
        ),
        _operating_table(r),
        _group_table(
            r, "legit_personas", "legit personas: false-positive rate", "persona", r.legit_personas
        ),
        _group_table(r, "attack_styles", "attack styles: recall", "style", r.attack_styles),
        _group_table(r, "campaigns", "campaigns: recall", "campaign", r.campaigns),
    ]
    if r.tiers is not None:
        tiers = r.tiers.confusion
        tables.append(
            TextTable(
                "tiers",
                "tier × label",
                ("tier", "legit", "distill"),
                tuple((c.tier, f"{c.legit:,}", f"{c.distill:,}") for c in tiers),
                note=f"actioned = tier in {{{', '.join(r.tiers.actioned_tiers)}}}",
            )
        )
    if r.clusters is not None:
        c = r.clusters
        tables.append(
            TextTable(
                "clusters",
                "clusters against campaigns",
                ("metric", "value"),
                (
                    ("adjusted Rand index", num(c.ari)),
                    ("adjusted Rand index, distill accounts only", num(c.ari_distill)),
                    ("purity (size-weighted)", pct(c.purity, 1)),
                    ("predicted clusters of ≥ 2", f"{c.n_clusters:,}"),
                    ("… holding distill accounts", f"{c.n_clusters_with_distill:,}"),
                    ("distill accounts in a cluster of ≥ 2", pct(c.distill_clustered_share, 1)),
                ),
                note=f"truth: {c.truth_partition}",
            )
        )
        shown = c.clusters[:max_clusters]
        more = len(c.clusters) - len(shown)
        tables.append(
            TextTable(
                "cluster_list",
                "predicted clusters holding distill accounts",
                ("cluster", "majority campaign", "size", "distill", "majority share"),
                tuple(
                    (
                        k.cluster_id,
                        k.majority_campaign,
                        f"{k.size:,}",
                        f"{k.n_distill:,}",
                        pct(k.majority_share, 1),
                    )
                    for k in shown
                ),
                left=2,
                note=f"{more:,} smaller cluster(s) not shown; all are in eval.json" if more else "",
            )
        )
    return {t.key: t for t in tables}


def _operating_table(r: EvalResult) -> TextTable:
    rows = [
        (
            target_label(p.target_fpr),
            threshold_label(p.threshold),
            pct(p.tpr),
            pct(p.fpr, 3),
            pct(p.precision),
            f"{p.n_flagged:,}",
            f"{p.true_positives:,}",
            f"{p.false_positives:,}",
        )
        for p in r.operating_points
    ]
    if r.tiers is not None:
        t = r.tiers
        fp = sum(c.legit for c in t.confusion if c.tier in t.actioned_tiers)
        rows.append(
            (
                "tier (actioned)",
                f"tier in {{{', '.join(t.actioned_tiers)}}}",
                pct(t.tpr),
                pct(t.fpr, 3),
                pct(t.precision),
                f"{t.n_actioned:,}",
                f"{t.n_actioned - fp:,}",
                f"{fp:,}",
            )
        )
    return TextTable(
        "operating_points",
        "operating points",
        ("target", "rule", "TPR", "FPR", "precision", "flagged", "TP", "FP"),
        tuple(rows),
        left=2,
        note="highest TPR whose FPR is within the target; equal scores are flagged together",
    )


def _group_table(
    r: EvalResult, key: str, title: str, name: str, groups: tuple[GroupRate, ...]
) -> TextTable:
    styles = key == "campaigns"
    tiers = r.tiers is not None
    columns = (
        (name, *(("styles",) if styles else ()), "accounts")
        + tuple(target_label(p.target_fpr) for p in r.operating_points)
        + (("actioned",) if tiers else ())
    )
    rows = tuple(
        (
            g.group,
            *((g.styles or "",) if styles else ()),
            f"{g.n:,}",
            *(_rate_cell(rate, f) for rate, f in zip(g.rate, g.flagged, strict=True)),
            *((_rate_cell(g.actioned_rate, g.actioned),) if tiers else ()),
        )
        for g in groups
    )
    undefined = any(math.isnan(p.threshold) for p in r.operating_points)
    return TextTable(
        key,
        title,
        columns,
        rows,
        left=2 if styles else 1,
        note="— : no threshold (the truth lacks a class)" if undefined else "",
    )


def _rate_cell(rate: float | None, count: int | None) -> str:
    if rate is None or count is None or math.isnan(rate):
        return "—"
    return f"{pct(rate)} ({count:,})"


def rich_tables(result: EvalResult, max_clusters: int = 15) -> list[Table]:
    """The report's tables for a rich console."""
    out = []
    for t in text_tables(result, max_clusters).values():
        table = Table(title=t.title, caption=t.note or None)
        for i, col in enumerate(t.columns):
            table.add_column(col, justify="left" if i < t.left else "right")
        for row in t.rows:
            table.add_row(*row)
        out.append(table)
    return out
