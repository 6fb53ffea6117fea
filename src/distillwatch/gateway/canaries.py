"""Canary facts for the ``degrade`` action: which fact a call gets, and recording what was planted.

An account's canaries rotate with event time: the call at ``ts`` gets one of
``facts_per_period`` facts of period ``floor(ts / period_seconds)``, picked by its request id, so
index = period × facts_per_period + pick. Every gateway of a fleet computes the same facts from
(secret, account, index) with no shared state, and a replayed log plants the same ones.

Planted canaries are counted in memory (O(1) on the request path) and written to the registry
(:func:`~distillwatch.watermark.countermeasures.open_registry`: SQLite or Redis) by a background
task every ``flush_seconds``. The event log carries each call's canary id too (``extra.gateway
.canary``), so the log stays the durable record should the registry miss a flush.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass

from distillwatch.watermark.countermeasures import (
    Canary,
    CanaryStore,
    ServedCanary,
    canary_for,
    open_registry,
)

log = logging.getLogger("distillwatch.gateway")


@dataclass(frozen=True, slots=True)
class PlantedCanary:
    """The canary fact one call carries and its index for :func:`canary_for`."""

    canary: Canary
    index: int

    def record(self) -> dict[str, object]:
        """What the call's log record says about it (``extra.gateway.canary``)."""
        return {"canary_id": self.canary.canary_id, "index": self.index}


def canary_index(ts: float, request_id: str, period_seconds: float, facts_per_period: int) -> int:
    """The index of the canary a call at event time ``ts`` gets.

    >>> canary_index(86400 * 3 + 5, "dwreq_00000002", 86400, 4)
    14
    """
    period = math.floor(ts / period_seconds)
    pick = int(request_id[-8:], 16) % facts_per_period if facts_per_period > 1 else 0
    return period * facts_per_period + pick


@dataclass(slots=True)
class CanaryStats:
    """Counters of planted canaries, shown in ``/health``."""

    planted: int = 0
    recorded: int = 0
    flushes: int = 0
    errors: int = 0
    dropped: int = 0


class CanaryRecorder:
    """Picks each degraded call's canary fact and records the planted ones off the request path."""

    def __init__(
        self,
        secret: bytes,
        registry: str | None,
        *,
        period_seconds: float = 86400.0,
        facts_per_period: int = 4,
        flush_seconds: float = 1.0,
        max_pending: int = 100_000,
    ) -> None:
        self.secret, self.uri = secret, registry
        self.period_seconds, self.facts_per_period = period_seconds, facts_per_period
        self.flush_seconds, self.max_pending = flush_seconds, max_pending
        self.stats = CanaryStats()
        self._pending: dict[str, ServedCanary] = {}
        self._store: CanaryStore | None = None  # opened on the first flush: no file until needed
        self._task: asyncio.Task[None] | None = None

    def pick(self, account_id: str, ts: float, request_id: str) -> PlantedCanary:
        """The canary fact of one call (pure: secret, account, event time, request id)."""
        index = canary_index(ts, request_id, self.period_seconds, self.facts_per_period)
        return PlantedCanary(canary_for(account_id, self.secret, index), index)

    def planted(self, p: PlantedCanary, ts: float) -> None:
        """Count one served canary; O(1), never blocks, never raises."""
        self.stats.planted += 1
        if self.uri is None:
            return
        cid = p.canary.canary_id
        seen = self._pending.get(cid)
        if seen is None:
            if len(self._pending) >= self.max_pending:
                self.stats.dropped += 1
                return
            self._pending[cid] = ServedCanary(p.canary, ts, ts, 1, p.index)
        else:
            self._pending[cid] = ServedCanary(
                p.canary,
                min(seen.first_served, ts),
                max(seen.last_served, ts),
                seen.count + 1,
                p.index,
            )

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        if self.uri is not None and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="dw-canaries")

    async def stop(self) -> None:
        """Write what is pending (one last try), then close the registry."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
            self._store = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            await self.flush()

    async def flush(self) -> int:
        """Write the pending counts to the registry; on failure they stay pending."""
        if not self._pending or self.uri is None:
            return 0
        rows, self._pending = self._pending, {}
        try:
            await asyncio.to_thread(self._write, list(rows.values()))
        except Exception as exc:  # a registry outage: keep the counts, retry next flush
            self.stats.errors += 1
            log.warning("canaries: cannot record in %s: %s", self.uri, exc)
            for cid, row in rows.items():
                self._merge_back(cid, row)
            return 0
        self.stats.flushes += 1
        self.stats.recorded += sum(r.count for r in rows.values())
        return len(rows)

    def _write(self, rows: list[ServedCanary]) -> None:
        if self._store is None:
            assert self.uri is not None
            self._store = open_registry(self.uri)
        self._store.record_served(rows)

    def _merge_back(self, cid: str, row: ServedCanary) -> None:
        now = self._pending.get(cid)
        if now is None:
            self._pending[cid] = row
            return
        self._pending[cid] = ServedCanary(
            row.canary,
            min(row.first_served, now.first_served),
            max(row.last_served, now.last_served),
            row.count + now.count,
            row.index,
        )
