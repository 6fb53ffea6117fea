"""Clustering: the NAT trap, degree caps, determinism, stable ids, evidence summary, public API."""

from __future__ import annotations

import doctest
import importlib
from dataclasses import FrozenInstanceError
from typing import Any

import polars as pl
import pytest
from cluster_frames import nat_trap

import distillwatch.clusters
from distillwatch.clusters import (
    EDGE_SCHEMA,
    GraphConfig,
    account_edges,
    cluster_accounts,
    cluster_edge_summary,
    combined_edges,
)


def edges_of(rows: list[tuple[str, str, str, float]]) -> pl.DataFrame:
    """An edge frame from (src, dst, type, weight) rows (src < dst)."""
    return pl.DataFrame(
        [
            {"src": s, "dst": d, "type": t, "weight": w, "support": 1, "key": f"{t} {s}-{d}"}
            for s, d, t, w in rows
        ],
        schema=EDGE_SCHEMA,
    )


def clique(members: list[str], kind: str = "payment", weight: float = 3.0) -> list[Any]:
    return [(a, b, kind, weight) for i, a in enumerate(members) for b in members[i + 1 :]]


def ids_of(out: pl.DataFrame) -> dict[str, str | None]:
    return dict(out.select("account_id", "cluster_id").rows())


def test_public_api_is_pinned():
    assert sorted(distillwatch.clusters.__all__) == [
        "EDGE_SCHEMA",
        "EDGE_TYPES",
        "GraphConfig",
        "account_edges",
        "cluster_accounts",
        "cluster_edge_summary",
        "combined_edges",
    ]
    with pytest.raises(FrozenInstanceError):
        GraphConfig().resolution = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad",
    [
        {"weak_types": ("nat",)},
        {"corroborated_types": ("nat",)},
        {"resolution": 0.0},
        {"ip_weight": -1.0},
        {"max_key_accounts": 0},
    ],
)
def test_config_rejects_nonsense(bad: dict[str, Any]):
    with pytest.raises(ValueError):
        GraphConfig(**bad)
    assert GraphConfig(asn_weight=0.0).asn_weight == 0.0  # a zero weight turns a type off


@pytest.mark.parametrize("module", ["edges", "partition"])
def test_doctests(module: str):
    failures, tried = doctest.testmod(importlib.import_module(f"distillwatch.clusters.{module}"))
    assert tried > 0 and failures == 0


@pytest.fixture(scope="module", params=[None, "org-campus"], ids=["strangers", "campus-org"])
def trap(request: pytest.FixtureRequest) -> tuple[pl.DataFrame, pl.DataFrame, list[str], list[str]]:
    calls, accounts, campaign, nat = nat_trap(campus_org=request.param)
    edges = account_edges(calls, accounts)
    clusters = cluster_accounts(edges, calls.get_column("account_id").unique())
    return edges, clusters, campaign, nat


def test_nat_trap_campaign_is_one_cluster(trap):
    _, clusters, campaign, _ = trap
    ids = ids_of(clusters)
    found = {ids[a] for a in campaign}
    assert len(found) == 1 and None not in found


def test_nat_trap_campus_accounts_stay_out_of_the_campaign(trap):
    _, clusters, campaign, nat = trap
    ids = ids_of(clusters)
    camp_id = ids[campaign[0]]
    assert not [a for a in nat if ids[a] == camp_id]
    members = clusters.filter(pl.col("cluster_id") == camp_id).get_column("account_id")
    assert sorted(members) == sorted(campaign)


def test_nat_trap_shared_address_and_browser_are_no_edges(trap):
    edges, clusters, _, nat = trap
    nat_set = set(nat)
    among = edges.filter(pl.col("src").is_in(nat_set) & pl.col("dst").is_in(nat_set))
    assert among.filter(pl.col("type").is_in(["ip", "client", "subnet24"])).height == 0
    if among.filter(pl.col("type") == "org").height == 0:  # strangers: nobody is clustered
        assert clusters.filter(pl.col("account_id").is_in(nat_set)).get_column(
            "cluster_id"
        ).null_count() == len(nat)


def test_nat_trap_summary_names_the_evidence(trap):
    edges, clusters, campaign, _ = trap
    camp_id = ids_of(clusters)[campaign[0]]
    summary = cluster_edge_summary(edges, clusters).filter(pl.col("cluster_id") == camp_id)
    types = summary.get_column("type").to_list()
    assert {"payment", "template", "timing", "client"} <= set(types)
    assert summary.get_column("n_accounts").unique().to_list() == [20]
    assert summary.get_column("weight").is_sorted(descending=True)
    assert "ip" not in types  # the NAT address was dropped, not used


def test_degree_cap_stops_a_hub_chaining_two_groups():
    left = [f"l{i}" for i in range(5)]
    right = [f"r{i}" for i in range(5)]
    leaves = [f"x{i:02d}" for i in range(30)]
    rows = clique(left) + clique(right)
    # a NAT-like hub: strong enough ip links to everyone, including both groups
    hub = [("h", m, "ip", 1.0) for m in sorted(left + right + leaves)]
    edges = edges_of(rows + [(min(s, d), max(s, d), t, w) for s, d, t, w in hub])
    cfg = GraphConfig(weak_degree_cap=3)
    kept_ip = [r for r in combined_edges(edges, cfg).rows(named=True) if "ip" in r["types"]]
    assert len(kept_ip) <= 3
    out = ids_of(cluster_accounts(edges, sorted({*left, *right, *leaves, "h"}), cfg))
    assert out["l0"] != out["r0"]
    assert len({out[a] for a in left}) == 1 and len({out[a] for a in right}) == 1


def test_threshold_and_min_cluster_size():
    edges = edges_of(
        [*clique(["a", "b", "c"]), ("d", "e", "payment", 3.0), ("f", "g", "template", 0.5)]
    )
    out = ids_of(cluster_accounts(edges, list("abcdefgh")))
    assert out["a"] == out["b"] == out["c"] is not None
    assert all(out[x] is None for x in "defgh")  # a pair, sub-threshold, no edges
    pairs = ids_of(cluster_accounts(edges, list("abcdefgh"), GraphConfig(min_cluster_size=2)))
    assert pairs["d"] == pairs["e"] is not None
    assert pairs["f"] is None


def test_weak_types_add_up_across_types():
    weak = [("a", "b", "template", 0.6), ("a", "b", "client", 0.5)]
    combined = combined_edges(edges_of(weak))
    assert combined.rows() == [("a", "b", pytest.approx(1.1), ["client", "template"])]
    assert combined_edges(edges_of(weak[:1])).height == 0


def test_edges_to_unknown_accounts_are_ignored():
    edges = edges_of(clique(["a", "b", "c", "z"]))
    out = cluster_accounts(edges, ["c", "b", "a", "b"])
    assert out.get_column("account_id").to_list() == ["a", "b", "c"]
    assert out.get_column("cluster_id").n_unique() == 1


def test_no_edges():
    out = cluster_accounts(pl.DataFrame(schema=EDGE_SCHEMA), ["b", "a"])
    assert out.rows() == [("a", None), ("b", None)]
    assert cluster_edge_summary(pl.DataFrame(schema=EDGE_SCHEMA), out).height == 0


def _two_communities_with_bridges() -> tuple[pl.DataFrame, list[str]]:
    """Two dense groups joined by enough weight that the partition is not trivial."""
    a = [f"a{i:02d}" for i in range(12)]
    b = [f"b{i:02d}" for i in range(12)]
    rows = clique(a, "timing", 1.2) + clique(b, "timing", 1.2)
    rows += [(a[i], b[i], "payment", 3.0) for i in range(4)]
    return edges_of(rows), a + b


def test_deterministic_under_a_seed():
    edges, ids = _two_communities_with_bridges()
    first = cluster_accounts(edges, ids, seed=3)
    assert first.equals(cluster_accounts(edges, ids, seed=3))
    assert first.equals(cluster_accounts(edges.reverse(), list(reversed(ids)), seed=3))
    calls, accounts, _, _ = nat_trap(seed=1)
    e1 = account_edges(calls, accounts)
    assert e1.equals(account_edges(calls, accounts))
    ids2 = calls.get_column("account_id").unique()
    assert cluster_accounts(e1, ids2, seed=9).equals(cluster_accounts(e1, ids2, seed=9))


def test_content_ids_do_not_depend_on_the_run():
    edges = edges_of(clique(["m", "n", "o"]) + clique(["p", "q", "r"]))
    one = ids_of(cluster_accounts(edges, list("mnopqr"), seed=0))
    two = ids_of(cluster_accounts(edges, list("rqponm"), seed=5))
    assert one == two
    assert one["m"] != one["p"]
    assert all(v is not None and v.startswith("cl-") and len(v) == 15 for v in one.values())


def test_previous_ids_survive_a_changed_anchor():
    before = edges_of(clique(["a1", "a2", "a3", "a4", "a5"]) + clique(["b1", "b2", "b3"]))
    prev = cluster_accounts(before, ["a1", "a2", "a3", "a4", "a5", "b1", "b2", "b3"])
    old = ids_of(prev)
    # next window: a1 is gone (the old anchor), a6 and a7 are new; b unchanged; c is new
    after = edges_of(
        clique(["a2", "a3", "a4", "a5", "a6", "a7"])
        + clique(["b1", "b2", "b3"])
        + clique(["c1", "c2", "c3"])
    )
    ids = ["a2", "a3", "a4", "a5", "a6", "a7", "b1", "b2", "b3", "c1", "c2", "c3"]
    fresh = ids_of(cluster_accounts(after, ids))
    kept = ids_of(cluster_accounts(after, ids, previous=prev))
    assert fresh["a2"] != old["a1"]  # without history the id follows the new anchor
    assert kept["a2"] == kept["a7"] == old["a1"]
    assert kept["b1"] == old["b1"] == fresh["b1"]
    assert kept["c1"] == fresh["c1"] not in set(old.values())


def test_previous_id_goes_to_the_larger_part_of_a_split():
    before = edges_of(clique(["a1", "a2", "a3", "a4", "a5", "a6", "a7"]))
    prev = cluster_accounts(before, ["a1", "a2", "a3", "a4", "a5", "a6", "a7"])
    old = ids_of(prev)["a1"]
    after = edges_of(clique(["a1", "a2", "a3"]) + clique(["a4", "a5", "a6", "a7"]))
    kept = ids_of(
        cluster_accounts(after, ["a1", "a2", "a3", "a4", "a5", "a6", "a7"], previous=prev)
    )
    assert kept["a4"] == old  # four of the old members beat three
    assert kept["a1"] not in (None, old)  # the smaller part: a new id, though a1 anchored old


def test_previous_id_needs_a_majority():
    prev = pl.DataFrame(
        {"account_id": ["x1", "y1", "z1", "w1"], "cluster_id": ["cl-x", "cl-y", "cl-z", None]}
    )
    edges = edges_of(clique(["w1", "x1", "y1", "z1"]))
    out = ids_of(cluster_accounts(edges, ["w1", "x1", "y1", "z1"], previous=prev))
    assert out["x1"] not in ("cl-x", "cl-y", "cl-z")  # one of three earlier members each
    lenient = GraphConfig(previous_min_share=0.3)
    assert (
        ids_of(cluster_accounts(edges, ["w1", "x1", "y1", "z1"], lenient, previous=prev))["x1"]
        == "cl-x"
    )  # ties go to the smallest previous id


def test_summary_counts_only_edges_inside_a_cluster():
    edges = edges_of(
        [
            *clique(["a", "b", "c"]),
            ("a", "b", "timing", 0.5),
            ("c", "d", "ip", 0.4),
            ("d", "e", "payment", 3.0),
        ]
    )
    clusters = cluster_accounts(edges, list("abcde"))
    summary = cluster_edge_summary(edges, clusters)
    assert summary.select("type", "n_edges", "n_linked", "n_accounts").rows() == [
        ("payment", 3, 3, 3),
        ("timing", 1, 2, 3),
    ]
    assert summary.get_column("weight").to_list() == pytest.approx([9.0, 0.5])
    assert summary.item(1, "example") == "timing a-b"


def test_an_address_alone_does_not_link_but_corroborated_it_does():
    from cluster_frames import make_calls

    shared = [{"account_id": a, "ts": 60 + i, "ip": "192.0.2.10"} for i, a in enumerate("abc")]
    edges = account_edges(make_calls(shared))
    assert set(edges.get_column("type")) == {"ip"}
    assert combined_edges(edges).height == 0  # a proxy exit is also someone's home line
    client = {"user_agent": "harvester/2", "tls_fingerprint": "tls-x"}
    corroborated = account_edges(make_calls([{**r, **client} for r in shared]))
    assert combined_edges(corroborated).height == 3
