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
