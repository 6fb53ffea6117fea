"""Faults: upstream down or slow, sink down, gateway killed mid-stream; nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import polars as pl
import pytest
from gateway_procs import HAVE_NATS, Gw, Stub, free_port, nats_server

from distillwatch.ingest import read_calls


def _code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


def test_upstream_down_is_a_clean_502(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    g = Gw(tmp_path, dead, connect_timeout=1)
    try:
        r = g.chat()
        assert r.status_code == 502 and _code(r) == "upstream_unavailable"
        assert r.json()["error"]["type"] == "server_error"
        r = g.chat(stream=True)
        assert r.status_code == 502
        r = httpx.get(g.url + "/v1/models", headers={"authorization": "Bearer sk-alice"})
        assert r.status_code == 502
        g.wait_delivered(2)
    finally:
        g.stop()
    calls = pl.from_arrow(read_calls(tmp_path / "log").table)
    assert calls["response"].struct.field("finish_reason").to_list() == ["upstream_unavailable"] * 2


def test_upstream_slow_is_a_clean_504(tmp_path: Path, stub: Stub) -> None:
    g = Gw(tmp_path, stub.url, read_timeout=0.5)
    try:
        r = httpx.post(
            g.url + "/v1/chat/completions",
            json={"model": "m", "messages": [], "stub_delay_ms": 2000},
            headers={"authorization": "Bearer sk-alice"},
            timeout=10,
        )
        assert r.status_code == 504 and _code(r) == "upstream_timeout"
        assert g.chat().status_code == 200  # the next call is fine
    finally:
        g.stop()


async def _count_stream(port: int, stream: str) -> int:
    import nats

    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    try:
        info = await nc.jetstream().stream_info(stream)
        return int(info.state.messages)
    finally:
        await nc.close()


@pytest.mark.skipif(not HAVE_NATS, reason="nats-server not installed")
def test_nats_sink_down_buffers_then_delivers_every_event(tmp_path: Path, stub: Stub) -> None:
    port = free_port()
    g = Gw(
        tmp_path, stub.url, sink=f"nats://127.0.0.1:{port}/dw.calls?stream=DWTEST", spool="spool"
    )
    try:
        n = 40
        for i in range(n):
            assert (
                g.chat(prompt=f"question {i}").status_code == 200
            )  # served while the sink is down
        deadline = time.monotonic() + 15
        while g.health()["event_log"]["delivery_failures"] == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        h = g.health()["event_log"]
        assert h["acknowledged"] == n and h["delivered"] == 0 and h["delivery_failures"] > 0
        nats = nats_server(port, tmp_path / "js")  # the sink comes back
        try:
            h = g.wait_delivered(n, timeout=30)["event_log"]
            assert h["delivered"] == n
            assert asyncio.run(_count_stream(port, "DWTEST")) == n  # none lost, none doubled
        finally:
            nats.stop()
    finally:
        g.stop()


def test_killed_mid_stream_keeps_every_acknowledged_event(tmp_path: Path, stub: Stub) -> None:
    g = Gw(tmp_path, stub.url, rotate_seconds=3600)  # nothing leaves the spool before the kill
    n = 25
    for i in range(n):
        assert g.chat(prompt=f"q{i}").status_code == 200
    deadline = time.monotonic() + 10
    while g.health()["event_log"]["acknowledged"] < n and time.monotonic() < deadline:
        time.sleep(0.05)
    acknowledged = g.health()["event_log"]["acknowledged"]
    assert acknowledged == n
    got_first = threading.Event()

    def slow_stream() -> None:
        body = {
            "model": "m",
            "stream": True,
            "stub_chunk_delay_ms": 200,
            "messages": [{"role": "user", "content": "long"}],
        }
        try:
            with httpx.stream(
                "POST",
                g.url + "/v1/chat/completions",
                json=body,
                headers={"authorization": "Bearer sk-alice"},
                timeout=30,
            ) as r:
                for _ in r.iter_bytes():
                    got_first.set()
        except httpx.HTTPError:
            pass

    t = threading.Thread(target=slow_stream)
    t.start()
    assert got_first.wait(10)
    g.stop(signal.SIGKILL)  # mid-stream, no chance to flush
    t.join(10)
    spool = list((tmp_path / "log" / ".spool").rglob("wal-*.jsonl"))
    on_disk = sum(p.read_bytes().count(b"\n") for p in spool)
    assert on_disk >= acknowledged
    # a restarted gateway on the same spool delivers them; scan-readable, none lost
    g2 = Gw(tmp_path, stub.url, node=g.config.read_text().split("node: ")[1].split()[0])
    try:
        h = g2.wait_delivered(on_disk)["event_log"]
        assert h["recovered"] == on_disk and h["delivered"] >= on_disk
    finally:
        g2.stop()
    result = read_calls(tmp_path / "log")
    assert result.n_bad == 0
    prompts = [
        m[-1]["content"]
        for m in pl.from_arrow(result.table)["request"].struct.field("messages").to_list()
    ]
    assert {f"q{i}" for i in range(n)} <= set(prompts)


def test_malformed_records_never_crash_the_log(tmp_path: Path, stub: Stub) -> None:
    g = Gw(tmp_path, stub.url)
    try:
        h = {"authorization": "Bearer sk-alice"}
        weird = [
            {"model": "m", "messages": "not a list"},
            {"model": "m", "messages": [{"role": 5}, {"role": "user", "content": {"a": 1}}]},
            {
                "model": "m",
                "messages": [],
                "max_tokens": "512",
                "temperature": "hot",
                "n": 2.5,
                "tools": "x",
                "seed": 2**70,
            },
            {"model": ["m"], "messages": []},
            {"model": "m", "prompt": 7},
        ]
        for body in weird:
            r = httpx.post(g.url + "/v1/chat/completions", content=json.dumps(body), headers=h)
            assert r.status_code in (200, 400)
        assert g.chat().status_code == 200
        g.wait_delivered(len(weird) + 1)
    finally:
        g.stop()
    result = read_calls(tmp_path / "log")
    assert result.n_bad == 0 and result.n_good == len(weird) + 1


def test_gateway_refuses_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("upstream: 5\nkeys: {k: {}}\n")
    out = subprocess.run(
        ["distillwatch", "gateway", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        executable=shutil.which("distillwatch")
        or str(Path(__import__("sys").executable).parent / "distillwatch"),
    )
    assert out.returncode == 2 and "error" in out.stderr
