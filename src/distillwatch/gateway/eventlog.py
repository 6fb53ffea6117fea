"""The event log: every call, in the canonical schema, never lost once acknowledged.

The request path hands a :class:`~distillwatch.gateway.events.Capture` to
:meth:`EventLog.submit`, which only appends it to a queue. A worker turns captures into
records and appends them to a local write-ahead spool (JSONL segments); a record is
*acknowledged* once its line is written to the spool file (it then survives the gateway being
killed; with ``fsync`` also a power cut). Closed segments are delivered to the sink, retried
with back-off until the sink takes them, then removed. On start, segments left by a previous
run are delivered first (a torn last line is cut). When the queue or the spool grows past its
bound, :meth:`EventLog.accepting` turns false and the proxy refuses new calls (503) rather
than serve calls it could not log.

Sinks by URI:

- ``file:///var/log/dw?format=parquet`` (default ``parquet``; or ``jsonl``): segments become
  ``calls-<start>-<node>-<seq>.parquet`` that ``distillwatch scan`` reads directly;
- ``nats://127.0.0.1:4222/dw.calls?stream=DW_CALLS``: every record is published to JetStream
  with its ``request_id`` as ``Nats-Msg-Id``, so a re-delivered segment is de-duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

import orjson

from distillwatch.core.errors import DistillwatchError
from distillwatch.gateway.events import Capture, call_record
from distillwatch.gateway.live import can_raise_priority, die_with_parent, set_priority
from distillwatch.ingest import read_calls, write_table

log = logging.getLogger("distillwatch.gateway")


class Sink(Protocol):
    """Where closed spool segments go. :meth:`deliver` raises when it could not take one."""

    uri: str

    async def start(self) -> None: ...

    async def deliver(self, segment: Path, rows: int) -> None: ...

    async def close(self) -> None: ...


def _final_name(segment: Path, suffix: str) -> str:
    # wal-<start>-<node>-<seq>.jsonl -> calls-<start>-<node>-<seq><suffix>: deterministic, so a
    # segment delivered twice (crash after writing, before removing it) overwrites itself
    return "calls-" + segment.name.removeprefix("wal-").removesuffix(".jsonl") + suffix


def _delivery_worker(idle: bool) -> None:
    die_with_parent()
    if not (idle and set_priority(0, "idle")):
        os.nice(19)  # no way back from SCHED_IDLE without the right to raise a priority


def _to_parquet(segment: str, target: str) -> tuple[int, list[str]]:
    """In the delivery worker: a spool segment becomes a Parquet file (malformed lines are
    counted, the first few returned), then the segment is removed."""
    result = read_calls(Path(segment))
    write_table(result.table, Path(target))
    Path(segment).unlink()
    return result.n_bad, [str(e) for e in result.errors[:3]]


class FileSink:
    """Finished segments as Parquet (or JSONL) files in one folder ``scan`` reads.

    Parquet is written by a worker process started with the gateway, at ``SCHED_IDLE``
    (Linux; nice 19 without the right to raise a priority): parsing a segment holds the GIL
    and, with Arrow's and Polars' threads, both cores of a small machine for tens of
    milliseconds, which in the gateway's own process stalled the event loop at every
    rotation (p99 spikes); at nice 19 it still delayed the proxy by a few milliseconds, as
    the scheduler lets a running task finish its slice. A segment not converted
    ``boost_after`` seconds after its last write (the machine is saturated, or a backlog)
    is converted at normal priority, so that the spool cannot grow without bound.
    """

    def __init__(self, uri: str, folder: Path, fmt: str, boost_after: float = 5.0) -> None:
        if fmt not in ("parquet", "jsonl"):
            raise DistillwatchError(f"sink {uri!r}: format must be parquet or jsonl")
        self.uri, self.folder, self.fmt = uri, folder, fmt
        self.boost_after = boost_after
        self.malformed = 0
        self.boosts = 0
        self._idle = can_raise_priority()
        self._pool: ProcessPoolExecutor | None = None
        self._pid: Future[int] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    async def start(self) -> None:
        if self.fmt == "parquet":
            self._worker()  # spawned now, not amid traffic

    def _worker(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                1,
                multiprocessing.get_context("spawn"),
                initializer=_delivery_worker,
                initargs=(self._idle,),
            )
            self._pid = self._pool.submit(os.getpid)
        return self._pool

    def _boost(self) -> int | None:
        """Raise the worker to normal priority; its pid when that was done."""
        pid = self._pid
        if not self._idle or pid is None or not pid.done() or pid.exception() is not None:
            return None
        if not set_priority(pid.result(), "normal"):
            return None
        self.boosts += 1
        log.info("event log: Parquet conversion slow; its worker at normal priority")
        return pid.result()

    async def deliver(self, segment: Path, rows: int) -> None:
        if self.fmt == "jsonl":
            await asyncio.to_thread(
                os.replace, segment, self.folder / _final_name(segment, ".jsonl")
            )
            return
        pool = self._worker()
        target = self.folder / _final_name(segment, ".parquet")
        work = asyncio.get_running_loop().run_in_executor(
            pool, _to_parquet, str(segment), str(target)
        )
        boosted: int | None = None
        try:  # the wait counts from the segment's last write: a backlog converts at once
            waited = time.time() - segment.stat().st_mtime
            done, _ = await asyncio.wait({work}, timeout=max(0.0, self.boost_after - waited))
            if not done:
                boosted = self._boost()
            n_bad, errors = await work
        except BrokenProcessPool:  # the worker died: a new one for the retry
            pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._pid = None
            raise
        finally:
            if boosted is not None:
                set_priority(boosted, "idle")
        self.malformed += n_bad
        for err in errors:
            log.warning("event log: malformed record skipped: %s", err)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, True)


class NatsSink:
    """Records published one by one to a JetStream stream (created when missing)."""

    def __init__(self, uri: str, server: str, subject: str, stream: str) -> None:
        self.uri, self.server, self.subject, self.stream = uri, server, subject, stream
        self._nc: Any = None
        self._js: Any = None

    async def _connect(self) -> Any:
        if self._nc is not None and self._nc.is_connected:
            return self._js
        import nats

        await self.close()

        async def quiet(_: Exception) -> None:  # failures are counted and logged by the caller
            return None

        # nats-py keeps retrying an initial connect that is refused: bound it ourselves
        self._nc = await asyncio.wait_for(
            nats.connect(
                self.server,
                connect_timeout=2,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                error_cb=quiet,
            ),
            timeout=3,
        )
        self._js = self._nc.jetstream(timeout=5)
        await ensure_stream(self._js, self.stream, self.subject)
        return self._js

    async def start(self) -> None:
        return None  # connects at the first delivery (and after every failure)

    async def deliver(self, segment: Path, rows: int) -> None:
        js = await self._connect()
        lines = [ln for ln in segment.read_bytes().split(b"\n") if ln]
        for start in range(0, len(lines), 256):
            batch = lines[start : start + 256]
            await asyncio.gather(*(self._publish(js, line) for line in batch))
        segment.unlink()

    async def _publish(self, js: Any, line: bytes) -> None:
        rid = orjson.loads(line).get("request_id") or ""
        await js.publish(self.subject, line, headers={"Nats-Msg-Id": rid} if rid else None)

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):  # already broken: nothing left to close
                await nc.close()


async def ensure_stream(js: Any, stream: str, subject: str) -> None:
    """Create the JetStream stream when it is missing (gateways and the drain both may)."""
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(name=stream, subjects=[subject])


def parse_nats_uri(uri: str) -> tuple[str, str, str]:
    """``nats://HOST:PORT/SUBJECT?stream=NAME`` -> ``(server, subject, stream)``.

    >>> parse_nats_uri("nats://127.0.0.1:4222/dw.calls?stream=DW_CALLS")
    ('nats://127.0.0.1:4222', 'dw.calls', 'DW_CALLS')
    """
    parsed = urlparse(uri)
    if parsed.scheme != "nats" or not parsed.netloc:
        raise DistillwatchError(f"{uri!r}: expected nats://HOST:PORT/SUBJECT?stream=NAME")
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    subject = parsed.path.lstrip("/") or "distillwatch.calls"
    return f"nats://{parsed.netloc}", subject, query.get("stream", "DISTILLWATCH_CALLS")


def open_sink(uri: str) -> Sink:
    """A sink from its URI (see the module docstring).

    >>> open_sink("kafka://x")
    Traceback (most recent call last):
    ...
    distillwatch.core.errors.DistillwatchError: event sink 'kafka://x': use file://FOLDER or nats://HOST:PORT/SUBJECT
    """
    parsed = urlparse(uri)
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    if parsed.scheme == "file":
        path = (parsed.netloc + parsed.path) if parsed.netloc else parsed.path
        if not path:
            raise DistillwatchError(f"event sink {uri!r}: no folder")
        return FileSink(uri, Path(path), query.get("format", "parquet"))
    if parsed.scheme == "nats":
        return NatsSink(uri, *parse_nats_uri(uri))
    raise DistillwatchError(f"event sink {uri!r}: use file://FOLDER or nats://HOST:PORT/SUBJECT")


@dataclass(slots=True)
class LogStats:
    """Counters of the event log, exported as metrics. ``acknowledged`` = on the spool."""

    submitted: int = 0
    acknowledged: int = 0
    delivered: int = 0
    recovered: int = 0
    delivery_failures: int = 0
    refused: int = 0
    spooled_bytes: int = 0


class EventLog:
    """Queue -> write-ahead spool -> sink, with bounded memory and no work on the request path."""

    def __init__(
        self,
        sink: Sink,
        spool: Path,
        *,
        node: str = "gw",
        rotate_seconds: float = 60.0,
        rotate_rows: int = 50_000,
        max_pending: int = 100_000,
        max_spool_bytes: int = 1 << 30,
        fsync: bool = False,
        flush_interval: float = 0.005,
        on_records: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.sink, self.spool, self.node = sink, spool, node
        self.rotate_seconds, self.rotate_rows = rotate_seconds, rotate_rows
        self.max_pending, self.max_spool_bytes = max_pending, max_spool_bytes
        self.fsync, self.flush_interval = fsync, flush_interval
        self.on_records = on_records
        self.stats = LogStats()
        self._queue: deque[Capture] = deque()
        self._wake = asyncio.Event()
        self._closed: asyncio.Queue[tuple[Path, int]] = asyncio.Queue()
        self._file: Any = None
        self._segment: Path | None = None
        self._segment_rows = 0
        self._segment_opened = 0.0
        self._seq = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._pending_delivery = 0

    # --- request path ---------------------------------------------------------------------------

    def accepting(self) -> bool:
        """Whether a new call can be taken without outgrowing the queue or the spool."""
        ok = len(self._queue) < self.max_pending and self.stats.spooled_bytes < self.max_spool_bytes
        if not ok:
            self.stats.refused += 1
        return ok

    def submit(self, capture: Capture) -> None:
        """Queue one finished call; O(1), never blocks, never raises."""
        self._queue.append(capture)
        self.stats.submitted += 1
        self._wake.set()

    @property
    def pending(self) -> int:
        """Calls submitted but not yet delivered to the sink."""
        return (
            len(self._queue) + self.stats.acknowledged - self.stats.delivered + self.stats.recovered
        )

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        await self.sink.start()
        for seg in sorted(self.spool.glob("wal-*.jsonl")):
            rows = _repair(seg)
            self._seq = max(self._seq, _seq_of(seg) + 1)
            self.stats.recovered += rows
            self.stats.spooled_bytes += seg.stat().st_size
            self._pending_delivery += 1
            self._closed.put_nowait((seg, rows))
        if self.stats.recovered:
            log.warning(
                "event log: %d call(s) left in the spool by an earlier run", self.stats.recovered
            )
        self._tasks = [
            asyncio.create_task(self._writer(), name="dw-eventlog-writer"),
            asyncio.create_task(self._deliverer(), name="dw-eventlog-deliverer"),
        ]

    async def stop(self, timeout: float = 10.0) -> None:
        """Write everything queued, close the segment, and try to deliver for ``timeout`` s;
        what is not delivered stays in the spool for the next start."""
        self._stopping = True
        self._wake.set()
        writer, deliverer = self._tasks or (None, None)
        if writer is not None:
            await writer
        try:
            await asyncio.wait_for(self._drained(), timeout)
        except TimeoutError:
            log.warning("event log: %d call(s) left undelivered in %s", self.pending, self.spool)
        if deliverer is not None:
            deliverer.cancel()
            await asyncio.gather(deliverer, return_exceptions=True)
        await self.sink.close()

    async def _drained(self) -> None:
        while self._pending_delivery:
            await asyncio.sleep(0.01)

    # --- worker ---------------------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            if not self._queue:
                if self._stopping:
                    break
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._rotate_wait())
            if self._queue:
                await asyncio.sleep(self.flush_interval)  # let a batch gather
                await self._write_batch()
            if self._segment is not None and (
                self._segment_rows >= self.rotate_rows
                or time.monotonic() - self._segment_opened >= self.rotate_seconds
                or self._stopping
            ):
                await asyncio.to_thread(self._rotate)
        if self._segment is not None:
            await asyncio.to_thread(self._rotate)

    def _rotate_wait(self) -> float:
        if self._segment is None:
            return 1.0
        return max(0.01, self.rotate_seconds - (time.monotonic() - self._segment_opened))

    async def _write_batch(self) -> None:
        captures: list[Capture] = []
        while self._queue and len(captures) < 4096:
            captures.append(self._queue.popleft())
        records: list[dict[str, Any]] = []
        parts: list[bytes] = []
        for i, cap in enumerate(captures):
            try:
                rec = call_record(cap)
                line = orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE)
            except Exception as exc:  # never lose the call: log a minimal record instead
                log.exception("event log: cannot build record for %s", cap.request_id)
                cap.body, cap.response, cap.chunks, cap.error = None, None, [], f"unloggable: {exc}"
                rec = call_record(cap)
                line = orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE)
            rec["_ts"] = cap.ts
            records.append(rec)
            parts.append(line)
            if i % 32 == 31:
                await asyncio.sleep(0)  # keep the event loop responsive
        data = b"".join(parts)
        await asyncio.to_thread(self._append, data)
        self._segment_rows += len(captures)
        self.stats.acknowledged += len(captures)
        self.stats.spooled_bytes += len(data)
        if self.on_records is not None:
            try:
                self.on_records(records)
            except Exception:
                log.exception("event log: on_records callback failed")

    def _append(self, data: bytes) -> None:
        if self._file is None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            self._segment = self.spool / f"wal-{stamp}-{self.node}-{self._seq:08d}.jsonl"
            self._seq += 1
            self._file = self._segment.open("ab")
            self._segment_opened = time.monotonic()
            self._segment_rows = 0
        self._file.write(data)
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def _rotate(self) -> None:
        if self._file is None or self._segment is None:
            return
        self._file.close()
        self._pending_delivery += 1
        self._closed.put_nowait((self._segment, self._segment_rows))
        self._file, self._segment, self._segment_rows = None, None, 0

    async def _deliverer(self) -> None:
        backoff = 0.1
        while True:
            seg, rows = await self._closed.get()
            size = seg.stat().st_size if seg.exists() else 0
            while True:
                try:
                    await self.sink.deliver(seg, rows)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.stats.delivery_failures += 1
                    log.warning(
                        "event log: %s refused %s (%s); retry in %.1f s",
                        self.sink.uri,
                        seg.name,
                        exc,
                        backoff,
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
            backoff = 0.1
            self.stats.delivered += rows
            self.stats.spooled_bytes -= size
            self._pending_delivery -= 1


def _seq_of(segment: Path) -> int:
    try:
        return int(segment.stem.rsplit("-", 1)[-1])
    except ValueError:
        return 0


def _repair(segment: Path) -> int:
    """Cut a torn last line (a write cut short by a crash); the number of whole lines left."""
    data = segment.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with segment.open("r+b") as f:
            f.truncate(end)
    return data.count(b"\n")
