"""Runs the live scorer beside the proxy: in a worker process (default), a thread, or not at all.

Rule matching costs up to a millisecond per prompt; in its own process it uses the other core
instead of the event loop's. Batches go in event-time order through one worker, and the
findings it returns replace the ones the request path reads.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Literal

from distillwatch.core.values import Finding
from distillwatch.gateway.online import LiveConfig, LiveScorer

log = logging.getLogger("distillwatch.gateway")

_SCORER: LiveScorer | None = None


def _init(config: LiveConfig) -> None:
    global _SCORER
    _SCORER = LiveScorer(config)


def _score(batch: list[dict[str, Any]]) -> dict[str, Finding]:
    assert _SCORER is not None
    _SCORER.update(batch)
    return {a: f for a in {c["account_id"] for c in batch} if (f := _SCORER.finding(a))}


def slim(record: dict[str, Any]) -> dict[str, Any]:
    """The parts of a call record the live scorer reads (less to send to the worker)."""
    req = record.get("request") or {}
    return {
        "account_id": record["account_id"],
        "_ts": record["_ts"],
        "request": {
            "messages": req.get("messages"),
            "system": req.get("system"),
            "logprobs": req.get("logprobs"),
            "n": req.get("n"),
        },
    }


class LiveRunner:
    """Feeds call records to a :class:`LiveScorer` off the event loop; :meth:`finding` is O(1)."""

    def __init__(
        self, config: LiveConfig, mode: Literal["process", "thread", "off"] = "process"
    ) -> None:
        self.config, self.mode = config, mode
        self.findings: dict[str, Finding] = {}
        self.scored = 0
        self.dropped = 0
        self._outstanding = 0
        self._queue: asyncio.Queue[list[dict[str, Any]]] | None = None
        self._pool: Executor | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.mode == "off":
            return
        if self.mode == "process":
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(1, ctx, initializer=_init, initargs=(self.config,))
        else:
            self._pool = ThreadPoolExecutor(1, initializer=_init, initargs=(self.config,))
        self._queue = asyncio.Queue(maxsize=1000)
        self._task = asyncio.create_task(self._run(), name="dw-live-scorer")

    def submit(self, records: list[dict[str, Any]]) -> None:
        """Queue a batch; when the scorer falls behind, batches are dropped (and counted)."""
        if self._queue is None:
            return
        try:
            self._queue.put_nowait([slim(r) for r in records])
            self._outstanding += len(records)
        except asyncio.QueueFull:
            self.dropped += len(records)

    def finding(self, account_id: str) -> Finding | None:
        return self.findings.get(account_id)

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._queue.get()
            while not self._queue.empty() and len(batch) < 2048:  # catch up in bigger batches
                batch.extend(self._queue.get_nowait())
            try:
                found = await loop.run_in_executor(self._pool, _score, batch)
                self.findings.update(found)
                self.scored += len(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live scorer failed on a batch of %d", len(batch))
            finally:
                self._outstanding -= len(batch)

    async def idle(self, timeout: float = 30.0) -> None:
        """Wait until every submitted batch is scored (tests, replays)."""

        async def wait() -> None:
            while self._outstanding > 0:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(wait(), timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
