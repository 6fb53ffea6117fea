"""Drain a JetStream stream of gateway call records into segment files ``scan`` reads.

A fleet of gateways publishes every call record to JetStream (the ``nats://`` sink). The drain
is one durable pull consumer: it fetches records, gathers them into a segment, writes the
segment (whole or not at all, in the canonical schema) and only then acknowledges the
segment's messages. A drain killed at any point loses nothing: what it had not acknowledged is
redelivered after ``ack_wait`` (the drain tells the server it is still working on the
messages it holds, so a long segment is not redelivered while it is being gathered). A record whose ``request_id`` is already in the open segment or
in one of the last ``dedupe_segments`` segments written (read back from the output folder on
start) is acknowledged and dropped, so a redelivery writes no call twice.

Run as a service (no limits) or as a batch job: ``max_messages`` and ``idle_seconds`` end it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from distillwatch.core.errors import DistillwatchError
from distillwatch.gateway.eventlog import ensure_stream, parse_nats_uri
from distillwatch.ingest import read_calls, write_table

log = logging.getLogger("distillwatch.gateway")

_DURABLE = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class DrainConfig:
    """What to drain and where; see ``distillwatch gateway drain --help``."""

    uri: str
    out: Path
    durable: str = "distillwatch-drain"
    fmt: str = "parquet"
    segment_rows: int = 50_000
    segment_seconds: float = 60.0
    max_messages: int | None = None
    idle_seconds: float | None = None
    batch: int = 1000
    ack_wait: float | None = None  # default: 2 x segment_seconds + 30 s
    dedupe_segments: int = 8

    def check(self) -> None:
        if not _DURABLE.match(self.durable):
            raise DistillwatchError(f"durable {self.durable!r}: use letters, digits, - and _")
        if self.fmt not in ("parquet", "jsonl"):
            raise DistillwatchError(f"format {self.fmt!r}: use parquet or jsonl")
        if self.segment_rows < 1 or self.segment_seconds <= 0 or self.batch < 1:
            raise DistillwatchError("segment rows, segment seconds and batch must be positive")
        parse_nats_uri(self.uri)


@dataclass(slots=True)
class DrainStats:
    """Counters of one drain run; ``written`` + ``duplicates`` + ``malformed`` = acknowledged."""

    received: int = 0
    written: int = 0
    duplicates: int = 0
    malformed: int = 0
    redelivered: int = 0
    segments: int = 0
    acknowledged: int = 0
    stopped_by: str = ""


def _request_id(msg: Any) -> str | None:
    rid = (msg.headers or {}).get("Nats-Msg-Id")
    if rid:
        return str(rid)
    try:
        doc = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        return None
    value = doc.get("request_id") if isinstance(doc, dict) else None
    return value if isinstance(value, str) and value else None


class _Segments:
    """Writes segments into the output folder and remembers the request ids of the last few."""

    def __init__(self, cfg: DrainConfig) -> None:
        self.cfg = cfg
        self.out = cfg.out
        self.tmp = cfg.out / ".drain"
        self.out.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(exist_ok=True)
        self.window: deque[set[str]] = deque(maxlen=max(cfg.dedupe_segments, 0))
        if cfg.dedupe_segments > 0:
            for path in self._written()[-cfg.dedupe_segments :]:
                self.window.append(self._ids_of(path))

    def _written(self) -> list[Path]:
        suffix = "." + self.cfg.fmt
        return sorted(self.out.glob(f"calls-*-{self.cfg.durable}-*{suffix}"))

    def _ids_of(self, path: Path) -> set[str]:
        try:
            if path.suffix == ".parquet":
                import pyarrow.parquet as pq

                col = pq.read_table(path, columns=["request_id"]).column("request_id")
                return {v for v in col.to_pylist() if v}
            docs = (orjson.loads(ln) for ln in path.read_bytes().splitlines() if ln.strip())
            return {d["request_id"] for d in docs if isinstance(d.get("request_id"), str)}
        except Exception as exc:  # an unreadable old segment only narrows the dedupe window
            log.warning("drain: cannot read request ids of %s: %s", path, exc)
            return set()

    def seen(self, rid: str) -> bool:
        return any(rid in ids for ids in self.window)

    def write(self, lines: list[bytes], first_seq: int) -> tuple[int, int]:
        """Write one segment; ``(rows written, malformed records skipped)``."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"calls-{stamp}-{self.cfg.durable}-{first_seq:012d}"
        raw = self.tmp / (name + ".jsonl")
        raw.write_bytes(b"\n".join(lines) + b"\n")
        try:
            result = read_calls(raw)
            for err in result.errors[:3]:
                log.warning("drain: malformed record skipped: %s", err)
            if result.n_good:
                target = write_table(result.table, self.out / f"{name}.{self.cfg.fmt}")
                _fsync(target)
            return result.n_good, result.n_bad
        finally:
            raw.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Make a written segment survive a power cut before its messages are acknowledged."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):  # not every file system lets a folder be fsynced
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


async def drain(
    cfg: DrainConfig,
    on_progress: Callable[[DrainStats], None] | None = None,
    stop: asyncio.Event | None = None,
) -> DrainStats:
    """Drain ``cfg.uri`` into ``cfg.out`` until ``max_messages``, ``idle_seconds``, ``stop``
    or SIGINT/SIGTERM; the open segment is written and acknowledged before returning."""
    import nats
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    cfg.check()
    server, subject, stream = parse_nats_uri(cfg.uri)
    stats = DrainStats()
    stop = stop or asyncio.Event()
    segments = _Segments(cfg)
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
    try:
        nc = await asyncio.wait_for(
            nats.connect(server, connect_timeout=2, allow_reconnect=False), timeout=5
        )
    except Exception as exc:
        for sig in handled:
            loop.remove_signal_handler(sig)
        raise DistillwatchError(f"{cfg.uri}: cannot connect to NATS ({exc})") from None
    lines: list[bytes] = []
    msgs: list[Any] = []  # every message of the open segment, duplicates too: acked together
    ids: set[str] = set()
    opened = time.monotonic()
    first_seq = 0

    async def flush() -> None:
        nonlocal lines, msgs, ids, first_seq
        if not msgs:
            return
        if lines:
            try:
                written, bad = await asyncio.to_thread(segments.write, lines, first_seq)
            except BaseException:  # nothing acknowledged: hand the messages back at once
                for msg in msgs:
                    with contextlib.suppress(Exception):
                        await msg.nak()
                raise
            stats.written += written
            stats.malformed += bad
            stats.segments += 1 if written else 0
        for msg in msgs:  # only now: the segment is on disk
            await msg.ack()
        await nc.flush()
        stats.acknowledged += len(msgs)
        segments.window.append(ids)
        lines, msgs, ids = [], [], set()

    try:
        js = nc.jetstream(timeout=10)
        await ensure_stream(js, stream, subject)
        ack_wait = cfg.ack_wait if cfg.ack_wait is not None else 2 * cfg.segment_seconds + 30
        consumer = ConsumerConfig(
            durable_name=cfg.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ack_wait,
            max_ack_pending=cfg.segment_rows + cfg.batch,
        )
        psub = await js.pull_subscribe(subject, durable=cfg.durable, stream=stream, config=consumer)
        # an existing durable keeps its own settings: hold messages by the server's ack_wait
        info = await psub.consumer_info()
        if info.config.ack_wait and info.config.ack_wait != ack_wait:
            log.info(
                "drain: consumer %s keeps its ack_wait of %g s", cfg.durable, info.config.ack_wait
            )
            ack_wait = float(info.config.ack_wait)
        last_message = touched = time.monotonic()
        while not stop.is_set():
            if cfg.max_messages is not None and stats.received >= cfg.max_messages:
                stats.stopped_by = "max-messages"
                break
            want = min(cfg.batch, cfg.segment_rows - len(lines))
            if cfg.max_messages is not None:
                want = min(want, cfg.max_messages - stats.received)
            now = time.monotonic()
            if msgs and now - touched >= ack_wait / 3:  # still held: not to be redelivered
                for msg in msgs:
                    await msg.in_progress()
                touched = now
            wait = min(1.0, touched + ack_wait / 3 - now)
            if msgs:
                wait = min(wait, opened + cfg.segment_seconds - now)
            if cfg.idle_seconds is not None:
                wait = min(wait, last_message + cfg.idle_seconds - now)
            try:
                got = await psub.fetch(max(want, 1), timeout=max(wait, 0.2))
            except (NatsTimeout, TimeoutError):
                got = []
            now = time.monotonic()
            if got:
                last_message = now
            for msg in got:
                stats.received += 1
                meta = msg.metadata
                if meta.num_delivered and meta.num_delivered > 1:
                    stats.redelivered += 1
                if not msgs:
                    opened, touched, first_seq = now, now, int(meta.sequence.stream)
                msgs.append(msg)
                rid = _request_id(msg)
                if rid is not None and (rid in ids or segments.seen(rid)):
                    stats.duplicates += 1
                    continue
                if rid is not None:
                    ids.add(rid)
                lines.append(msg.data)
            if msgs and (len(lines) >= cfg.segment_rows or now - opened >= cfg.segment_seconds):
                await flush()
            if on_progress is not None:
                on_progress(stats)
            if cfg.idle_seconds is not None and now - last_message >= cfg.idle_seconds:
                stats.stopped_by = "idle"
                break
        else:
            stats.stopped_by = "signal"
        await flush()
        if on_progress is not None:
            on_progress(stats)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        with contextlib.suppress(Exception):
            await nc.close()
    return stats
