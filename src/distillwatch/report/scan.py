"""The ``scan`` report: who is riskiest, why, what they sent and when, as one HTML page."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.figure import Figure

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


def render_scan_report(
    verdicts: pl.DataFrame, features: pl.DataFrame, calls: pl.LazyFrame, *, top: int = 20,
    n_calls: int | None = None,
) -> str:  # fmt: skip
    """The report page (a string) for one scan; ``calls`` is the scan's call frame."""
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
        f"<h2>Top {len(ids)} accounts: evidence and example prompts</h2>",
    ]
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
