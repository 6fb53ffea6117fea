"""The decision store: the latest batch ``scan`` verdicts, shared with running gateways.

``distillwatch scan`` writes ``accounts.parquet`` and ``clusters.parquet``; :func:`load_scan`
turns them into findings and :meth:`DecisionStore.replace` publishes them under a new
generation number. Gateways poll the generation (cheap) and, when it moves, take a whole new
:class:`Snapshot` that the request path reads without any I/O.

Backends by URI: ``sqlite:///path/decisions.db`` (embedded, one host) and
``redis://host:port/db?prefix=dw`` (shared by a fleet of gateways).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

import orjson
import polars as pl

from distillwatch.core.errors import DistillwatchError
from distillwatch.core.values import Evidence, Finding
from distillwatch.gateway.values import Verdicts, evidence_record


@dataclass(frozen=True, slots=True)
class AccountEntry:
    """One account's scan verdict as the gateway needs it."""

    finding: Finding
    org_id: str | None
    cluster_id: str | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every verdict of one generation, held in memory; lookups do no I/O."""

    generation: int = 0
    accounts: Mapping[str, AccountEntry] = field(default_factory=dict)
    clusters: Mapping[str, Finding] = field(default_factory=dict)

    def verdicts(self, account_id: str) -> Verdicts:
        entry = self.accounts.get(account_id)
        if entry is None:
            return Verdicts(account_id=account_id)
        cluster = self.clusters.get(entry.cluster_id) if entry.cluster_id else None
        return Verdicts(entry.finding, cluster, None, entry.cluster_id, entry.org_id, account_id)


class DecisionStore(Protocol):
    """Where scan verdicts live between a scan and the gateways that enforce them."""

    uri: str

    def generation(self) -> int: ...

    def snapshot(self) -> Snapshot: ...

    def replace(self, accounts: Iterable[AccountEntry], clusters: Iterable[Finding]) -> int: ...

    def close(self) -> None: ...


# --- reading scan output -------------------------------------------------------------------------


def _evidence(items: list[dict[str, Any]] | None) -> tuple[Evidence, ...]:
    return tuple(
        Evidence(
            str(e["signal"]),
            float(e["value"] if e["value"] is not None else float("nan")),
            float(e["baseline"] if e["baseline"] is not None else float("nan")),
            float(e["weight"] if e["weight"] is not None else 0.0),
            str(e["source"]),
        )
        for e in items or ()
    )


def load_scan(scan_dir: str | Path) -> tuple[list[AccountEntry], list[Finding]]:
    """Account and cluster findings from a ``distillwatch scan --out`` folder.

    ``clusters.parquet`` is optional (a scan with ``--no-clusters`` writes an empty one).
    """
    folder = Path(scan_dir)
    accounts_file = folder / "accounts.parquet"
    if not accounts_file.is_file():
        raise DistillwatchError(f"{folder}: no accounts.parquet (run `distillwatch scan` first)")
    try:
        acc = pl.read_parquet(accounts_file)
    except Exception as exc:  # polars raises several types for a damaged file
        raise DistillwatchError(f"{accounts_file}: cannot read: {exc}") from None
    missing = {"account_id", "score", "tier", "evidence"} - set(acc.columns)
    if missing:
        raise DistillwatchError(f"{accounts_file}: missing column(s) {sorted(missing)}")
    accounts = [
        AccountEntry(
            Finding(
                row["account_id"], float(row["score"]), row["tier"], _evidence(row["evidence"])
            ),
            row.get("org_id"),
            row.get("cluster_id"),
        )
        for row in acc.iter_rows(named=True)
    ]
    clusters: list[Finding] = []
    clusters_file = folder / "clusters.parquet"
    if clusters_file.is_file():
        cl = pl.read_parquet(clusters_file)
        if cl.height:
            clusters = [
                Finding(r["cluster_id"], float(r["score"]), r["tier"], _evidence(r["evidence"]))
                for r in cl.iter_rows(named=True)
            ]
    return accounts, clusters


# --- (de)serialising entries ---------------------------------------------------------------------


def _dump_account(entry: AccountEntry) -> bytes:
    f = entry.finding
    return orjson.dumps(
        {
            "score": f.score,
            "tier": f.tier,
            "org_id": entry.org_id,
            "cluster_id": entry.cluster_id,
            "evidence": [evidence_record(e) for e in f.evidence],
        }
    )


def _load_account(account_id: str, blob: bytes | str) -> AccountEntry:
    doc = orjson.loads(blob)
    finding = Finding(account_id, doc["score"], doc["tier"], _evidence(doc["evidence"]))
    return AccountEntry(finding, doc.get("org_id"), doc.get("cluster_id"))


def _dump_cluster(finding: Finding) -> bytes:
    return orjson.dumps(
        {
            "score": finding.score,
            "tier": finding.tier,
            "evidence": [evidence_record(e) for e in finding.evidence],
        }
    )


def _load_cluster(cluster_id: str, blob: bytes | str) -> Finding:
    doc = orjson.loads(blob)
    return Finding(cluster_id, doc["score"], doc["tier"], _evidence(doc["evidence"]))


# --- backends ------------------------------------------------------------------------------------


class SqliteDecisionStore:
    """Decisions in one SQLite file; readers and the loader may be different processes."""

    def __init__(self, uri: str, path: Path) -> None:
        self.uri = uri
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._db:
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS accounts (account_id TEXT PRIMARY KEY, doc BLOB NOT NULL);
                CREATE TABLE IF NOT EXISTS clusters (cluster_id TEXT PRIMARY KEY, doc BLOB NOT NULL);
                INSERT OR IGNORE INTO meta VALUES ('generation', 0);
                """
            )

    def generation(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0])

    def snapshot(self) -> Snapshot:
        with self._lock, self._db:  # one read transaction: a consistent generation
            gen = int(
                self._db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0]
            )
            accounts = {
                k: _load_account(k, v) for k, v in self._db.execute("SELECT * FROM accounts")
            }
            clusters = {
                k: _load_cluster(k, v) for k, v in self._db.execute("SELECT * FROM clusters")
            }
        return Snapshot(gen, accounts, clusters)

    def replace(self, accounts: Iterable[AccountEntry], clusters: Iterable[Finding]) -> int:
        with self._lock, self._db:
            self._db.execute("DELETE FROM accounts")
            self._db.execute("DELETE FROM clusters")
            self._db.executemany(
                "INSERT INTO accounts VALUES (?, ?)",
                ((a.finding.subject, _dump_account(a)) for a in accounts),
            )
            self._db.executemany(
                "INSERT INTO clusters VALUES (?, ?)",
                ((c.subject, _dump_cluster(c)) for c in clusters),
            )
            self._db.execute("UPDATE meta SET value = value + 1 WHERE key='generation'")
            gen = self._db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0]
        return int(gen)

    def close(self) -> None:
        self._db.close()


class RedisDecisionStore:
    """Decisions in Redis hashes under ``prefix``; a new generation is swapped in atomically."""

    def __init__(self, uri: str, url: str, prefix: str) -> None:
        import redis

        self.uri = uri
        self.prefix = prefix
        self._r = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def _key(self, name: str) -> str:
        return f"{self.prefix}:decisions:{name}"

    def generation(self) -> int:
        value: Any = self._r.get(self._key("generation"))
        return int(value) if value is not None else 0

    def snapshot(self) -> Snapshot:
        pipe = self._r.pipeline(transaction=True)
        pipe.get(self._key("generation"))
        pipe.hgetall(self._key("accounts"))
        pipe.hgetall(self._key("clusters"))
        gen, acc, cl = pipe.execute()
        accounts = {k.decode(): _load_account(k.decode(), v) for k, v in acc.items()}
        clusters = {k.decode(): _load_cluster(k.decode(), v) for k, v in cl.items()}
        return Snapshot(int(gen or 0), accounts, clusters)

    def replace(self, accounts: Iterable[AccountEntry], clusters: Iterable[Finding]) -> int:
        acc = {a.finding.subject: _dump_account(a) for a in accounts}
        cl = {c.subject: _dump_cluster(c) for c in clusters}
        staging = {name: self._key(f"{name}:staging") for name in ("accounts", "clusters")}
        pipe = self._r.pipeline(transaction=False)
        pipe.delete(*staging.values())
        if acc:
            pipe.hset(staging["accounts"], mapping=acc)
        if cl:
            pipe.hset(staging["clusters"], mapping=cl)
        pipe.execute()
        swap = self._r.pipeline(transaction=True)  # MULTI: readers see old or new, never half
        for name, key in staging.items():
            if acc if name == "accounts" else cl:
                swap.rename(key, self._key(name))
            else:
                swap.delete(self._key(name))
        swap.incr(self._key("generation"))
        result: list[Any] = swap.execute()
        return int(result[-1])

    def close(self) -> None:
        self._r.close()


def open_store(uri: str) -> DecisionStore:
    """A decision store from its URI: ``sqlite:///abs/path.db``, ``sqlite://rel/path.db`` or
    ``redis://host:port/db?prefix=dw``.

    >>> open_store("mysql://x")
    Traceback (most recent call last):
    ...
    distillwatch.core.errors.DistillwatchError: decision store 'mysql://x': use sqlite://PATH or redis://HOST:PORT
    """
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        path = (parsed.netloc + parsed.path) if parsed.netloc else parsed.path
        if not path:
            raise DistillwatchError(f"decision store {uri!r}: no file path")
        return SqliteDecisionStore(uri, Path(path))
    if parsed.scheme in ("redis", "rediss"):
        prefix = parse_qs(parsed.query).get("prefix", ["dw"])[0]
        url = parsed._replace(query="").geturl()
        return RedisDecisionStore(uri, url, prefix)
    raise DistillwatchError(f"decision store {uri!r}: use sqlite://PATH or redis://HOST:PORT")


def publish_scan(scan_dir: str | Path, uri: str) -> tuple[int, int, int]:
    """Load a scan folder into the store at ``uri``: ``(generation, accounts, clusters)``."""
    accounts, clusters = load_scan(scan_dir)
    store = open_store(uri)
    try:
        gen = store.replace(accounts, clusters)
    finally:
        store.close()
    return gen, len(accounts), len(clusters)
