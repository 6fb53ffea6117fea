"""Canary registries (SQLite and Redis) and the sequential view of the canary test."""

from __future__ import annotations

import socket
import sqlite3
import uuid
from pathlib import Path

import pytest

from distillwatch.core.errors import DistillwatchError
from distillwatch.watermark.countermeasures import (
    CanaryRegistry,
    ServedCanary,
    canary_for,
    canary_test,
    decoy_canaries,
    open_registry,
)

SECRET = b"registry-secret-0123456789"


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def _uri(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite://{tmp_path / 'sub' / 'canaries.db'}"
    if not _redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    return f"redis://127.0.0.1:6379/0?prefix=dwtest-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_counts_add_up_and_served_times_widen(kind: str, tmp_path: Path) -> None:
    uri = _uri(kind, tmp_path)
    a0, a1 = canary_for("acct-a", SECRET, 0), canary_for("acct-a", SECRET, 1)
    b0 = canary_for("acct-b", SECRET, 0)
    reg = open_registry(uri)
    try:
        reg.record_served([ServedCanary(a0, 10.0, 12.0, 3, 0), ServedCanary(b0, 5.0, 5.0, 1, 0)])
        reg.record_served([ServedCanary(a0, 8.0, 11.0, 2, 0)])  # another gateway's batch
        reg.record_served([ServedCanary(a1, 20.0, 30.0, 4, 1)])
        other = open_registry(uri)  # a second reader (another process, the CLI) sees the same
        rows = {r.canary.canary_id: r for r in other.served()}
        other.close()
        assert rows[a0.canary_id] == ServedCanary(a0, 8.0, 12.0, 5, 0)
        assert rows[a1.canary_id] == ServedCanary(a1, 20.0, 30.0, 4, 1)
        assert [r.canary for r in reg.served()] == [b0, a0, a1]  # by first served
        assert reg.issued("acct-a") == [a0, a1] and reg.issued("acct-b") == [b0]
        assert reg.issued("acct-nobody") == []
    finally:
        reg.close()


def test_an_old_registry_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    c = canary_for("acct-old", SECRET)
    with sqlite3.connect(path) as db:  # the table as the first version wrote it
        db.execute(
            "create table canary (canary_id text primary key, account_id text,"
            " fact text, question text, answer text, issued_at real)"
        )
        row = (c.canary_id, c.account_id, c.fact, c.question, c.answer, 7.0)
        db.execute("insert into canary values (?, ?, ?, ?, ?, ?)", row)
    reg = CanaryRegistry(path)
    assert reg.served() == [ServedCanary(c, 7.0, 7.0, 1, None)]
    reg.record(c, issued_at=9.0)
    assert reg.served() == [ServedCanary(c, 7.0, 9.0, 2, None)]
    reg.close()


def test_open_registry_uris(tmp_path: Path) -> None:
    with pytest.raises(DistillwatchError, match="no such file"):
        open_registry(tmp_path / "missing.db", create=False)
    with pytest.raises(DistillwatchError, match="use sqlite"):
        open_registry("postgres://x")
    reg = open_registry(tmp_path / "bare.db")  # a bare path is a SQLite file
    assert isinstance(reg, CanaryRegistry) and (tmp_path / "bare.db").exists()
    reg.close()


def test_sequential_view_reports_the_queries_needed() -> None:
    issued = [canary_for(f"acct-{i}", SECRET) for i in range(12)]
    known = {c.question: c.answer for c in issued[:10]}
    res = canary_test(lambda q: known.get(q, "no idea"), issued, decoy_canaries(SECRET, 12))
    # paired probes, n of each, all issued hit, no decoy: Fisher p = 1/C(2n, n); n = 6 gives
    # 1/924 > 1e-3, n = 7 gives 1/3432: 14 queries
    assert res.queries_needed == 14 and res.p_value < 1e-4 and res.alpha == 1e-3
    clean = canary_test(lambda q: "no idea", issued, decoy_canaries(SECRET, 12))
    assert clean.queries_needed is None and clean.p_value == 1.0
