"""The ``scan`` report: who is riskiest, why, what they sent and when, as one HTML page."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from distillwatch.core.values import TIERS
from distillwatch.report.html import document, esc, figure, svg, table

TIER_COLORS = {"allow": "#9ecae1", "watch": "#fdd0a2", "throttle": "#fd8d3c", "block": "#d62728"}
TASKS = ("code", "math", "mcq", "reasoning", "writing", "tool", "chat")
TASK_COLORS = ("#4C78A8", "#F58518", "#E45756", "#72B7B2", "#54A24B", "#B279A2", "#BAB0AC")
PROMPT_CHARS = 240


def _score_hist(verdicts: pl.DataFrame) -> str | None:
    if verdicts.is_empty():
        return None
    fig = Figure(figsize=(7.5, 2.8))
    ax = fig.add_subplot()
    bins = np.linspace(0, 1, 41).tolist()
    for tier in TIERS:
        s = verdicts.filter(pl.col("tier") == tier)["score"].to_numpy()
        if len(s):
            ax.hist(s, bins=bins, color=TIER_COLORS[tier], label=f"{tier} ({len(s):,})", alpha=0.9)
    ax.set_yscale("log")
    ax.set_xlabel("calibrated score")
    ax.set_ylabel("accounts")
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return svg(fig, "hist")


def _timelines(calls: pl.LazyFrame, ids: list[str]) -> str | None:
    if not ids:
        return None
    per_hour = (
        calls.filter(pl.col("account_id").is_in(ids))
        .group_by("account_id", pl.col("ts").dt.truncate("1h").alias("hour"), "model")
        .len()
        .collect()
    )
    if per_hour.is_empty():
        return None
    models = sorted(per_hour["model"].unique().to_list())
    colors = dict(zip(models, TASK_COLORS, strict=False))
    fig = Figure(figsize=(7.5, 1.1 * len(ids) + 0.6))
    axes = fig.subplots(len(ids), 1, sharex=True, squeeze=False)[:, 0]
    for ax, acct in zip(axes, ids, strict=True):
        sub = per_hour.filter(pl.col("account_id") == acct)
        for m in models:
            mm = sub.filter(pl.col("model") == m).sort("hour")
            if mm.height:
                ax.bar(
                    mm["hour"].to_list(),
                    mm["len"].to_list(),
                    width=1 / 24,
                    color=colors[m],
                    label=m,
                )
        ax.set_ylabel(acct[-6:], rotation=0, ha="right", fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(labelsize=7)
    axes[0].legend(
        frameon=False, fontsize=7, ncols=len(models), loc="lower left", bbox_to_anchor=(0, 1)
    )
    axes[-1].set_xlabel("calls per hour (UTC), by model")
    fig.autofmt_xdate()
    return svg(fig, "timeline")


def _task_mix(features: pl.DataFrame, ids: list[str]) -> str | None:
    cols = [f"task_{t}_share" for t in TASKS if f"task_{t}_share" in features.columns]
    if not ids or not cols:
        return None
    pop = features.select([pl.col(c).mean() for c in cols]).row(0)
    top = features.filter(pl.col("account_id").is_in(ids))
    rows = [("population", pop)] + [
        (r["account_id"][-6:], tuple(r[c] for c in cols)) for r in top.iter_rows(named=True)
    ]
    fig = Figure(figsize=(7.5, 0.28 * len(rows) + 1.0))
    ax = fig.add_subplot()
    left = np.zeros(len(rows))
    for k, c in enumerate(cols):
        vals = np.array([r[1][k] or 0.0 for r in rows])
        ax.barh([r[0] for r in rows], vals, left=left, color=TASK_COLORS[k], label=c[5:-6])
        left += vals
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of calls by task type")
    ax.legend(frameon=False, fontsize=7, ncols=len(cols), loc="lower left", bbox_to_anchor=(0, 1))
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=7)
    return svg(fig, "taskmix")


def _examples(calls: pl.LazyFrame, ids: list[str], k: int = 3) -> dict[str, list[str]]:
    ex = (
        calls.filter(pl.col("account_id").is_in(ids))
        .select("account_id", "ts", "prompt")
        .sort("account_id", "ts")
        .group_by("account_id", maintain_order=True)
        .agg(pl.col("prompt").unique(maintain_order=True).head(k))
        .collect()
    )
    return {r["account_id"]: [p or "" for p in r["prompt"]] for r in ex.iter_rows(named=True)}


def _evidence_html(evidence: list[dict[str, object]]) -> str:
    rows = [
        (
            e["signal"],
            f"{e['value']:.3g}",
            f"{e['baseline']:.3g}",
            f"{e['weight']:+.2f}",
            e["source"],
        )
        for e in evidence
    ]
    return table(("signal", "value", "median", "log-odds", "source"), rows, left=1)


EDGE_COLORS = {
    "payment": "#d62728",
    "org": "#7f7f7f",
    "ip": "#1f77b4",
    "subnet24": "#aec7e8",
    "asn": "#c7c7c7",
    "client": "#9467bd",
    "template": "#ff7f0e",
    "timing": "#2ca02c",
    "signup_burst": "#8c564b",
    "handover": "#e377c2",
}
MAX_DRAWN = 60  # members drawn per cluster (highest scores first)


def _cluster_graphs(
    clusters: pl.DataFrame, edges: pl.DataFrame, verdicts: pl.DataFrame, k: int = 3
) -> str | None:
    """The top ``k`` clusters as graphs: nodes coloured by account score, edges by type."""
    import igraph as ig  # the clustering dependency; only the report draws with it
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection

    top = clusters.head(k)
    if top.is_empty():
        return None
    score = dict(verdicts.select("account_id", "score").iter_rows())
    fig = Figure(figsize=(3.3 * top.height, 3.6))
    axes = fig.subplots(1, top.height, squeeze=False)[0]
    cmap = colormaps["viridis"]
    seen_types: set[str] = set()
    for ax, row in zip(axes, top.iter_rows(named=True), strict=True):
        members = sorted(row["members"], key=lambda a: (-score.get(a, 0.0), a))[:MAX_DRAWN]
        index = {a: i for i, a in enumerate(members)}
        inside = edges.filter(pl.col("src").is_in(members) & pl.col("dst").is_in(members))
        pairs = [(index[a], index[b]) for a, b in inside.select("src", "dst").iter_rows()]
        g = ig.Graph(n=len(members), edges=sorted(set(pairs)))
        xy = np.array(g.layout_fruchterman_reingold(seed=_circle(len(members))).coords)
        segments, colors = [], []
        for a, b, kind in inside.select("src", "dst", "type").iter_rows():
            segments.append([xy[index[a]], xy[index[b]]])
            colors.append(EDGE_COLORS.get(kind, "#bbbbbb"))
            seen_types.add(kind)
        ax.add_collection(LineCollection(segments, colors=colors, linewidths=0.6, alpha=0.5))
        ax.scatter(
            xy[:, 0], xy[:, 1], s=26, c=[score.get(a, 0.0) for a in members], cmap=cmap,
            vmin=0, vmax=1, edgecolors="white", linewidths=0.4, zorder=3,
        )  # fmt: skip
        shown = (
            f"{len(members)} of {row['n_accounts']:,}"
            if row["n_accounts"] > len(members)
            else f"{row['n_accounts']:,}"
        )
        ax.set_title(
            f"{row['cluster_id']} · score {row['score']:.2f}\n{shown} accounts", fontsize=8
        )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
    handles = [
        Line2D([0], [0], color=EDGE_COLORS[t], lw=2, label=t)
        for t in EDGE_COLORS
        if t in seen_types
    ]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncols=min(len(handles), 6), frameon=False,
                   fontsize=7)  # fmt: skip
    fig.subplots_adjust(bottom=0.16, top=0.85, wspace=0.05)
    return svg(fig, "clusters")


def _circle(n: int) -> list[tuple[float, float]]:
    """Deterministic starting positions for the layout (a circle)."""
    angles = np.linspace(0, 2 * np.pi, max(n, 1), endpoint=False)
    return [(float(np.cos(a)), float(np.sin(a))) for a in angles[:n]]


def _cluster_section(
    clusters: pl.DataFrame, edges: pl.DataFrame, verdicts: pl.DataFrame, top: int
) -> list[str]:
    if clusters.is_empty():
        return []
    flagged = clusters.filter(pl.col("tier") != "allow")
    rows = [
        (
            r["cluster_id"],
            r["tier"],
            ", ".join(r["edge_types"][:4]),
            (r["reasons"] or [""])[0],
            f"{r['score']:.3f}",
            f"{r['n_accounts']:,}",
            f"{r['n_calls']:,}",
        )
        for r in clusters.head(top).iter_rows(named=True)
    ]
    body = [
        "<h2>Clusters</h2>",
        f'<p class="sub">{clusters.height:,} clusters of linked accounts, {flagged.height:,} '
        "above <i>allow</i>. A cluster's score is the calibrated probability that it is a "
        "distillation campaign; each member's score is at least its cluster's.</p>",
        figure(_cluster_graphs(clusters, edges, verdicts), "no clusters"),
        table(
            ("cluster", "tier", "linked by", "first reason", "score", "accounts", "calls"),
            rows,
            left=4,
        ),
    ]
    for r in clusters.head(min(top, 5)).iter_rows(named=True):
        reasons = "".join(f"<li>{esc(x)}</li>" for x in r["reasons"])
        body.append(
            f"<h3>{esc(r['cluster_id'])} · score {r['score']:.3f} · {esc(r['tier'])} · "
            f"{r['n_accounts']:,} accounts</h3><ul>{reasons}</ul>{_evidence_html(r['evidence'])}"
        )
    return body


def render_scan_report(
    verdicts: pl.DataFrame, features: pl.DataFrame, calls: pl.LazyFrame, *, top: int = 20,
    n_calls: int | None = None, clusters: pl.DataFrame | None = None,
    edges: pl.DataFrame | None = None,
) -> str:  # fmt: skip
    """The report page (a string) for one scan; ``calls`` is the scan's call frame,
    ``clusters`` and ``edges`` the scan's cluster verdicts and account graph (optional)."""
    ids = verdicts.head(top)["account_id"].to_list()
    tiers = dict(verdicts.group_by("tier").len().iter_rows())
    cards = [("accounts", f"{verdicts.height:,}")]
    if n_calls is not None:
        cards.append(("calls", f"{n_calls:,}"))
    cards += [(t, f"{tiers.get(t, 0):,}") for t in ("block", "throttle", "watch")]
    body = [
        '<p class="sub">Accounts ranked by calibrated probability of distillation. Each reason is '
        "rendered from an evidence item: the signal, its value, the population median and its "
        "contribution in log-odds.</p>",
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{esc(v)}</b><span>{esc(k)}</span></div>' for k, v in cards)
        + "</div>",
        "<h2>Score distribution</h2>",
        figure(_score_hist(verdicts), "no accounts"),
        f"<h2>Top {len(ids)} accounts: activity over time</h2>",
        figure(_timelines(calls, ids[:8]), "no calls"),
        "<h2>Capability mix: top accounts against the population</h2>",
        figure(_task_mix(features, ids[:15]), "no task features"),
    ]
    if clusters is not None and edges is not None:
        body += _cluster_section(clusters, edges, verdicts, top)
    body.append(f"<h2>Top {len(ids)} accounts: evidence and example prompts</h2>")
    examples = _examples(calls, ids)
    for row in verdicts.head(top).iter_rows(named=True):
        prompts = "".join(
            f"<pre>{esc(p[:PROMPT_CHARS] + ('…' if len(p) > PROMPT_CHARS else ''))}</pre>"
            for p in examples.get(row["account_id"], [])
        )
        reasons = (
            "".join(f"<li>{esc(r)}</li>" for r in row["reasons"]) or "<li>(no raising signal)</li>"
        )
        body.append(
            f"<h3>{esc(row['account_id'])} · score {row['score']:.3f} · {esc(row['tier'])} · "
            f"{row['n_calls']:,} calls{' · org ' + esc(row['org_id']) if row['org_id'] else ''}</h3>"
            f"<ul>{reasons}</ul>{_evidence_html(row['evidence'])}{prompts}"
        )
    return document("distillwatch scan", body, "scan")
