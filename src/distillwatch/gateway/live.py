"""Runs the live scorer beside the proxy: in a worker process (default), a thread, or not at all.

The request path only appends a call's slim record to a buffer; every ``interval`` seconds the
buffer goes to the worker as one batch (one round trip per interval, whatever the rate), and
the findings it returns replace the ones the request path reads. Batches go in event-time
order through one worker, so findings equal those of scoring call by call.

The worker process talks to the event loop over a socket pair (length-prefixed JSON frames),
so the gateway process runs no helper thread for it: on a loaded machine, a thread preempted
while it holds the GIL stalls the event loop for a whole scheduler time slice.

On a small machine the worker competes with the proxy for the CPU, so by default it runs at
``SCHED_IDLE`` (Linux): it only uses time no other process wants. Its staleness is bounded all
the same: when the oldest call not yet scored has waited longer than ``max_lag`` seconds, the
worker is raised to normal priority until it has caught up (this needs the right to raise a
priority: root, ``CAP_SYS_NICE`` or ``RLIMIT_NICE`` >= 20; without it the worker runs at nice
19 instead, which a parent can lower but never raise again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import orjson

from distillwatch.core.values import Evidence, Finding
from distillwatch.gateway.online import LiveConfig, LiveScorer

log = logging.getLogger("distillwatch.gateway")

Priority = Literal["idle", "normal"]

_SCORER: LiveScorer | None = None
_CAP_SYS_NICE = 1 << 23
_HEAD = 4  # bytes of a frame's length prefix


def can_raise_priority() -> bool:
    """Whether this process may move a process of its own back from ``SCHED_IDLE`` (or a
    higher nice value) to normal priority: ``CAP_SYS_NICE``, or ``RLIMIT_NICE`` >= 20."""
    try:
        import resource

        if resource.getrlimit(resource.RLIMIT_NICE)[0] >= 20:
            return True
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & _CAP_SYS_NICE)
    except (ImportError, AttributeError, OSError, ValueError):
        pass
    return False


def set_priority(pid: int, priority: Priority) -> bool:
    """Put process ``pid`` (0: this one) at ``SCHED_IDLE`` or back at normal priority;
    False where the OS has no such policy or refuses."""
    try:
        policy = os.SCHED_IDLE if priority == "idle" else os.SCHED_OTHER
        os.sched_setscheduler(pid, policy, os.sched_param(0))
    except (AttributeError, OSError):
        return False
    return True


def die_with_parent() -> None:
    """Have Linux kill this worker process when the gateway that started it dies, even by
    SIGKILL: else it lives on, holding the gateway's stdout and stderr open; elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the gateway died before the request: nobody to serve
        os._exit(0)


def _init(config: LiveConfig, priority: Priority, boostable: bool) -> None:
    global _SCORER
    _SCORER = LiveScorer(config)  # compiling the rules at normal priority: a prompt start
    if priority == "idle" and not (boostable and set_priority(0, "idle")):
        with contextlib.suppress(OSError):
            os.nice(19)  # no way back from SCHED_IDLE: the lowest priority one can leave


def _score(batch: list[dict[str, Any]]) -> dict[str, Finding]:
    assert _SCORER is not None
    _SCORER.update(batch)
    return {a: f for a in {c["account_id"] for c in batch} if (f := _SCORER.finding(a))}


def _frame(doc: Any) -> bytes:
    body = orjson.dumps(doc)
    return len(body).to_bytes(_HEAD, "big") + body


def finding_row(f: Finding) -> list[Any]:
    """A finding as JSON-able lists; :func:`finding_from_row` reads it back.

    >>> f = Finding("a", 0.5, "watch", (Evidence("s", 1.0, 0.0, 0.2, "src"),))
    >>> finding_from_row(orjson.loads(orjson.dumps(finding_row(f)))) == f
    True
    """
    return [f.subject, f.score, f.tier, [list(_evidence(e)) for e in f.evidence]]


def _evidence(e: Evidence) -> tuple[str, float, float, float, str]:
    return e.signal, e.value, e.baseline, e.weight, e.source


def finding_from_row(row: list[Any]) -> Finding:
    subject, score, tier, evidence = row
    return Finding(subject, score, tier, tuple(Evidence(*e) for e in evidence))


def _serve(sock: socket.socket, config: LiveConfig, priority: Priority, boostable: bool) -> None:
    """The worker process: a hello with its pid once the rules are compiled, then for every
    batch frame read, a frame of the findings of the accounts in it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway decides when it stops
    die_with_parent()
    _init(config, priority, boostable)
    stream = sock.makefile("rb")
    sock.sendall(_frame({"pid": os.getpid()}))
    while True:
        head = stream.read(_HEAD)
        if len(head) < _HEAD:
            return  # the gateway closed the socket (or died)
        batch = orjson.loads(stream.read(int.from_bytes(head, "big")))
        try:
            reply: Any = [finding_row(f) for f in _score(batch).values()]
        except Exception as exc:  # a bad batch must not kill the worker and its state
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sock.sendall(_frame(reply))


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


class _Worker:
    """The worker process and the event loop's ends of its socket."""

    def __init__(
        self,
        process: multiprocessing.process.BaseProcess,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.process, self.reader, self.writer = process, reader, writer
        self.pid: int | None = None

    @classmethod
    async def spawn(cls, config: LiveConfig, priority: Priority, boostable: bool) -> _Worker:
        mine, theirs = socket.socketpair()
        process = multiprocessing.get_context("spawn").Process(
            target=_serve,
            args=(theirs, config, priority, boostable),
            name="distillwatch-live-scorer",
            daemon=True,
        )
        process.start()
        theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=mine)
        return cls(process, reader, writer)

    async def receive(self) -> Any:
        head = await self.reader.readexactly(_HEAD)
        return orjson.loads(await self.reader.readexactly(int.from_bytes(head, "big")))

    async def score(self, batch: list[dict[str, Any]]) -> dict[str, Finding]:
        self.writer.write(_frame(batch))
        await self.writer.drain()
        reply = await self.receive()
        if isinstance(reply, dict):
            raise RuntimeError(f"live scorer worker: {reply['error']}")
        return {row[0]: finding_from_row(row) for row in reply}

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        await asyncio.to_thread(self.process.join, 5)
        if self.process.is_alive():
            self.process.kill()
            await asyncio.to_thread(self.process.join, 5)


class LiveRunner:
    """Feeds call records to a :class:`LiveScorer` off the event loop; :meth:`finding` is O(1).

    ``interval``: seconds between batches; ``max_lag``: seconds the oldest unscored call may
    wait before an idle-priority worker is raised to normal priority; ``max_pending``: calls
    buffered or in flight beyond which new ones are dropped (and counted); ``max_batch``:
    the most calls sent in one batch (a catch-up after a stall goes in several).
    """

    def __init__(
        self,
        config: LiveConfig,
        mode: Literal["process", "thread", "off"] = "process",
        *,
        interval: float = 0.05,
        max_lag: float = 2.0,
        priority: Priority = "idle",
        max_pending: int = 100_000,
        max_batch: int = 2048,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config, self.mode, self.priority = config, mode, priority
        self.interval, self.max_lag = interval, max_lag
        self.max_pending, self.max_batch = max_pending, max_batch
        self.clock = clock
        self.findings: dict[str, Finding] = {}
        self.scored = 0
        self.dropped = 0
        self.batches = 0
        self.boosts = 0
        self.boosted = False
        self._boostable = mode == "process" and priority == "idle" and can_raise_priority()
        self._buffer: list[dict[str, Any]] = []
        self._buffer_since: float | None = None  # when the oldest buffered call came
        self._flight = 0
        self._flight_since: float | None = None
        self._worker: _Worker | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None

    # --- request path ---------------------------------------------------------------------------

    def submit(self, records: list[dict[str, Any]]) -> None:
        """Buffer calls for the next batch; O(len(records)), never blocks. Beyond
        ``max_pending`` calls waiting, new ones are dropped (and counted)."""
        if self._task is None:
            return
        room = self.max_pending - len(self._buffer) - self._flight
        if room < len(records):
            self.dropped += len(records) - max(room, 0)
            records = records[: max(room, 0)]
        if not records:
            return
        if not self._buffer:
            self._buffer_since = self.clock()
        self._buffer.extend(slim(r) for r in records)

    def finding(self, account_id: str) -> Finding | None:
        return self.findings.get(account_id)

    @property
    def pid(self) -> int | None:
        """The worker process's id once it is ready (process mode)."""
        return self._worker.pid if self._worker is not None else None

    @property
    def pending(self) -> int:
        """Calls submitted and not yet scored (buffered or in the batch in flight)."""
        return len(self._buffer) + self._flight

    @property
    def lag(self) -> float:
        """Seconds the oldest call not yet scored has waited (0 when every call is scored):
        how far behind the traffic the live findings may be."""
        since = [t for t in (self._flight_since, self._buffer_since) if t is not None]
        return max(0.0, self.clock() - min(since)) if since else 0.0

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.mode == "off":
            return
        if self.mode == "process" and self.priority == "idle" and not self._boostable:
            log.warning(
                "live scorer: no right to raise a priority (CAP_SYS_NICE or RLIMIT_NICE >= 20);"
                " its worker runs at nice 19, and its lag is not bounded"
            )
        if self.mode == "thread":
            self._pool = ThreadPoolExecutor(
                1, initializer=_init, initargs=(self.config, "normal", False)
            )
        self._task = asyncio.create_task(self._run(), name="dw-live-scorer")

    async def _run(self) -> None:
        while True:
            if self.mode == "process" and (self._worker is None or self._worker.pid is None):
                try:
                    await self._start_worker()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.error("live scorer: cannot start its worker (%s); retrying", exc)
                    await self._drop_worker()
                    await asyncio.sleep(1.0)
                    continue
            await asyncio.sleep(self.interval)
            self._watch()
            if not self._buffer:
                continue
            batch = self._buffer[: self.max_batch]
            del self._buffer[: self.max_batch]
            self._flight, self._flight_since = len(batch), self._buffer_since
            if not self._buffer:  # else the rest is at least as old: keep the bound
                self._buffer_since = None
            try:
                found = await self._wait(self._score(batch))
                self.findings.update(found)
                self.scored += len(batch)
                self.batches += 1
            except asyncio.CancelledError:
                raise
            except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
                self.dropped += len(batch)
                log.error("live scorer: its worker died (%s); starting a new one", exc)
                await self._drop_worker()
            except Exception:
                log.exception("live scorer failed on a batch of %d", len(batch))
                self.dropped += len(batch)
            finally:
                self._flight, self._flight_since = 0, None
            self._watch()

    async def _start_worker(self) -> None:
        if self._worker is None:
            self._worker = await _Worker.spawn(self.config, self.priority, self._boostable)
            self.boosted = False
        hello = await self._wait(self._worker.receive())  # once its rules are compiled
        self._worker.pid = int(hello["pid"])

    async def _drop_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.close()

    def _score(self, batch: list[dict[str, Any]]) -> Awaitable[dict[str, Finding]]:
        if self._worker is not None:
            return self._worker.score(batch)
        return asyncio.get_running_loop().run_in_executor(self._pool, _score, batch)

    async def _wait(self, work: Awaitable[Any]) -> Any:
        """The result of ``work``, watching the lag every interval while it runs."""
        fut = asyncio.ensure_future(work)
        try:
            while not fut.done():
                await asyncio.wait({fut}, timeout=self.interval)
                self._watch()
        except asyncio.CancelledError:
            fut.cancel()
            raise
        return fut.result()

    def _watch(self) -> None:
        """Raise a lagging idle-priority worker to normal priority; lower it once caught up."""
        pid = self.pid
        if not self._boostable or pid is None:
            return
        lag = self.lag
        if not self.boosted and lag > self.max_lag:
            if set_priority(pid, "normal"):
                self.boosted = True
                self.boosts += 1
                log.info("live scorer: %.1f s behind; worker at normal priority", lag)
        elif self.boosted and lag <= self.max_lag / 2 and set_priority(pid, "idle"):
            self.boosted = False

    async def idle(self, timeout: float = 30.0) -> None:
        """Wait until every submitted call is scored (tests, replays)."""

        async def wait() -> None:
            while self.pending > 0:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(wait(), timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._drop_worker()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
