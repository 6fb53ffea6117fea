"""Cluster features and the cluster-to-account lift, on hand-built frames."""

from __future__ import annotations

import polars as pl
import pytest

from distillwatch.scoring import ScanConfig
from distillwatch.scoring.accounts import EVIDENCE_STRUCT
from distillwatch.scoring.clusters import cluster_features, combine_scores


def _features() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": ["a", "b", "c", "d", "e"],
            "org_id": ["o1", "o2", "o3", "o4", "o5"],
            "n_calls": [100, 300, 10, 50, 50],
            "shared_template_share": [1.0, 0.0, 0.5, 0.0, 0.0],
            "task_math_share": [0.5, 0.5, 1.0, 0.0, 0.0],
            "rule:intent/cot-elicitation": [0.2, 0.0, 0.0, 0.0, 0.0],
            "allowlisted": [False, False, False, False, True],
        }
    )


def _clusters() -> pl.DataFrame:
    return pl.DataFrame(
        {"account_id": ["a", "b", "c", "d", "e"], "cluster_id": ["k", "k", "k", None, "m"]}
    )


def _edges() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "src": ["a", "a", "b", "a"],
            "dst": ["b", "c", "c", "d"],
            "type": ["payment", "timing", "timing", "ip"],
            "weight": [3.0, 1.0, 1.0, 5.0],
        }
    )


def test_cluster_features_pool_by_calls_and_count_links_inside() -> None:
    own = pl.DataFrame({"account_id": list("abcde"), "score": [0.9, 0.1, 0.2, 0.0, 0.0]})
    out = cluster_features(
        _features(), own, _clusters(), _edges(), strong_rules=("rule:intent/cot-elicitation",)
    )
    k = out.filter(pl.col("cluster_id") == "k").row(0, named=True)
    assert k["n_accounts"] == 3 and k["n_calls"] == 410
    assert k["pooled_shared_template_share"] == pytest.approx((100 + 5) / 410)
    assert k["member_flagged_share"] == pytest.approx(1 / 3)
    assert k["member_intent_share"] == pytest.approx(1 / 3)
    # the a-d ip edge leaves the cluster and does not count; payment 3 of 5 inside
    assert k["link_payment_share"] == pytest.approx(3 / 5)
    assert k["link_timing_share"] == pytest.approx(2 / 5)
    assert k["link_ip_share"] == 0.0
    assert k["link_density"] == pytest.approx(1.0)
    assert out.filter(pl.col("cluster_id") == "m")["link_density"].item() == 0.0


def _own() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": list("abcde"),
            "score": [0.97, 0.05, 0.3, 0.02, 0.01],
            "reasons": [["own reason"], [], [], [], []],
            "evidence": pl.Series(
                [[{"signal": "x", "value": 1.0, "baseline": 0.0, "weight": 2.0, "source": "s"}]]
                + [[] for _ in range(4)],
                dtype=pl.List(EVIDENCE_STRUCT),
            ),
        }
    )


def test_quiet_member_of_a_hot_cluster_is_lifted_and_says_why() -> None:
    cver = pl.DataFrame({"cluster_id": ["k", "m"], "score": [0.9, 0.99]})
    out = combine_scores(_own(), _clusters(), cver, _features(), ScanConfig())
    rows = {r["account_id"]: r for r in out.iter_rows(named=True)}
    assert rows["a"]["score"] == pytest.approx(0.97)  # above its cluster: keeps its own
    assert rows["a"]["reasons"] == ["own reason"]
    assert rows["b"]["score"] == pytest.approx(0.9) and rows["b"]["tier"] == "throttle"
    assert rows["b"]["own_score"] == pytest.approx(0.05)
    assert "cluster k (3 accounts)" in rows["b"]["reasons"][0]
    lift = rows["b"]["evidence"][0]
    assert lift["signal"] == "cluster_score" and lift["weight"] > 0
    assert rows["d"]["score"] == pytest.approx(0.02) and rows["d"]["cluster_id"] is None
    # an allowlisted account is lifted in score but its tier stays capped
    assert rows["e"]["score"] == pytest.approx(0.99) and rows["e"]["tier"] == "watch"


def _attach_case() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Clusters ``hot`` (flagged: a, b, c) and ``cool`` (allow: g, h, i); loose accounts x, y,
    z, w, v and u, each with a sub-threshold link somewhere."""
    clusters = pl.DataFrame(
        {
            "account_id": list("abcghixyzwvu"),
            "cluster_id": ["hot"] * 3 + ["cool"] * 3 + [None] * 5 + ["cool"],
        }
    )
    cver = pl.DataFrame(
        {
            "cluster_id": ["hot", "cool"],
            "score": [0.99, 0.1],
            "tier": ["block", "allow"],
            "n_accounts": pl.Series([3, 3], dtype=pl.UInt32),
            "n_calls": pl.Series([300, 30], dtype=pl.Int64),
            "members": [["a", "b", "c"], ["g", "h", "i"]],
            "reasons": [["3 accounts linked by payment"], []],
        }
    )
    own = pl.DataFrame(
        {
            "account_id": list("abcghixyzwvu"),
            # x, w, v and u flagged on their own; y and z not
            "score": [0.99, 0.9, 0.95, 0.0, 0.0, 0.0, 0.9, 0.2, 0.95, 0.85, 0.9, 0.9],
        }
    )
    edges = pl.DataFrame(
        {
            # x: 0.3 + 0.3 to two hot members (attached); y: the same links, not flagged;
            # z: 0.2 only (too weak); w: 0.6 to cool and 0.5 to hot (cool is not flagged, so
            # hot); v: links only to cool; u: in cool already, linked to hot
            "src": ["a", "b", "a", "c", "g", "w", "c", "g", "u"],
            "dst": ["x", "x", "y", "y", "z", "h", "w", "v", "z"],
            "type": ["client", "subnet24", "client", "subnet24", "ip", "ip", "template", "ip",
                     "ip"],
            "weight": [0.3, 0.3, 0.3, 0.3, 0.2, 0.6, 0.5, 0.9, 0.1],
        }
    ).vstack(
        pl.DataFrame(
            {"src": ["a"], "dst": ["u"], "type": ["client"], "weight": [0.9]}
        )
    )  # fmt: skip
    return own, clusters, cver, edges


def test_flagged_loose_accounts_join_the_flagged_cluster_they_are_most_linked_to() -> None:
    from distillwatch.scoring.clusters import attach_suspects, with_attached

    own, clusters, cver, edges = _attach_case()
    att = attach_suspects(own, clusters, cver, edges, ScanConfig())
    got = {r["account_id"]: r for r in att.iter_rows(named=True)}
    # x: flagged, 0.6 to hot; w: flagged, only hot counts; y not flagged, z too weak, v only
    # linked to an unflagged cluster, u already in a cluster
    assert set(got) == {"x", "w"}
    assert got["x"]["cluster_id"] == "hot" and got["x"]["n_linked"] == 2
    assert got["x"]["link_weight"] == pytest.approx(0.6)
    assert sorted(got["x"]["link_types"]) == ["client", "subnet24"]
    assert got["w"]["link_types"] == ["template"]
    # the cluster's verdict row lists them and says so
    hot = with_attached(cver, att, _attach_features()).filter(pl.col("cluster_id") == "hot")
    row = hot.row(0, named=True)
    assert row["members"] == ["a", "b", "c", "w", "x"] and row["n_accounts"] == 5
    assert row["n_calls"] == 300 + 7 + 11
    assert row["reasons"][-1].startswith("2 more accounts attached")
    assert row["score"] == 0.99  # the core's verdict stands


def test_attaching_needs_the_account_flagged_and_enough_link_weight() -> None:
    from distillwatch.scoring.clusters import attach_suspects

    own, clusters, cver, edges = _attach_case()
    strict = ScanConfig(attach_min_score=0.92)
    assert attach_suspects(own, clusters, cver, edges, strict).height == 0  # x, w score < 0.92
    heavy = ScanConfig(attach_min_weight=0.55)
    assert attach_suspects(own, clusters, cver, edges, heavy)["account_id"].to_list() == ["x"]
    off = ScanConfig(attach_min_score=1.01)
    assert attach_suspects(own, clusters, cver, edges, off).height == 0
    # no flagged cluster: nothing to attach to
    calm = cver.with_columns(pl.lit("allow").alias("tier"))
    assert attach_suspects(own, clusters, calm, edges, ScanConfig()).height == 0


def _attach_features() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": list("abcghixyzwvu"),
            "n_calls": [100, 100, 100, 10, 10, 10, 11, 5, 5, 7, 5, 5],
            "allowlisted": [False] * 12,
        }
    )


def test_an_attached_account_says_which_links_attached_it() -> None:
    from distillwatch.scoring.clusters import attach_suspects

    own, clusters, cver, edges = _attach_case()
    att = attach_suspects(own, clusters, cver, edges, ScanConfig())
    placed = clusters.update(att.select("account_id", "cluster_id"), on="account_id", how="left")
    scored = own.with_columns(
        pl.lit([], dtype=pl.List(pl.String)).alias("reasons"),
        pl.lit([], dtype=pl.List(EVIDENCE_STRUCT)).alias("evidence"),
    )
    out = combine_scores(scored, placed, cver, _attach_features(), ScanConfig(), att)
    x = out.filter(pl.col("account_id") == "x").row(0, named=True)
    assert x["cluster_id"] == "hot" and x["score"] == pytest.approx(0.99)
    # lifted to its cluster's score: first the lift, then what attached it
    assert x["reasons"][0].startswith("member of cluster hot (5 accounts)")
    assert x["reasons"][1].startswith("attached to its cluster on its own evidence")
    assert "linked to 2 members by " in x["reasons"][1]
    y = out.filter(pl.col("account_id") == "y").row(0, named=True)
    assert y["cluster_id"] is None and y["score"] == pytest.approx(0.2)
