"""A fleet sharing Redis: two gateway processes enforce one limit and one set of decisions."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from gateway_procs import Gw, Stub, redis_up, write_scan

from distillwatch.gateway.decisions import open_store, publish_scan

pytestmark = pytest.mark.skipif(not redis_up(), reason="no Redis on 127.0.0.1:6379")


def test_two_gateways_enforce_one_limit_together(tmp_path: Path, stub: Stub) -> None:
    ns = "dwtest-" + uuid.uuid4().hex[:8]  # a fresh limit namespace: nothing left from other runs
    prefix = "dwtest" + uuid.uuid4().hex[:8]
    store = f"redis://127.0.0.1:6379/0?prefix={prefix}"
    policy = {
        "rules": [
            {
                "id": "org-cap",
                "action": "throttle",
                "limit": "5/minute",
                "scope": "org",
                "when": {"orgs": ["org-a"]},
            },
            {"id": "scan-block", "when": {"tier": ["block"]}, "action": "block"},
        ]
    }
    common = {
        "limits": "redis://127.0.0.1:6379",
        "limits_namespace": ns,
        "policy": policy,
        "decisions": store,
        "reload_seconds": 0.2,
    }
    a = Gw(tmp_path / "a", stub.url, **common)
    b = Gw(tmp_path / "b", stub.url, **common)
    try:
        # alice and bob share org-a: 5 calls a minute between them, across both gateways
        codes = []
        for _i in range(4):
            codes.append(a.chat(key="sk-alice").status_code)
            codes.append(b.chat(key="sk-bob").status_code)
        assert codes.count(200) == 5 and codes.count(429) == 3
        assert codes[:5] == [200] * 5
        assert a.chat(key="sk-carol").status_code == 200  # not in org-a

        # one load into Redis reaches both gateways
        publish_scan(
            write_scan(
                tmp_path / "scan", [{"account_id": "acct-carol", "score": 0.99, "tier": "block"}]
            ),
            store,
        )
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            a.chat(key="sk-carol").status_code != 403 or b.chat(key="sk-carol").status_code != 403
        ):
            time.sleep(0.1)
        assert (
            a.chat(key="sk-carol").status_code == 403 and b.chat(key="sk-carol").status_code == 403
        )
    finally:
        a.stop()
        b.stop()
        s = open_store(store)
        s._r.delete(*(s._key(k) for k in ("accounts", "clusters", "generation")))  # type: ignore[attr-defined]
        s.close()


def test_sqlite_and_redis_stores_round_trip(tmp_path: Path) -> None:
    scan = write_scan(
        tmp_path / "scan",
        [
            {
                "account_id": "a1",
                "score": 0.9,
                "tier": "throttle",
                "cluster_id": "c1",
                "org_id": "o1",
            }
        ],
        [{"cluster_id": "c1", "score": 0.96, "tier": "block", "members": ["a1"]}],
    )
    prefix = "dwtest" + uuid.uuid4().hex[:8]
    for uri in (f"sqlite://{tmp_path / 'd.db'}", f"redis://127.0.0.1:6379/0?prefix={prefix}"):
        g1, n_acc, n_cl = publish_scan(scan, uri)
        g2, _, _ = publish_scan(scan, uri)
        assert (n_acc, n_cl) == (1, 1) and g2 == g1 + 1
        store = open_store(uri)
        snap = store.snapshot()
        v = snap.verdicts("a1")
        assert snap.generation == g2 and v.account is not None and v.account.tier == "throttle"
        assert v.cluster is not None and v.cluster.tier == "block" and v.org_id == "o1"
        assert v.account.evidence[0].source == "detector:account-gbm@1"
        assert snap.verdicts("nobody").account is None
        if uri.startswith("redis"):
            store._r.delete(*(store._key(k) for k in ("accounts", "clusters", "generation")))  # type: ignore[attr-defined]
        store.close()
