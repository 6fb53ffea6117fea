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


ATTACH_SCHEMA = pl.Schema(
    {
        "account_id": pl.String(),
        "cluster_id": pl.String(),
        "link_weight": pl.Float64(),
        "n_linked": pl.UInt32(),
        "link_types": pl.List(pl.String()),
    }
)


def attach_suspects(
    own: pl.DataFrame,
    clusters: pl.DataFrame,
    cluster_verdicts: pl.DataFrame,
    edges: pl.DataFrame,
    cfg: ScanConfig,
) -> pl.DataFrame:
    """Accounts flagged on their own evidence that join the flagged cluster they are most
    linked to: ``account_id``, ``cluster_id``, ``link_weight``, ``n_linked``, ``link_types``.

    A pair enters the clustering graph only when its edges sum to ``min_edge_weight``, which
    a legitimate account must clear before it can be pulled into anyone's cluster. A campaign's
    quiet members clear it rarely: a few calls a day share an address now and then, a
    template, a client, and nothing in waves. An account whose *own* score is already at least
    ``cfg.attach_min_score`` is not what the threshold protects: the question for it is only
    *which* campaign, and weaker links answer that. Such an account, in no flagged cluster,
    joins the flagged cluster whose members it shares the most edge weight with (every edge
    type, below the threshold too), when that weight is at least ``cfg.attach_min_weight``;
    ties go to the smaller cluster id. Accounts in an unflagged cluster stay there (their own
    cluster explains them better), and no account is attached on the cluster's score alone, so
    a legitimate account joins a campaign's cluster only when it is a false positive on its own.

    ``own`` has ``account_id``, ``score`` (the account's own evidence); ``clusters``
    ``account_id``, ``cluster_id``; ``cluster_verdicts`` ``cluster_id``, ``tier``.
    """
    flagged = cluster_verdicts.filter(pl.col("tier") != "allow").select("cluster_id")
    if flagged.height == 0 or edges.height == 0 or cfg.attach_min_score > 1:
        return pl.DataFrame(schema=ATTACH_SCHEMA)
    members = clusters.join(flagged, on="cluster_id", how="semi").select("account_id", "cluster_id")
    candidates = (
        own.filter(pl.col("score") >= cfg.attach_min_score)
        .select("account_id")
        .join(clusters.filter(pl.col("cluster_id").is_not_null()), on="account_id", how="anti")
    )
    if candidates.height == 0:
        return pl.DataFrame(schema=ATTACH_SCHEMA)
    ends = pl.concat(
        [
            edges.select(pl.col("src").alias("account_id"), pl.col("dst").alias("other"),
                         "type", "weight"),
            edges.select(pl.col("dst").alias("account_id"), pl.col("src").alias("other"),
                         "type", "weight"),
        ]
    )  # fmt: skip
    linked = ends.join(candidates, on="account_id", how="semi").join(
        members.rename({"account_id": "other"}), on="other"
    )
    if linked.height == 0:
        return pl.DataFrame(schema=ATTACH_SCHEMA)
    by_type = linked.group_by("account_id", "cluster_id", "type").agg(pl.col("weight").sum())
    per_cluster = (
        by_type.group_by("account_id", "cluster_id")
        .agg(
            pl.col("weight").sum().alias("link_weight"),
            pl.col("type")
            .sort_by(["weight", "type"], descending=[True, False])
            .alias("link_types"),
        )
        .join(
            linked.group_by("account_id", "cluster_id").agg(
                pl.col("other").n_unique().cast(pl.UInt32).alias("n_linked")
            ),
            on=["account_id", "cluster_id"],
        )
    )
    return (
        per_cluster.sort(
            ["account_id", "link_weight", "cluster_id"], descending=[False, True, False]
        )
        .group_by("account_id", maintain_order=True)
        .first()
        .filter(pl.col("link_weight") >= cfg.attach_min_weight)
        .select(list(ATTACH_SCHEMA))
        .cast(ATTACH_SCHEMA)
    )


def with_attached(
    cluster_verdicts: pl.DataFrame, attached: pl.DataFrame, features: pl.DataFrame
) -> pl.DataFrame:
    """Cluster verdicts with the accounts of :func:`attach_suspects` added to their clusters'
    ``members``, ``n_accounts`` and ``n_calls``, and a reason saying how many were attached and
    by which links. Scores and tiers are the core's: attached accounts are flagged already."""
    if attached.height == 0:
        return cluster_verdicts
    calls = features.select("account_id", "n_calls")
    added = (
        attached.explode("link_types")
        .group_by("cluster_id")
        .agg(
            pl.col("account_id").unique().sort().alias("_added"),
            pl.col("link_types").value_counts(sort=True).alias("_types"),
        )
    )
    extra = (
        attached.join(calls, on="account_id", how="left")
        .group_by("cluster_id")
        .agg(pl.col("n_calls").sum().alias("_calls"))
    )
    added = added.join(extra, on="cluster_id").with_columns(
        pl.col("_types")
        .list.eval(pl.element().struct.field("link_types"))
        .list.head(4)
        .list.join(", ")
        .alias("_types")
    )
    out = cluster_verdicts.join(added, on="cluster_id", how="left")
    has = pl.col("_added").is_not_null()
    return out.with_columns(
        pl.when(has)
        .then(pl.concat_list("members", "_added").list.sort())
        .otherwise(pl.col("members"))
        .alias("members"),
        pl.when(has)
        .then(pl.col("n_accounts") + pl.col("_added").list.len())
        .otherwise(pl.col("n_accounts"))
        .cast(pl.UInt32)
        .alias("n_accounts"),
        pl.when(has)
        .then(pl.col("n_calls") + pl.col("_calls"))
        .otherwise(pl.col("n_calls"))
        .cast(pl.Int64)
        .alias("n_calls"),
        pl.when(has)
        .then(
            pl.concat_list(
                "reasons",
                pl.format(
                    "{} more accounts attached: flagged on their own evidence and linked to "
                    "members by {}",
                    pl.col("_added").list.len(),
                    pl.col("_types"),
                ),
            )
        )
        .otherwise(pl.col("reasons"))
        .alias("reasons"),
    ).select(cluster_verdicts.columns)


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
    attached: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Account verdicts with their cluster's score folded in.

    An account in a cluster scored higher than itself takes the cluster's score, and gains an
    evidence item ``cluster_score`` (value: the cluster's score, baseline: its own, weight: the
    log-odds it added) with a reason naming the cluster; others keep their own verdict.
    ``accounts`` has ``account_id``, ``score``, ``reasons``, ``evidence``; ``clusters`` maps
    accounts to clusters, those of ``attached`` (:func:`attach_suspects`) included, and each of
    those gets a reason naming the links that attached it.
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
    how: dict[str, str] = {}
    if attached is not None:
        for aid, w, n, types in attached.select(
            "account_id", "link_weight", "n_linked", "link_types"
        ).iter_rows():
            how[aid] = (
                f"attached to its cluster on its own evidence: linked to {n} member"
                f"{'' if n == 1 else 's'} by {', '.join(types)} (weight {w:.2f}, below the "
                "graph's threshold)"
            )
    reasons: list[list[str]] = []
    evidence: list[list[dict[str, Any]]] = []
    for i, row in enumerate(
        joined.select("account_id", "cluster_id", "reasons", "evidence").iter_rows()
    ):
        aid, cid, rs, ev = row
        if aid in how:
            rs = [how[aid], *rs]
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
