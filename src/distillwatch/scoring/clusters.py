"""Cluster findings: the hydra cluster as the unit of decision.

:func:`cluster_features` aggregates a cluster's members (their own scores, pooled intent-signal
and template shares, capability focus, volume) and the links that hold it together (share of
internal edge weight per edge type, density); a detector with the account detector's contract
scores it; :func:`combine_scores` then lifts each member's score towards its cluster's, so a
quiet member of a hot cluster is flagged and its evidence says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from distillwatch.clusters import EDGE_TYPES
from distillwatch.detectors.gbm import GradientBoostedDetector
from distillwatch.scoring.accounts import EVIDENCE_STRUCT, ScanConfig, score_accounts, tiers

CLUSTER_SOURCE = "detector:cluster-gbm@1"
# account feature columns pooled over members, weighted by their calls
POOLED = (
    "shared_template_share",
    "family_share",
    "top_family_share",
    "benchmark_share",
    "single_turn_share",
    "high_max_tokens_share",
    "multi_sample_share",
    "logprobs_share",
    "seed_sweep_share",
    "new_model_24h_share",
    "system_share",
    "tools_share",
)
TASK_SHARES = tuple(
    f"task_{t}_share" for t in ("code", "math", "mcq", "writing", "reasoning", "tool", "chat")
)
# account feature columns averaged over members, unweighted
MEAN = ("gap_cv", "duty_cycle", "hour_entropy", "calls_per_active_day", "distinct_prompt_share")


def _pooled(col: str) -> pl.Expr:
    return ((pl.col(col).fill_null(0.0) * pl.col("n_calls")).sum() / pl.col("n_calls").sum()).alias(
        f"pooled_{col}"
    )


def cluster_features(
    features: pl.DataFrame,
    own: pl.DataFrame,
    clusters: pl.DataFrame,
    edges: pl.DataFrame,
    *,
    strong_rules: tuple[str, ...] = (),
) -> pl.DataFrame:
    """One row per ``cluster_id``: member aggregates and link composition, numeric.

    ``features`` is the scan's account feature table, ``own`` its account scores
    (``account_id``, ``score``), ``clusters`` maps ``account_id`` to ``cluster_id`` (null: in no
    cluster), ``edges`` the account graph (``src``, ``dst``, ``type``, ``weight``);
    ``strong_rules`` the ``rule:<id>`` columns that are evidence on their own.
    """
    members = (
        clusters.filter(pl.col("cluster_id").is_not_null())
        .join(features, on="account_id", how="inner")
        .join(own.select("account_id", pl.col("score").alias("own_score")), on="account_id")
    )
    rules = [c for c in strong_rules if c in members.columns]
    intent = pl.max_horizontal([pl.col(c).fill_null(0.0) for c in rules]) if rules else pl.lit(0.0)
    present = [c for c in (*POOLED, *TASK_SHARES) if c in members.columns]
    agg = (
        members.with_columns(intent.alias("_intent"))
        .group_by("cluster_id")
        .agg(
            pl.len().alias("n_accounts"),
            pl.col("n_calls").sum().alias("n_calls"),
            pl.col("n_calls").sum().log1p().alias("log_calls"),
            (pl.col("n_calls").sum() / pl.len()).alias("calls_per_account"),
            pl.col("own_score").mean().alias("member_score_mean"),
            pl.col("own_score").max().alias("member_score_max"),
            pl.col("own_score").median().alias("member_score_median"),
            (pl.col("own_score") >= 0.5).mean().alias("member_flagged_share"),
            (pl.col("_intent") >= 0.05).mean().alias("member_intent_share"),
            ((pl.col("_intent") * pl.col("n_calls")).sum() / pl.col("n_calls").sum()).alias(
                "pooled_intent_share"
            ),
            *(_pooled(c) for c in present),
            *(pl.col(c).mean().alias(f"mean_{c}") for c in MEAN if c in members.columns),
            (pl.col("org_id").n_unique() / pl.len()).alias("orgs_per_account"),
            pl.col("allowlisted").cast(pl.Float64).mean().alias("allowlisted_share"),
            *(
                [pl.col("account_age_days").median().alias("median_account_age_days")]
                if "account_age_days" in members.columns
                else []
            ),
        )
    )
    tasks = [f"pooled_{c}" for c in TASK_SHARES if c in present]
    if tasks:
        agg = agg.with_columns(pl.max_horizontal(tasks).alias("task_focus"))
    return agg.join(_link_features(clusters, edges), on="cluster_id", how="left").sort("cluster_id")


def _link_features(clusters: pl.DataFrame, edges: pl.DataFrame) -> pl.DataFrame:
    """Per cluster: share of its internal edge weight by edge type, and edge density."""
    cid = clusters.select("account_id", "cluster_id").filter(pl.col("cluster_id").is_not_null())
    inside = (
        edges.join(cid.rename({"account_id": "src", "cluster_id": "c1"}), on="src")
        .join(cid.rename({"account_id": "dst", "cluster_id": "c2"}), on="dst")
        .filter(pl.col("c1") == pl.col("c2"))
        .rename({"c1": "cluster_id"})
    )
    size = cid.group_by("cluster_id").agg(pl.len().alias("k"))
    total = inside.group_by("cluster_id").agg(
        pl.col("weight").sum().alias("_w"),
        pl.struct("src", "dst").n_unique().alias("_pairs"),
    )
    by_type = inside.group_by("cluster_id").agg(
        (pl.col("weight").filter(pl.col("type") == t).sum() / pl.col("weight").sum()).alias(
            f"link_{t}_share"
        )
        for t in EDGE_TYPES
    )
    return (
        size.join(total, on="cluster_id", how="left")
        .join(by_type, on="cluster_id", how="left")
        .with_columns(
            (pl.col("_pairs").fill_null(0) / (pl.col("k") * (pl.col("k") - 1) / 2).clip(1)).alias(
                "link_density"
            ),
            (pl.col("_w").fill_null(0.0) / pl.col("k")).alias("link_weight_per_account"),
        )
        .drop("k", "_w", "_pairs")
        .fill_null(0.0)
    )


def score_clusters(
    cfeats: pl.DataFrame, detector: GradientBoostedDetector, cfg: ScanConfig
) -> pl.DataFrame:
    """``cluster_id``, ``score``, ``tier``, ``reasons``, ``evidence`` per cluster."""
    if cfeats.is_empty():
        return pl.DataFrame(
            schema={
                "cluster_id": pl.String,
                "score": pl.Float64,
                "tier": pl.String,
                "reasons": pl.List(pl.String),
                "evidence": pl.List(EVIDENCE_STRUCT),
            }
        )
    keyed = cfeats.rename({"cluster_id": "account_id"}).with_columns(
        (pl.col("allowlisted_share") >= 0.5).alias("allowlisted")
    )
    return score_accounts(keyed, detector, cfg).rename({"account_id": "cluster_id"})


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    out: np.ndarray = np.log(q / (1 - q))
    return out


def combine_scores(
    accounts: pl.DataFrame,
    clusters: pl.DataFrame,
    cluster_verdicts: pl.DataFrame,
    features: pl.DataFrame,
    cfg: ScanConfig,
) -> pl.DataFrame:
    """Account verdicts with their cluster's score folded in.

    An account in a cluster scored higher than itself takes the cluster's score, and gains an
    evidence item ``cluster_score`` (value: the cluster's score, baseline: its own, weight: the
    log-odds it added) with a reason naming the cluster; others keep their own verdict.
    ``accounts`` has ``account_id``, ``score``, ``reasons``, ``evidence``.
    """
    joined = accounts.join(clusters, on="account_id", how="left").join(
        cluster_verdicts.select("cluster_id", pl.col("score").alias("cluster_score")),
        on="cluster_id",
        how="left",
    )
    own = joined["score"].to_numpy()
    cl = joined["cluster_score"].fill_null(0.0).to_numpy()
    lifted = cl > own
    final = np.where(lifted, cl, own)
    weight = np.where(lifted, _logit(cl) - _logit(own), 0.0)
    size = dict(clusters.group_by("cluster_id").len().drop_nulls("cluster_id").iter_rows())
    reasons: list[list[str]] = []
    evidence: list[list[dict[str, Any]]] = []
    for i, row in enumerate(joined.select("cluster_id", "reasons", "evidence").iter_rows()):
        cid, rs, ev = row
        if lifted[i]:
            item = {
                "signal": "cluster_score",
                "value": float(cl[i]),
                "baseline": float(own[i]),
                "weight": float(weight[i]),
                "source": CLUSTER_SOURCE,
            }
            ev = [item, *ev]
            rs = [
                f"member of cluster {cid} ({size.get(cid, 0):,} accounts) scored "
                f"{cl[i]:.2f}, above its own {own[i]:.2f} (+{weight[i]:.2f} log-odds)",
                *rs,
            ]
        reasons.append(rs)
        evidence.append(ev)
    allow = (
        joined.join(features.select("account_id", "allowlisted"), on="account_id", how="left")[
            "allowlisted"
        ]
        .fill_null(False)
        .to_numpy()
    )
    return joined.select("account_id", "cluster_id").with_columns(
        pl.Series("score", final),
        pl.Series("own_score", own),
        pl.Series("tier", tiers(final, allow, cfg)),
        pl.Series("reasons", reasons, dtype=pl.List(pl.String)),
        pl.Series("evidence", evidence, dtype=pl.List(EVIDENCE_STRUCT)),
    )
