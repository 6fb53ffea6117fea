"""Each edge type links what it should and nothing else, on small hand-built frames."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl
import pytest
from cluster_frames import T0, make_accounts, make_calls

from distillwatch.clusters import (
    EDGE_SCHEMA,
    EDGE_TYPES,
    GraphConfig,
    account_edges,
    cluster_accounts,
)

DAY = 1440  # minutes


def call(account: str, minute: float, **fields: Any) -> dict[str, Any]:
    return {"account_id": account, "ts": minute, **fields}


def of_type(edges: pl.DataFrame, kind: str) -> set[tuple[str, str]]:
    return {(s, d) for s, d in edges.filter(pl.col("type") == kind).select("src", "dst").rows()}


def test_schema_and_order():
    calls = make_calls(
        [call(a, 10, ip="192.0.2.1", user_agent="x", tls_fingerprint="y") for a in "cab"]
    )
    edges = account_edges(calls)
    assert edges.schema == EDGE_SCHEMA
    assert set(edges.get_column("type")) <= set(EDGE_TYPES)
    assert edges.filter(pl.col("src") >= pl.col("dst")).height == 0
    assert edges.select("src", "dst", "type").rows() == sorted(
        edges.select("src", "dst", "type").rows()
    )


def test_empty_and_minimal_frames():
    empty = make_calls([])
    assert account_edges(empty).schema == EDGE_SCHEMA
    assert account_edges(empty).height == 0
    bare = pl.DataFrame({"account_id": ["a", "b"], "ts": [T0, T0]})
    assert account_edges(bare).height == 0  # no shared keys at all
    with pytest.raises(ValueError, match="account_id"):
        account_edges(pl.DataFrame({"ts": [T0]}))


# --- account-table edges ------------------------------------------------------------------------


def test_payment_links_a_shared_card_only():
    calls = make_calls([call(a, 0) for a in "abcd"])
    accounts = make_accounts(
        [
            {"account_id": "a", "payment_fingerprint": "card-1"},
            {"account_id": "b", "payment_fingerprint": "card-1"},
            {"account_id": "c", "payment_fingerprint": "card-2"},
            {"account_id": "d", "payment_fingerprint": None},
            {"account_id": "z", "payment_fingerprint": "card-2"},  # no calls: not linked
        ]
    )
    edges = account_edges(calls, accounts)
    assert of_type(edges, "payment") == {("a", "b")}
    row = edges.filter(pl.col("type") == "payment").row(0, named=True)
    assert row["weight"] == GraphConfig().payment_weight
    assert row["key"] == "card-1 (2 accounts)"


def test_payment_over_the_cap_is_dropped():
    ids = [f"a{i}" for i in range(6)]
    calls = make_calls([call(a, 0) for a in ids])
    accounts = make_accounts([{"account_id": a, "payment_fingerprint": "card"} for a in ids])
    assert (
        of_type(account_edges(calls, accounts, GraphConfig(max_payment_accounts=5)), "payment")
        == set()
    )
    assert len(of_type(account_edges(calls, accounts), "payment")) == 15


def test_org_from_accounts_or_calls():
    calls = make_calls(
        [call("a", 0, org_id="org-1"), call("b", 0), call("c", 0, org_id="org-1"), call("d", 0)]
    )
    assert of_type(account_edges(calls), "org") == {("a", "c")}
    accounts = make_accounts([{"account_id": "b", "org_id": "org-1"}, {"account_id": "d"}])
    assert of_type(account_edges(calls, accounts), "org") == {("a", "b"), ("a", "c"), ("b", "c")}
    assert of_type(account_edges(calls, accounts, GraphConfig(max_org_accounts=2)), "org") == set()


def test_signup_burst_same_channel_within_the_window():
    calls = make_calls([call(a, 0) for a in "abcde"])
    accounts = make_accounts(
        [
            # 10:59 and 11:01: across a calendar hour, still one burst
            {"account_id": "a", "created_at": -DAY + 659, "signup_channel": "self_serve"},
            {"account_id": "b", "created_at": -DAY + 661, "signup_channel": "self_serve"},
            {"account_id": "c", "created_at": -DAY + 662, "signup_channel": "education"},
            {"account_id": "d", "created_at": -DAY + 900, "signup_channel": "self_serve"},
            {"account_id": "e", "created_at": None, "signup_channel": "self_serve"},
        ]
    )
    edges = account_edges(calls, accounts)
    assert of_type(edges, "signup_burst") == {("a", "b")}
    assert edges.filter(pl.col("type") == "signup_burst").get_column("key").to_list() == [
        "self_serve sign-ups 2 min apart"
    ]


# --- infrastructure edges -----------------------------------------------------------------------


def test_ip_same_address_same_day_only():
    calls = make_calls(
        [
            call("a", 60, ip="192.0.2.10"),
            call("b", 600, ip="192.0.2.10"),  # same day: linked
            call("c", DAY + 60, ip="192.0.2.10"),  # next day: not with a or b
            call("d", 60, ip="198.51.100.1"),
        ]
    )
    edges = account_edges(calls)
    assert of_type(edges, "ip") == {("a", "b")}
    row = edges.filter(pl.col("type") == "ip").row(0, named=True)
    assert row["support"] == 1
    assert row["key"].startswith("192.0.2.10")
    assert 0 < row["weight"] <= GraphConfig().ip_weight


def test_ip_shared_by_a_nat_is_dropped():
    cfg = GraphConfig(max_key_accounts=10)
    crowd = [call(f"n{i:02d}", 60, ip="192.0.2.99") for i in range(11)]
    assert of_type(account_edges(make_calls(crowd), config=cfg), "ip") == set()
    assert len(of_type(account_edges(make_calls(crowd[:10]), config=cfg), "ip")) == 45


def test_ip_evidence_grows_with_shared_days():
    # c uses the address on the last day only: it is less exclusive, one shared day is not enough
    one = [call("a", 60, ip="192.0.2.10"), call("b", 70, ip="192.0.2.10")]
    one += [call("c", 3 * DAY + 60, ip="192.0.2.10")]
    three = one + [call(x, d * DAY + 60, ip="192.0.2.10") for d in (1, 2) for x in "ab"]
    w1 = account_edges(make_calls(one)).filter(pl.col("type") == "ip").item(0, "weight")
    w3 = account_edges(make_calls(three)).filter(pl.col("type") == "ip").item(0, "weight")
    assert w3 > w1
    assert w3 == pytest.approx(GraphConfig().ip_weight)


def test_subnet24_links_neighbours_not_strangers():
    calls = make_calls(
        [
            call("a", 60, ip="192.0.2.10"),
            call("b", 90, ip="192.0.2.77"),
            call("c", 90, ip="192.0.3.10"),
            call("d", 90, ip="2001:db8::1"),
            call("e", 90, ip="2001:db8::2"),
        ]
    )
    edges = account_edges(calls)
    assert of_type(edges, "subnet24") == {("a", "b")}
    assert of_type(edges, "ip") == set()
    assert edges.filter(pl.col("type") == "subnet24").item(0, "key").startswith("192.0.2.0/24")


def test_asn_is_weak_and_capped_per_window():
    cfg = GraphConfig(max_key_accounts=5)
    few = [call(a, 10, asn=64500) for a in "abc"] + [call("d", 10, asn=64501)]
    edges = account_edges(make_calls(few), config=cfg)
    assert of_type(edges, "asn") == {("a", "b"), ("a", "c"), ("b", "c")}
    assert edges.filter(pl.col("type") == "asn").get_column("weight").max() <= cfg.asn_weight
    crowd = [call(f"x{i}", 10, asn=64500) for i in range(6)]
    assert of_type(account_edges(make_calls(crowd), config=cfg), "asn") == set()


def _client_population() -> pl.DataFrame:
    """100 accounts: 4 on a custom client, 96 on a stock SDK (a), 2 of them also on (b)."""
    rows = [
        call(f"c{i}", 0, user_agent="harvester/1.0", tls_fingerprint="tls-custom") for i in range(4)
    ]
    rows += [
        call(f"s{i:02d}", 0, user_agent="OpenAI/Python 1.54.3", tls_fingerprint="tls-sdk")
        for i in range(96)
    ]
    rows += [
        call(f"s{i:02d}", 5, user_agent="curl/8.5.0", tls_fingerprint="tls-curl") for i in (0, 1)
    ]
    return make_calls(rows)


def test_client_rare_fingerprint_links_common_one_does_not():
    edges = account_edges(_client_population())
    client = of_type(edges, "client")
    assert {("c0", "c1"), ("c2", "c3")} <= client
    # the stock SDK is used by 96% of the frame: no evidence; curl by 2 accounts is
    assert not any(s.startswith("s") and (s, d) != ("s00", "s01") for s, d in client)
    assert ("s00", "s01") in client
    w = edges.filter((pl.col("type") == "client") & (pl.col("src") == "c0")).item(0, "weight")
    assert 0 < w <= GraphConfig().client_weight


def test_client_weight_falls_with_popularity():
    rows = [call(f"r{i}", 0, user_agent="rare", tls_fingerprint="t1") for i in range(3)]
    rows += [call(f"p{i:02d}", 0, user_agent="common", tls_fingerprint="t2") for i in range(40)]
    rows += [call(f"o{i:03d}", 0) for i in range(900)]  # the rest of the population
    edges = account_edges(make_calls(rows)).filter(pl.col("type") == "client")
    rare = edges.filter(pl.col("src").str.starts_with("r")).get_column("weight").max()
    common = edges.filter(pl.col("src").str.starts_with("p")).get_column("weight").max()
    assert rare > common > 0


# --- content and behaviour edges ----------------------------------------------------------------


def test_template_rare_family_links_duplicates_do_not():
    rows = []
    for a in "abc":  # a and b use private family 7 twice each; c once
        rows += [call(a, m, family_id=7, family_kind="template") for m in (1, 2)][
            : 1 if a == "c" else 2
        ]
    for a in "de":  # a shared duplicate ("hi"): no evidence
        rows += [call(a, m, family_id=9, family_kind="duplicate") for m in (1, 2)]
    edges = account_edges(make_calls(rows))
    assert of_type(edges, "template") == {("a", "b")}
    row = edges.filter(pl.col("type") == "template").row(0, named=True)
    assert row["key"].startswith("template family 7 (2 accounts)")
    assert 0 < row["weight"] <= GraphConfig().template_weight


def test_template_public_family_over_the_cap_is_dropped():
    rows = [call(f"u{i}", m, family_id=5, family_kind="template") for i in range(6) for m in (1, 2)]
    cfg = GraphConfig(max_template_accounts=5)
    assert of_type(account_edges(make_calls(rows), config=cfg), "template") == set()
    assert len(of_type(account_edges(make_calls(rows)), "template")) == 15


def _activity(rng: np.random.Generator, buckets: np.ndarray, account: str) -> list[dict[str, Any]]:
    return [call(account, float(b) * 5 + float(rng.uniform(0, 4))) for b in buckets]


def test_timing_synchronized_pair_stands_out():
    rng = np.random.default_rng(1)
    n_buckets = 3 * 288  # three days of 5-minute buckets
    rows: list[dict[str, Any]] = []
    for i in range(60):  # background: 40 random buckets each
        rows += _activity(rng, rng.choice(n_buckets, 40, replace=False), f"bg{i:02d}")
    shared = rng.choice(n_buckets, 30, replace=False)  # spread over all three days
    for a in ("sync-a", "sync-b"):
        own = rng.choice(n_buckets, 10, replace=False)
        rows += _activity(rng, np.concatenate([shared, own]), a)
    edges = account_edges(make_calls(rows))
    timing = of_type(edges, "timing")
    assert timing == {("sync-a", "sync-b")}
    row = edges.filter(pl.col("type") == "timing").row(0, named=True)
    assert row["support"] >= 30
    assert "over 3 days" in row["key"]
    assert row["weight"] == pytest.approx(GraphConfig().timing_weight)


def test_timing_needs_several_days():
    rng = np.random.default_rng(2)
    rows: list[dict[str, Any]] = []
    for i in range(60):
        rows += _activity(rng, rng.choice(3 * 288, 40, replace=False), f"bg{i:02d}")
    shared = rng.choice(288, 30, replace=False)  # all on the first day
    for a in ("sync-a", "sync-b"):
        rows += _activity(rng, shared, a)
    assert of_type(account_edges(make_calls(rows)), "timing") == set()
    relaxed = GraphConfig(timing_min_days=1)
    assert of_type(account_edges(make_calls(rows), config=relaxed), "timing") == {
        ("sync-a", "sync-b")
    }


def test_timing_busy_buckets_are_split_not_dropped():
    rng = np.random.default_rng(3)
    rows: list[dict[str, Any]] = []
    for i in range(60):
        rows += _activity(rng, rng.choice(3 * 288, 40, replace=False), f"bg{i:02d}")
    shared = rng.choice(3 * 288, 30, replace=False)
    for a in ("sync-a", "sync-b"):
        rows += _activity(rng, shared, a)
    calls = make_calls(rows)
    tight = GraphConfig(timing_max_bucket_accounts=3)  # most buckets split in two or more
    assert ("sync-a", "sync-b") in of_type(account_edges(calls, config=tight), "timing")


def _handover_rows(share_template: bool, share_client: bool) -> list[dict[str, Any]]:
    """a works on day 0 until 10:00 of day 1; b starts two hours later."""

    def row(acct: str, minute: float) -> dict[str, Any]:
        return call(
            acct,
            minute,
            family_id=42 if (share_template or acct == "a") else 43,
            family_kind="template",
            user_agent="harvester" if (share_client or acct == "a") else "other",
            tls_fingerprint="t",
        )

    rows = [row("a", m) for m in range(0, DAY + 601, 60)]
    rows += [row("b", m) for m in range(DAY + 720, 3 * DAY, 60)]
    rows += [call("c", 0), call("c", 3 * DAY - 1)]  # frames the window
    return rows


def test_handover_shares_template_and_client():
    edges = account_edges(make_calls(_handover_rows(True, True)))
    assert of_type(edges, "handover") == {("a", "b")}
    row = edges.filter(pl.col("type") == "handover").row(0, named=True)
    assert row["weight"] == pytest.approx(GraphConfig().handover_weight)
    assert row["key"] == "b started 2.0 h after a stopped; shares client, template"


def test_handover_one_kind_shared_counts_half_nothing_shared_counts_nothing():
    half = account_edges(make_calls(_handover_rows(True, False)))
    assert half.filter(pl.col("type") == "handover").item(0, "weight") == pytest.approx(
        GraphConfig().handover_weight / 2
    )
    assert of_type(account_edges(make_calls(_handover_rows(False, False))), "handover") == set()


def test_handover_needs_a_fresh_account():
    calls = make_calls(_handover_rows(True, True))
    fresh = make_accounts([{"account_id": "b", "created_at": DAY + 700}])
    old = make_accounts([{"account_id": "b", "created_at": -300 * DAY}])
    assert of_type(account_edges(calls, fresh), "handover") == {("a", "b")}
    assert of_type(account_edges(calls, old), "handover") == set()


def test_handover_gap_longer_than_the_window():
    rows = _handover_rows(True, True)
    cfg = replace(GraphConfig(), handover_window=GraphConfig().handover_window / 12)  # 1 h
    assert of_type(account_edges(make_calls(rows), config=cfg), "handover") == set()


def test_edges_do_not_depend_on_row_order():
    rng = np.random.default_rng(4)
    rows = _handover_rows(True, True) + [
        call(f"x{i}", float(rng.uniform(0, 3 * DAY)), ip=f"192.0.2.{i % 3}", asn=64500)
        for i in range(30)
    ]
    calls = make_calls(rows)
    shuffled = calls.sample(fraction=1.0, shuffle=True, seed=7)
    assert account_edges(calls).equals(account_edges(shuffled))


# --- wave edges ---------------------------------------------------------------------------------


def _wave_population(
    seed: int,
    campaign: int = 60,
    background: int = 400,
    wave_hours: tuple[int, ...] = (),
    client: str | None = None,
) -> tuple[pl.DataFrame, list[str]]:
    """Three days of 5-minute buckets: ``background`` accounts active in 40 random buckets each,
    and a ``campaign`` whose accounts are active in 20 random buckets and in 60% of the buckets
    of 8 campaign-wide 15-minute waves a day (at random times, or at ``wave_hours`` only), with
    the user agent ``client`` on every call when given."""
    rng = np.random.default_rng(seed)
    n_buckets = 3 * 288
    rows: list[dict[str, Any]] = []
    for i in range(background):
        rows += _activity(rng, rng.choice(n_buckets, 40, replace=False), f"bg{i:03d}")
    starts = []
    for day in range(3):
        if wave_hours:
            hours = [h * 12 for h in wave_hours]
        else:
            hours = list(rng.choice(288 - 3, 8, replace=False))
        starts += [day * 288 + int(h) for h in hours]
    waves = np.array([s + k for s in starts for k in range(3)])
    members = [f"camp{j:02d}" for j in range(campaign)]
    for acct in members:
        own = rng.choice(n_buckets, 20, replace=False)
        in_wave = waves[rng.random(len(waves)) < 0.6]
        mine = _activity(rng, np.unique(np.concatenate([own, in_wave])), acct)
        rows += [{**r, "user_agent": client} for r in mine] if client else mine
    return make_calls(rows), members


def test_wave_links_a_campaign_in_step_and_no_bystander():
    calls, members = _wave_population(5)
    edges = account_edges(calls)
    wave = edges.filter(pl.col("type") == "wave")
    linked = set(wave.get_column("src")) | set(wave.get_column("dst"))
    assert linked == set(members)  # every campaign account, no background account
    # sparse: each member has about 2 * wave_neighbours links, not all pairs
    k = GraphConfig().wave_neighbours
    assert wave.height == len(members) * k
    assert wave.get_column("weight").max() <= GraphConfig().wave_weight
    assert wave.item(0, "key").startswith("both in step with the waves of all accounts (60 ")


def test_wave_ring_keeps_a_big_campaign_in_one_cluster():
    calls, members = _wave_population(6, campaign=150)
    edges = account_edges(calls)
    clusters = cluster_accounts(edges, calls.get_column("account_id").unique())
    ids = clusters.filter(pl.col("account_id").is_in(members)).get_column("cluster_id")
    assert ids.null_count() == 0
    assert ids.n_unique() == 1
    others = clusters.filter(~pl.col("account_id").is_in(members)).get_column("cluster_id")
    assert others.null_count() == others.len()


def test_wave_small_campaign_stands_out_among_its_own_client():
    """25 accounts whose waves are lost among 2,000 others stand out among their client's."""
    calls, members = _wave_population(11, campaign=25, background=2000, client="harvester/0.1")
    wave = account_edges(calls).filter(pl.col("type") == "wave")
    assert set(wave.get_column("src")) | set(wave.get_column("dst")) == set(members)
    assert "harvester/0.1" in wave.item(0, "key")


def test_wave_at_one_time_of_day_is_a_schedule_not_a_campaign():
    calls, _ = _wave_population(7, wave_hours=(0, 0))  # the same minutes of every day
    assert of_type(account_edges(calls), "wave") == set()


def test_wave_needs_no_campaign_to_find_none():
    calls, _ = _wave_population(8, campaign=0)
    assert of_type(account_edges(calls), "wave") == set()
    cfg = GraphConfig(wave_weight=0.0)
    calls, _ = _wave_population(9)
    assert of_type(account_edges(calls, config=cfg), "wave") == set()


def test_public_template_over_the_cap_with_background_timing_links_nobody():
    """A big public template shared by unrelated accounts: no template, wave or timing edge."""
    rng = np.random.default_rng(10)
    rows: list[dict[str, Any]] = []
    for i in range(400):
        for b in rng.choice(3 * 288, 30, replace=False):
            rows.append(call(f"u{i:03d}", float(b) * 5 + 1, family_id=5, family_kind="template"))
    edges = account_edges(make_calls(rows), config=GraphConfig(max_template_accounts=300))
    assert edges.filter(pl.col("type").is_in(["template", "wave", "timing"])).height == 0


# --- keys over their caps, counted only for pairs linked otherwise ------------------------------


def _big_key_population() -> pl.DataFrame:
    """400 accounts share one public template family and one stock client (both over their caps
    below); c0..c3 also share a proxy address on each of three days, as do s0 and s1."""
    rows = [
        call(f"u{i:03d}", m, family_id=5, family_kind="template", user_agent="sdk",
             tls_fingerprint="stock")
        for i in range(400)
        for m in (1, 2)
    ]  # fmt: skip
    for a in ("u000", "u001", "u002", "u003"):
        rows += [call(a, d * DAY + 60, ip="192.0.2.50") for d in range(3)]
    return make_calls(rows)


def test_big_keys_corroborate_a_linked_pair_and_link_nobody_else():
    cfg = GraphConfig(max_template_accounts=300, max_client_accounts=300)
    edges = account_edges(_big_key_population(), config=cfg)
    linked = {("u000", "u001"), ("u000", "u002"), ("u000", "u003"), ("u001", "u002"),
              ("u001", "u003"), ("u002", "u003")}  # fmt: skip
    assert of_type(edges, "ip") == linked
    # the public template and the stock client count only for the pairs the address links
    assert of_type(edges, "template") == linked
    assert of_type(edges, "client") == linked
    row = edges.filter(pl.col("type") == "template").row(0, named=True)
    assert row["key"] == "template family 5 (400 accounts, corroborating)"
    assert 0 < row["weight"] < cfg.template_weight
    # IDF of a key held by 400 of 400 accounts is small: the pair is not linked by it alone
    assert (
        edges.filter(pl.col("type").is_in(["template", "client"])).get_column("weight").max() < 0.5
    )


def test_big_keys_alone_do_not_merge_strangers():
    """The same 400 accounts without the shared address: no edge at all, no cluster."""
    calls = _big_key_population().filter(pl.col("ip").is_null())
    cfg = GraphConfig(max_template_accounts=300, max_client_accounts=300)
    edges = account_edges(calls, config=cfg)
    assert edges.height == 0
    clusters = cluster_accounts(edges, calls.get_column("account_id").unique(), cfg)
    assert clusters.get_column("cluster_id").null_count() == clusters.height


def test_big_keys_need_corroborating_types():
    cfg = GraphConfig(
        max_template_accounts=300, max_client_accounts=300, corroborated_types=("timing",)
    )
    edges = account_edges(_big_key_population(), config=cfg)
    assert of_type(edges, "template") == set()
    assert of_type(edges, "client") == set()


def test_handover_through_one_address_is_the_address_not_a_second_link():
    """b takes over a's address an hour after a stops: the /24 is that address, already ip."""
    rows = [call("a", m, ip="192.0.2.10") for m in range(0, DAY + 601, 60)]
    rows += [call("b", m, ip="192.0.2.10") for m in range(DAY + 660, 3 * DAY, 60)]
    rows += [call("c", 0), call("c", 3 * DAY - 1)]  # frames the window
    edges = account_edges(make_calls(rows))
    assert of_type(edges, "ip") == {("a", "b")}
    assert of_type(edges, "handover") == set()
    # the same hand-over over two addresses of one /24 keeps its edge
    moved = [{**r, "ip": "192.0.2.11"} if r["account_id"] == "b" else r for r in rows]
    assert of_type(account_edges(make_calls(moved)), "handover") == {("a", "b")}


def test_wave_edges_do_not_depend_on_row_order():
    calls, _ = _wave_population(12, campaign=40, client="harvester/0.1")
    shuffled = calls.sample(fraction=1.0, shuffle=True, seed=3)
    edges = account_edges(calls)
    assert edges.filter(pl.col("type") == "wave").height > 0
    assert edges.equals(account_edges(shuffled))
