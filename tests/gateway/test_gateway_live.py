"""Workers beside the proxy: the live scorer (batches on a timer, an idle-priority process,
a bounded lag) and the Parquet writer of the event log; none outlives a killed gateway."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from gateway_procs import Gw, Stub

from distillwatch.gateway import LiveConfig, LiveScorer, OnlineRules
from distillwatch.gateway.eventlog import FileSink
from distillwatch.gateway.events import Capture, call_record
from distillwatch.gateway.live import LiveRunner, can_raise_priority
from distillwatch.gateway.online import _GROUP_PROGRAM
from distillwatch.gateway.values import Subject
from distillwatch.ingest import read_calls

needs_sched_idle = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not can_raise_priority(),
    reason="needs Linux SCHED_IDLE and the right to raise a priority",
)


def _campaign(n: int, t0: float = 1_000_000.0, words: int = 10) -> list[dict[str, Any]]:
    """Records as the event log hands them over: a harvester every 2 s, and a person."""
    out = []
    for i in range(n):
        filler = " ".join(f"w{i}x{j}" for j in range(words))
        out.append(
            {
                "account_id": "bot",
                "_ts": t0 + 2 * i,
                "request": {
                    "messages": [
                        {
                            "role": "user",
                            "content": f"Solve problem {i}. Show your full internal reasoning "
                            f"before answering. {filler}",
                        }
                    ],
                    "logprobs": True,
                },
            }
        )
        out.append(
            {
                "account_id": "person",
                "_ts": t0 + 97 * i,
                "request": {"messages": [{"role": "user", "content": f"bread recipe {i}"}]},
            }
        )
    return out


def test_rule_groups_stay_within_the_dfa_budget() -> None:
    for c in OnlineRules().compiled:
        for group in (*c.patterns, *c.exclude):
            assert group.programsize <= _GROUP_PROGRAM or "|(?:" not in group.pattern


@needs_sched_idle
def test_worker_at_idle_priority_scores_like_call_by_call_in_one_batch_per_interval() -> None:
    records = _campaign(60)
    reference = LiveScorer()
    for r in records:
        reference.update([r])

    async def run() -> LiveRunner:
        runner = LiveRunner(LiveConfig(), "process", interval=0.5, max_lag=60.0)
        await runner.start()
        try:
            for r in records:  # 120 submits well within one interval
                runner.submit([r])
            await runner.idle(timeout=120)
            assert runner.pid is not None
            assert os.sched_getscheduler(runner.pid) == os.SCHED_IDLE
            return runner
        finally:
            await runner.stop()

    runner = asyncio.run(run())
    assert runner.scored == len(records) and runner.dropped == 0
    assert runner.batches == 1 and runner.boosts == 0
    for account in ("bot", "person"):
        mine, ref = runner.finding(account), reference.finding(account)
        assert mine is not None and ref is not None
        assert (mine.tier, round(mine.score, 9)) == (ref.tier, round(ref.score, 9))
    bot = runner.finding("bot")
    assert bot is not None and bot.tier == "block"


@needs_sched_idle
def test_a_lagging_worker_is_raised_to_normal_priority_until_it_has_caught_up() -> None:
    # ~2 kB prompts, never seen: on an idle machine still ~0.5 s of rule matching, far past a
    # 20 ms lag bound (at 1000 calls and 0.2 s an idle CI machine once caught up unboosted)
    records = _campaign(2000, words=300)

    async def run() -> tuple[LiveRunner, set[int]]:
        runner = LiveRunner(LiveConfig(), "process", interval=0.01, max_lag=0.02)
        await runner.start()
        seen: set[int] = set()
        try:
            while runner.pid is None:  # the worker is up (rules compiled)
                await asyncio.sleep(0.05)
            runner.submit(records)
            while runner.pending:
                seen.add(os.sched_getscheduler(runner.pid))
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            seen.add(-os.sched_getscheduler(runner.pid) - 1)  # after: stored negated
            return runner, seen
        finally:
            await runner.stop()

    runner, seen = asyncio.run(run())
    assert runner.boosts >= 1 and not runner.boosted
    assert os.SCHED_OTHER in seen  # raised while behind
    assert -os.SCHED_IDLE - 1 in seen  # and back at idle once caught up
    assert runner.scored == len(records) and runner.dropped == 0


def test_lag_and_the_pending_bound_with_an_injected_clock() -> None:
    now = [100.0]

    async def run() -> LiveRunner:
        runner = LiveRunner(
            LiveConfig(), "thread", interval=3600, max_pending=5, clock=lambda: now[0]
        )
        await runner.start()
        try:
            assert runner.lag == 0.0
            runner.submit(_campaign(2))  # 4 calls buffered at t=100
            now[0] = 103.5
            runner.submit(_campaign(1))  # 2 more: one fits, one is dropped
            assert runner.pending == 5 and runner.dropped == 1
            assert runner.lag == pytest.approx(3.5)  # the oldest call's wait, not the newest
            return runner
        finally:
            await runner.stop()

    runner = asyncio.run(run())
    assert runner.scored == 0 and runner.batches == 0


def test_a_worker_that_dies_is_replaced_and_scoring_goes_on() -> None:
    records = _campaign(30)

    async def run() -> tuple[LiveRunner, int, int]:
        runner = LiveRunner(LiveConfig(), "process", interval=0.02, max_lag=60.0)
        await runner.start()
        try:
            runner.submit(records[:20])
            await runner.idle(timeout=120)
            first = runner.pid
            assert first is not None
            os.kill(first, signal.SIGKILL)
            while runner.pid in (first, None):  # noticed at the next batch, then replaced
                runner.submit(records[20:21])
                await asyncio.sleep(0.05)
            runner.submit(records[21:])
            await runner.idle(timeout=120)
            return runner, first, runner.pid
        finally:
            await runner.stop()

    runner, first, second = asyncio.run(run())
    assert second != first
    assert runner.scored >= 20 + len(records[21:])
    assert runner.finding("bot") is not None  # findings of the dead worker's time are kept


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for kids in Path(f"/proc/{pid}/task").glob("*/children"):
        out.update(int(c) for c in kids.read_text().split())
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_gateway_leaves_no_worker_behind(tmp_path: Path, stub: Stub) -> None:
    g = Gw(tmp_path, stub.url, live_mode="process", rotate_seconds=0.5)
    try:
        assert g.chat().status_code == 200
        g.wait_delivered(1)  # the delivery worker has run, the live one is up
        deadline = time.monotonic() + 60
        while not g.health()["live"]["scored"] and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = _children(g.proc.pid)
        assert len(workers) >= 2  # the live scorer and the Parquet writer (and a tracker)
    finally:
        g.stop(signal.SIGKILL)  # returns only once the gateway's stdout is closed by all
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [w for w in workers if Path(f"/proc/{w}/stat").exists()]
    zombies = [w for w in alive if Path(f"/proc/{w}/stat").read_text().split()[2] == "Z"]
    assert alive == zombies


@needs_sched_idle
def test_the_parquet_writer_runs_at_idle_priority_and_is_raised_when_slow(tmp_path: Path) -> None:
    spool = tmp_path / "wal-20260101T000000000000-gw-00000000.jsonl"
    caps = [
        Capture(
            ts=1_760_000_000.0 + i,
            request_id=f"r{i}",
            subject=Subject("acct", "org", "key_1"),
            endpoint="chat.completions",
            body={"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]},
            status=200,
            response=b'{"choices":[{"index":0,"message":{"content":"a"}}]}',
        )
        for i in range(300)
    ]
    spool.write_bytes(b"".join(orjson.dumps(call_record(c)) + b"\n" for c in caps))

    async def run() -> tuple[FileSink, int, int]:
        sink = FileSink("file://x", tmp_path / "out", "parquet", boost_after=0.001)
        await sink.start()
        try:
            pid = await asyncio.wrap_future(sink._worker().submit(os.getpid))
            before = os.sched_getscheduler(pid)
            await sink.deliver(spool, len(caps))  # takes far longer than 1 ms: raised
            return sink, before, os.sched_getscheduler(pid)
        finally:
            await sink.close()

    sink, before, after = asyncio.run(run())
    assert before == after == os.SCHED_IDLE  # idle, raised for the slow conversion, idle again
    assert sink.boosts == 1 and sink.malformed == 0
    assert read_calls(tmp_path / "out").n_good == len(caps) and not spool.exists()
