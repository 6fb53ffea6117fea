"""Accounts into clusters: capped, summed, thresholded edges, then weighted Leiden (CPM).

Steps: (1) each weak edge type keeps, per account, only its ``weak_degree_cap`` strongest edges,
and an edge survives only if both ends keep it, so one shared NAT address or proxy cannot chain
unrelated accounts; (2) the edge types of a pair are summed and the pair enters the graph when the
sum reaches ``min_edge_weight``; (3) Leiden with the constant Potts model (CPM) partitions the
graph, seeded; (4) communities with fewer than ``min_cluster_size`` accounts get no id.

Cluster ids are derived from content: ``cl-`` and a hash of the cluster's smallest account id, so
the same members give the same id on every run. With a ``previous`` table, a new cluster whose
previously clustered members are mostly (``previous_min_share``) in one previous cluster keeps that
cluster's id; each previous id goes to at most one new cluster, the one with the largest overlap.
"""

from __future__ import annotations

import hashlib

import polars as pl

from distillwatch.clusters.config import GraphConfig

__all__ = ["cluster_accounts", "cluster_edge_summary", "combined_edges"]


def _cluster_id(anchor: str) -> str:
    """``cl-`` and 12 hex digits of a fixed hash of one account id (stable across versions)."""
    return "cl-" + hashlib.blake2b(anchor.encode(), digest_size=6).hexdigest()


def _degree_capped(edges: pl.DataFrame, config: GraphConfig) -> pl.DataFrame:
    """``edges`` with each weak type cut to the edges that are among the ``weak_degree_cap``
    strongest of that type at both their ends (ties broken by the other account's id)."""
    weak = pl.col("type").is_in(list(config.weak_types))
    capped = edges.filter(weak)
    # integer codes in the strings' order (account ids sorted, weak types as listed), so the
    # ranking sorts one number per (type, account) and the other end's id as a number: faster
    ids = pl.concat([capped.get_column("src"), capped.get_column("dst")]).unique().sort()
    account, n = pl.Enum(ids), len(ids)
    kind = pl.col("type").cast(pl.Enum(list(dict.fromkeys(config.weak_types)))).to_physical()
    coded = capped.select(
        kind.cast(pl.Int64).alias("type"),
        pl.col("src").cast(account).to_physical().cast(pl.Int64).alias("src"),
        pl.col("dst").cast(account).to_physical().cast(pl.Int64).alias("dst"),
        "weight",
    )
    ends = pl.concat(
        [
            coded.select(
                "type", pl.col("src").alias("node"), pl.col("dst").alias("other"), "weight"
            ),
            coded.select(
                "type", pl.col("dst").alias("node"), pl.col("src").alias("other"), "weight"
            ),
        ]
    )
    kept = (
        ends.with_columns((pl.col("type") * n + pl.col("node")).alias("group"))
        .sort(["group", "weight", "other"], descending=[False, True, False])
        .with_columns(pl.int_range(pl.len()).over("group").alias("rank"))
        .filter(pl.col("rank") < config.weak_degree_cap)
        .select(
            "type",
            pl.min_horizontal("node", "other").alias("src"),
            pl.max_horizontal("node", "other").alias("dst"),
        )
        .group_by("type", "src", "dst")
        .len()
        .filter(pl.col("len") == 2)
        .drop("len")
    )
    rows = (
        coded.select("type", "src", "dst")
        .with_row_index("row")
        .join(kept, on=["type", "src", "dst"], how="semi")
        .get_column("row")
        .sort()
    )
    return pl.concat([edges.filter(~weak), capped[rows]])


def combined_edges(edges: pl.DataFrame, config: GraphConfig = GraphConfig()) -> pl.DataFrame:
    """``src``, ``dst``, ``weight``, ``types``: the pairs that enter the clustering graph, after
    the weak-type degree caps, with their edge types' weights summed (at least
    ``min_edge_weight``) and the contributing types listed, sorted by ``src``, ``dst``."""
    return (
        _degree_capped(edges, config)
        .group_by("src", "dst")
        .agg(pl.col("weight").sort_by("type").sum(), pl.col("type").sort().alias("types"))
        .filter(pl.col("weight") >= config.min_edge_weight)
        .sort("src", "dst")
    )


def _leiden(n: int, pairs: pl.DataFrame, resolution: float, seed: int) -> list[int]:
    """Community per node ``0..n-1`` of the weighted graph ``pairs`` (``s``, ``d``, ``weight``)."""
    import igraph as ig
    import leidenalg

    graph = ig.Graph(n=n, edges=pairs.select("s", "d").rows())
    partition = leidenalg.find_partition(
        graph,
        leidenalg.CPMVertexPartition,
        weights=pairs.get_column("weight").to_list(),
        resolution_parameter=resolution,
        n_iterations=-1,
        seed=seed,
    )
    return [int(m) for m in partition.membership]


def _assign_ids(
    members: pl.DataFrame, previous: pl.DataFrame | None, config: GraphConfig
) -> dict[int, str]:
    """Cluster id per community of ``members`` (``account_id``, ``community``)."""
    ids: dict[int, str] = {}
    if previous is not None:
        before = previous.select("account_id", pl.col("cluster_id").alias("prev")).drop_nulls()
        joined = members.join(before, on="account_id")
        carried = joined.group_by("community").agg(pl.len().alias("carried"))
        overlaps = (
            joined.group_by("community", "prev")
            .agg(pl.len().alias("overlap"))
            .join(carried, on="community")
            .filter(pl.col("overlap") >= config.previous_min_share * pl.col("carried"))
            .sort(["overlap", "prev", "community"], descending=[True, False, False])
        )
        used: set[str] = set()
        for community, prev in overlaps.select("community", "prev").iter_rows():
            if community not in ids and prev not in used:
                ids[community] = prev
                used.add(prev)
    taken = set(ids.values())
    rest = (
        members.filter(~pl.col("community").is_in(list(ids)))
        .group_by("community")
        .agg(pl.col("account_id").sort())
        .sort(pl.col("account_id").list.first())
    )
    for community, accounts in rest.iter_rows():
        # the smallest member's hash, or the next member's when a kept previous id has it
        candidates = (_cluster_id(a) for a in accounts)
        chosen = next((c for c in candidates if c not in taken), f"cl-{community}")
        ids[community] = chosen
        taken.add(chosen)
    return ids


def cluster_accounts(
    edges: pl.DataFrame,
    account_ids: pl.Series | list[str],
    config: GraphConfig = GraphConfig(),
    seed: int = 0,
    previous: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``account_id``, ``cluster_id`` for every id in ``account_ids`` (sorted by id).

    ``edges`` are :func:`~distillwatch.clusters.account_edges` rows; edges touching accounts not
    in ``account_ids`` are ignored. ``cluster_id`` is null for accounts in communities smaller
    than ``min_cluster_size``. The same edges, ids and seed give the same output. ``previous`` (an
    earlier ``account_id``, ``cluster_id`` table) lets clusters keep their earlier ids.

    >>> edges = pl.DataFrame({"src": ["a", "a", "b"], "dst": ["b", "c", "c"],
    ...     "type": ["payment"] * 3, "weight": [3.0] * 3, "support": [1] * 3, "key": ["card"] * 3})
    >>> out = cluster_accounts(edges, ["a", "b", "c", "d"])
    >>> out.get_column("cluster_id").is_null().to_list()
    [False, False, False, True]
    >>> out.get_column("cluster_id").n_unique()
    2
    """
    nodes = (
        pl.DataFrame({"account_id": pl.Series(account_ids, dtype=pl.String)})
        .unique()
        .sort("account_id")
        .with_row_index("i")
    )
    pairs = (
        combined_edges(edges, config)
        .join(nodes.rename({"account_id": "src", "i": "s"}), on="src")
        .join(nodes.rename({"account_id": "dst", "i": "d"}), on="dst")
        .select("s", "d", "weight")
    )
    membership = _leiden(nodes.height, pairs, config.resolution, seed)
    members = nodes.with_columns(pl.Series("community", membership, dtype=pl.Int64)).filter(
        pl.len().over("community") >= config.min_cluster_size
    )
    ids = _assign_ids(members.select("account_id", "community"), previous, config)
    named = members.select(
        "account_id",
        pl.col("community")
        .replace_strict(ids, return_dtype=pl.String, default=None)
        .alias("cluster_id"),
    )
    return nodes.select("account_id").join(named, on="account_id", how="left").sort("account_id")


def cluster_edge_summary(edges: pl.DataFrame, clusters: pl.DataFrame) -> pl.DataFrame:
    """Per cluster and edge type, the edges inside the cluster: ``cluster_id``, ``n_accounts``
    (cluster size), ``type``, ``n_edges``, ``n_linked`` (members touched by such an edge),
    ``support`` and ``weight`` (sums) and ``example`` (the heaviest edge's key), heaviest types
    first within each cluster. Counts every edge passed in, including those below the graph's
    threshold: the evidence behind "412 accounts linked by shared payment (38 edges)"."""
    named = clusters.select("account_id", "cluster_id").drop_nulls()
    sizes = named.group_by("cluster_id").agg(pl.len().cast(pl.UInt32).alias("n_accounts"))
    inside = (
        edges.join(named.rename({"account_id": "src"}), on="src")
        .join(named.rename({"account_id": "dst", "cluster_id": "dst_cluster"}), on="dst")
        .filter(pl.col("cluster_id") == pl.col("dst_cluster"))
    )
    heaviest = ["weight", "src", "dst"]
    return (
        inside.group_by("cluster_id", "type")
        .agg(
            pl.len().cast(pl.UInt32).alias("n_edges"),
            pl.concat_list("src", "dst").explode().n_unique().cast(pl.UInt32).alias("n_linked"),
            pl.col("support").sum().cast(pl.UInt64),
            pl.col("weight").sort().sum(),
            pl.col("key")
            .sort_by(heaviest, descending=[True, False, False])
            .first()
            .alias("example"),
        )
        .join(sizes, on="cluster_id")
        .select(
            "cluster_id",
            "n_accounts",
            "type",
            "n_edges",
            "n_linked",
            "support",
            "weight",
            "example",
        )
        .sort(["cluster_id", "weight", "type"], descending=[False, True, False])
    )
