"""Gateways -> JetStream -> ``distillwatch gateway drain`` -> segment files -> ``scan``, all real."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import polars as pl
import pytest
from gateway_procs import HAVE_NATS, PY, Gw, Proc, Stub, free_port, nats_server
from typer.testing import CliRunner, Result

from distillwatch.cli.main import app
from distillwatch.gateway.events import Capture, call_record
from distillwatch.gateway.values import Subject
from distillwatch.ingest import read_calls

pytestmark = pytest.mark.skipif(not HAVE_NATS, reason="nats-server not installed")


@pytest.fixture(scope="module")
def nats_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    proc = nats_server(port, tmp_path_factory.mktemp("jetstream"))
    yield port
    proc.stop()


def _drain(uri: str, out: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["gateway", "drain", uri, "--out", str(out), *args])


async def _js(port: int, work: Any) -> Any:
    import nats

    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    try:
        return await work(nc.jetstream())
    finally:
        await nc.close()


def _consumer(port: int, stream: str, durable: str) -> Any:
    return asyncio.run(_js(port, lambda js: js.consumer_info(stream, durable)))


def _publish(port: int, stream: str, subject: str, items: list[tuple[bytes, str | None]]) -> None:
    async def work(js: Any) -> None:
        from distillwatch.gateway.eventlog import ensure_stream

        await ensure_stream(js, stream, subject)
        for data, msg_id in items:
            await js.publish(subject, data, headers={"Nats-Msg-Id": msg_id} if msg_id else None)

    asyncio.run(_js(port, work))


def _segments(out: Path) -> list[Path]:
    return sorted(out.glob("calls-*.parquet"))


def test_gateway_to_nats_to_drain_to_scan(tmp_path: Path, stub: Stub, nats_port: int) -> None:
    uri = f"nats://127.0.0.1:{nats_port}/dw.e2e?stream=DWE2E"
    g = Gw(tmp_path, stub.url, sink=uri, spool="spool")
    try:
        for i, key in enumerate(["sk-alice", "sk-bob", "sk-carol"] * 3):
            assert g.chat(key=key, prompt=f"question {i}").status_code == 200
        assert g.chat(n=2).status_code == 200
        assert g.chat(stream=True).status_code == 200
        r = httpx.post(
            g.url + "/v1/responses",
            json={"model": "m", "input": "hello"},
            headers={"authorization": "Bearer sk-bob"},
        )
        assert r.status_code == 200
        n = g.health()["event_log"]["submitted"]
        assert g.wait_delivered(n)["event_log"]["delivered"] == n
    finally:
        g.stop()
    # a redelivery JetStream cannot de-duplicate (re-published without its message id, as after
    # the stream's duplicate window) and a message that is not a call record
    first = asyncio.run(_js(nats_port, lambda js: js.get_msg("DWE2E", 1))).data
    _publish(nats_port, "DWE2E", "dw.e2e", [(first, None), (b"not a record", None)])

    out = tmp_path / "drained"
    res = _drain(
        uri,
        out,
        "--durable",
        "e2e",
        "--segment-rows",
        "4",
        "--max-messages",
        str(n + 2),
        "--idle-seconds",
        "10",
    )
    assert res.exit_code == 0, res.output
    assert f"{n + 2} message(s): {n} call(s) written" in res.output
    assert "1 duplicate(s) dropped, 1 malformed" in res.output
    assert len(_segments(out)) >= 3  # rotated by --segment-rows
    info = _consumer(nats_port, "DWE2E", "e2e")
    assert info.num_ack_pending == 0 and info.num_pending == 0  # every message acknowledged
    result = read_calls(out)
    assert result.n_bad == 0 and result.n_good == n
    calls = pl.from_arrow(result.table)
    assert calls["request_id"].n_unique() == n
    assert orjson.loads(first)["request_id"] in calls["request_id"].to_list()
    assert set(calls["endpoint"].to_list()) == {"chat.completions", "responses"}
    assert {"acct-alice", "acct-bob", "acct-carol"} == set(calls["account_id"].to_list())

    scan = tmp_path / "scan"
    res = CliRunner().invoke(
        app, ["scan", str(out), "--out", str(scan), "--quiet", "--no-clusters"]
    )
    assert res.exit_code == 0, res.output
    scanned = pl.read_parquet(scan / "accounts.parquet")
    assert {"acct-alice", "acct-bob", "acct-carol"} <= set(scanned["account_id"].to_list())

    # the durable consumer resumes where it stopped: nothing new, nothing written twice
    res = _drain(uri, out, "--durable", "e2e", "--idle-seconds", "1")
    assert res.exit_code == 0 and "0 message(s)" in res.output, res.output
    assert read_calls(out).n_good == n


def _records(n: int, start: int = 0) -> list[tuple[bytes, str | None]]:
    items: list[tuple[bytes, str | None]] = []
    for i in range(start, start + n):
        cap = Capture(
            ts=1_760_000_000.0 + i,
            request_id=f"dwreq_{i:04d}",
            subject=Subject(f"acct-{i % 3}"),
            endpoint="chat.completions",
            body={"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]},
            status=200,
            response=b'{"choices":[{"index":0,"message":{"content":"a"}}]}',
        )
        items.append((orjson.dumps(call_record(cap)), cap.request_id))
    return items


def _wait_ack_pending(port: int, stream: str, durable: str, n: int, proc: Proc) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.proc.poll() is None, proc.stop()
        try:
            if _consumer(port, stream, durable).num_ack_pending >= n:
                return
        except Exception:  # the consumer is not created yet
            pass
        time.sleep(0.1)
    raise TimeoutError(proc.stop())


def test_a_killed_drain_loses_nothing_and_a_stopped_one_writes_its_segment(
    tmp_path: Path, nats_port: int
) -> None:
    uri = f"nats://127.0.0.1:{nats_port}/dw.kill?stream=DWKILL"
    out = tmp_path / "drained"
    _publish(nats_port, "DWKILL", "dw.kill", _records(30))
    args = [PY, "-m", "distillwatch.cli.main", "gateway", "drain", uri, "--out", str(out)]
    args += ["--durable", "k", "--segment-seconds", "60", "--ack-wait", "2"]
    p = Proc(args)
    _wait_ack_pending(nats_port, "DWKILL", "k", 30, p)  # fetched, held in the open segment
    p.stop(signal.SIGKILL)
    assert _segments(out) == []  # killed before writing: nothing was acknowledged
    res = _drain(uri, out, "--durable", "k", "--idle-seconds", "6", "--segment-seconds", "60")
    assert res.exit_code == 0, res.output
    assert "30 call(s) written in 1 segment(s)" in res.output and "30 redelivered" in res.output
    calls = pl.from_arrow(read_calls(out).table)
    assert sorted(calls["request_id"].to_list()) == [f"dwreq_{i:04d}" for i in range(30)]

    # SIGTERM: the open segment is written and acknowledged before the drain exits
    _publish(nats_port, "DWKILL", "dw.kill", _records(5, start=30))
    p = Proc(args)
    _wait_ack_pending(nats_port, "DWKILL", "k", 5, p)
    text = p.stop(signal.SIGTERM)
    assert p.proc.returncode == 0, text
    assert "5 call(s) written" in text and "stopped: signal" in text
    assert _consumer(nats_port, "DWKILL", "k").num_ack_pending == 0
    calls = pl.from_arrow(read_calls(out).table)
    assert sorted(calls["request_id"].to_list()) == [f"dwreq_{i:04d}" for i in range(35)]
