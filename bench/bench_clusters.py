"""Account edges and hydra clusters on simulated traffic: wall time, peak RSS, cluster quality.

The simulation (and the slim per-call frame with template families on the last user message) is
made once per size and seed and cached as Parquet; edges and clustering then run in a fresh process
so that its peak RSS is theirs (input frames included). Quality compares clusters with the
simulator's labels: a cluster's label is its members' majority campaign (or "legit").

- precision: share of clusters (``min_cluster_size`` or more accounts) whose members all carry one
  label (``pure``), and at least 90% (``pure90``);
- recall: share of campaign accounts in a cluster whose majority is their own campaign;
- ARI on campaign accounts (truth: campaign; prediction: cluster, a singleton when none) and on all
  accounts (legitimate truth: their org, else themselves);
- legitimate accounts and orgs inside a campaign-majority cluster (the harm a merge would do).

.venv/bin/python bench/bench_clusters.py --accounts 1500 --days 2 --seed 6
    [--corpora ../shared/data] [--cache /tmp/distillwatch-bench-clusters]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import polars as pl


def make(accounts: int, days: int, seed: int, out: Path, corpora: Path | None) -> None:
    """Simulate, then keep the slim call frame, the account table and the labels."""
    from distillwatch.features.templates import template_families
    from distillwatch.features.text import last_user_message
    from distillwatch.sim import Simulator, load_corpora, load_scenario, shipped_fit

    res = Simulator(load_scenario(), load_corpora(corpora), shipped_fit(), seed=seed).run(
        accounts, days
    )
    raw = pl.from_arrow(res.calls)
    assert isinstance(raw, pl.DataFrame)
    client = pl.col("client")
    calls = raw.select(
        "account_id",
        "org_id",
        "ts",
        client.struct.field("ip"),
        client.struct.field("asn"),
        client.struct.field("user_agent"),
        client.struct.field("tls_fingerprint"),
        last_user_message().alias("prompt"),
    )
    del raw
    families = template_families(calls.select("account_id", "prompt"))
    calls = calls.with_columns(families.select("family_id", "family_kind")).drop("prompt")
    out.mkdir(parents=True, exist_ok=True)
    calls.write_parquet(out / "slim.parquet")
    for name, table in (("accounts", res.accounts), ("labels", res.labels)):
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        frame.write_parquet(out / f"{name}.parquet")


def timed(folder: Path, seed: int) -> None:
    """Worker: edges and clusters on one cached simulation; timings, then quality."""
    from distillwatch.clusters import (
        GraphConfig,
        account_edges,
        cluster_accounts,
        cluster_edge_summary,
        combined_edges,
    )

    calls = pl.read_parquet(folder / "slim.parquet")
    accounts = pl.read_parquet(folder / "accounts.parquet")
    labels = pl.read_parquet(folder / "labels.parquet")
    rss_in = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    config = GraphConfig()
    t0 = time.perf_counter()
    edges = account_edges(calls, accounts, config)
    t1 = time.perf_counter()
    ids = calls.get_column("account_id").unique()
    clusters = cluster_accounts(edges, ids, config, seed=seed)
    t2 = time.perf_counter()
    summary = cluster_edge_summary(edges, clusters)
    t3 = time.perf_counter()
    graph = combined_edges(edges, config)
    print(
        json.dumps(
            {
                "calls": calls.height,
                "accounts": ids.len(),
                "edges": edges.height,
                "graph_edges": graph.height,
                "edges_s": round(t1 - t0, 2),
                "cluster_s": round(t2 - t1, 2),
                "summary_s": round(t3 - t2, 2),
                "rss_input_mb": round(rss_in),
                "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        ),
        flush=True,
    )
    report(edges, clusters, summary, labels, config.min_cluster_size)


def _ari(truth: pl.Series, pred: pl.Series) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(truth.to_list(), pred.to_list()))


def truth_frame(labels: pl.DataFrame) -> pl.DataFrame:
    """Per account: persona, org, campaign and ``label`` (the campaign, else "legit")."""
    return labels.select(
        "account_id",
        "persona",
        "org_id",
        "campaign_id",
        pl.col("campaign_id").fill_null("legit").alias("label"),
    )


def score(
    clusters: pl.DataFrame, truth: pl.DataFrame
) -> tuple[dict[str, float], pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Precision, recall, ARI and merges of ``clusters`` against ``truth``; with the campaign
    accounts, the per-cluster table, the merged legitimate accounts and the clustered accounts."""
    acc = clusters.join(truth, on="account_id")
    named = acc.filter(pl.col("cluster_id").is_not_null())
    per_cluster = (
        named.group_by("cluster_id", "label")
        .len()
        .sort(["len", "label"], descending=[True, False])
        .group_by("cluster_id")
        .agg(
            pl.col("label").first().alias("majority"),
            pl.col("len").sum().alias("size"),
            (pl.col("len").first() / pl.col("len").sum()).alias("purity"),
        )
    )
    n_clusters = per_cluster.height
    pure = per_cluster.filter(pl.col("purity") == 1.0).height
    pure90 = per_cluster.filter(pl.col("purity") >= 0.9).height
    campaign_clusters = per_cluster.filter(pl.col("majority") != "legit")
    placed = acc.join(per_cluster.select("cluster_id", "majority"), on="cluster_id", how="left")
    camp = placed.filter(pl.col("campaign_id").is_not_null())
    recalled = camp.filter(pl.col("majority") == pl.col("campaign_id")).height
    pred = pl.coalesce("cluster_id", "account_id")
    ari_campaign = _ari(camp.get_column("campaign_id"), camp.select(pred).to_series())
    truth_all = pl.coalesce("campaign_id", "org_id", "account_id")
    ari_all = _ari(acc.select(truth_all).to_series(), acc.select(pred).to_series())
    merged = placed.filter(
        pl.col("campaign_id").is_null()
        & pl.col("majority").is_not_null()
        & (pl.col("majority") != "legit")
    )
    quality = {
        "clusters": n_clusters,
        "campaign_clusters": campaign_clusters.height,
        "precision_pure": round(pure / max(n_clusters, 1), 3),
        "precision_pure90": round(pure90 / max(n_clusters, 1), 3),
        "recall": round(recalled / max(camp.height, 1), 3),
        "ari_campaign_accounts": round(ari_campaign, 3),
        "ari_all_accounts": round(ari_all, 3),
        "legit_in_campaign_clusters": merged.height,
        "legit_orgs_in_campaign_clusters": merged.get_column("org_id").drop_nulls().n_unique(),
        "campaign_accounts": camp.height,
        "clustered_legit_accounts": named.filter(pl.col("campaign_id").is_null()).height,
    }
    return quality, camp, per_cluster, merged, named


def report(
    edges: pl.DataFrame,
    clusters: pl.DataFrame,
    summary: pl.DataFrame,
    labels: pl.DataFrame,
    min_size: int,
) -> None:
    """Quality of ``clusters`` against the simulator's ``labels``."""
    pl.Config.set_tbl_rows(60)
    pl.Config.set_tbl_width_chars(180)
    pl.Config.set_fmt_str_lengths(70)
    truth = truth_frame(labels)

    # edges by type: how many join two accounts of one campaign, two legitimate, or cross
    ends = edges.join(
        truth.select(pl.col("account_id").alias("src"), pl.col("campaign_id").alias("c1")), on="src"
    ).join(
        truth.select(pl.col("account_id").alias("dst"), pl.col("campaign_id").alias("c2")), on="dst"
    )
    kind = (
        pl.when(pl.col("c1").is_null() & pl.col("c2").is_null())
        .then(pl.lit("legit-legit"))
        .when(pl.col("c1") == pl.col("c2"))
        .then(pl.lit("same campaign"))
        .when(pl.col("c1").is_null() | pl.col("c2").is_null())
        .then(pl.lit("legit-campaign"))
        .otherwise(pl.lit("two campaigns"))
    )
    print("\nedges by type and what they join")
    print(
        ends.with_columns(kind.alias("joins"))
        .pivot("joins", index="type", values="weight", aggregate_function="len")
        .fill_null(0)
        .sort("type")
    )

    quality, camp, per_cluster, merged, named = score(clusters, truth)
    campaign_clusters = per_cluster.filter(pl.col("majority") != "legit")
    print("\nquality: " + json.dumps(quality))
    print(f"\nper campaign (clusters of >= {min_size} accounts)")
    print(
        camp.group_by("campaign_id")
        .agg(
            pl.len().alias("accounts"),
            (pl.col("majority") == pl.col("campaign_id"))
            .fill_null(False)
            .mean()
            .round(3)
            .alias("recall"),
            pl.col("cluster_id").drop_nulls().n_unique().alias("clusters"),
            pl.col("cluster_id").is_null().sum().alias("unclustered"),
        )
        .sort("campaign_id")
    )
    print("\nimpure clusters (purity < 1)")
    print(per_cluster.filter(pl.col("purity") < 1.0).sort("size", descending=True).head(20))
    if merged.height:
        print("\nlegitimate accounts inside campaign clusters")
        print(merged.select("account_id", "persona", "org_id", "cluster_id", "majority"))
    print("\nlegitimate clusters by persona")
    print(
        named.filter(pl.col("campaign_id").is_null())
        .group_by("persona")
        .agg(pl.len().alias("accounts"), pl.col("cluster_id").n_unique().alias("clusters"))
        .sort("accounts", descending=True)
    )
    biggest = campaign_clusters.sort("size", descending=True).head(3).get_column("cluster_id")
    print("\nevidence of the largest campaign clusters")
    print(
        summary.filter(pl.col("cluster_id").is_in(biggest.implode())).select(
            "cluster_id", "n_accounts", "type", "n_edges", "n_linked", "weight", "example"
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--accounts", type=int, default=1500)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--corpora", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/distillwatch-bench-clusters"))
    ap.add_argument("--_make", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_time", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._make:
        make(args.accounts, args.days, args.seed, args._make, args.corpora)
        return
    if args._time:
        timed(args._time, args.seed)
        return

    from distillwatch.sim import find_corpus_dir

    corpora = find_corpus_dir(args.corpora)
    folder = args.cache / f"sim_{args.accounts}x{args.days}d_seed{args.seed}"
    sizes = ["--accounts", str(args.accounts), "--days", str(args.days), "--seed", str(args.seed)]
    me = [sys.executable, __file__, *sizes]
    print(f"corpora: {corpora or 'bundled sample'}; cache: {folder}", flush=True)
    if not (folder / "labels.parquet").is_file():
        extra = ["--corpora", str(corpora)] if corpora else []
        t0 = time.perf_counter()
        subprocess.run([*me, "--_make", str(folder), *extra], check=True)
        print(f"simulated and framed in {time.perf_counter() - t0:.1f} s", flush=True)
    subprocess.run([*me, "--_time", str(folder)], check=True)


if __name__ == "__main__":
    main()
