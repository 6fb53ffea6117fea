"""Pure parts of canary facts in the gateway: policy and config, planting, the recorder."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import orjson

from distillwatch.gateway import Degrade, GatewayConfig, Policy, Verdicts
from distillwatch.gateway.canaries import CanaryRecorder, canary_index
from distillwatch.gateway.enforce import StreamDegrader, degrade_payload
from distillwatch.watermark.countermeasures import ServedCanary, canary_for, open_registry

SECRET = b"unit-canary-secret"


def test_policy_and_config_take_canary_facts(tmp_path: Path) -> None:
    policy = Policy.from_dict(
        {"rules": [{"id": "d", "action": "degrade", "degrade": {"canary_fact": True}}]}
    )
    d = policy.decide(Verdicts()).degrade
    assert d.canary_fact and not d.canary and d.active
    assert Degrade(canary=True).merge(Degrade(canary_fact=True)) == Degrade(
        canary=True, canary_fact=True
    )
    cfg = GatewayConfig.from_dict({"canary_facts_per_period": 2}, tmp_path)
    assert cfg.canary_registry == f"sqlite://{tmp_path / 'canaries.db'}"  # next to the config
    assert (cfg.canary_period_seconds, cfg.canary_facts_per_period) == (86400.0, 2)
    assert GatewayConfig.from_dict({"canary_registry": None}, tmp_path).canary_registry is None
    redis = "redis://127.0.0.1:6379/0?prefix=gw"
    assert GatewayConfig.from_dict({"canary_registry": redis}, tmp_path).canary_registry == redis


def test_the_index_rotates_with_event_time_and_spreads_over_the_period() -> None:
    picks = {canary_index(1000.0, f"dwreq_{i:032x}", 86400, 4) for i in range(64)}
    assert picks == {0, 1, 2, 3}
    assert canary_index(86400 * 2 + 1, "dwreq_" + "0" * 32, 86400, 4) == 8
    assert canary_index(5.0, "dwreq_ffff", 86400, 1) == 0


def test_degrade_payload_says_whether_it_planted() -> None:
    chat = orjson.dumps({"choices": [{"index": 0, "message": {"content": "Hi."}}]})
    out, planted = degrade_payload(chat, "chat.completions", Degrade(canary_fact=True), " X")
    assert planted and orjson.loads(out)["choices"][0]["message"]["content"] == "Hi. X"
    tools = orjson.dumps({"choices": [{"index": 0, "message": {"content": None}}]})
    assert not degrade_payload(tools, "chat.completions", Degrade(canary_fact=True), " X")[1]
    assert not degrade_payload(b"not json", "chat.completions", Degrade(), " X")[1]
    resp = orjson.dumps(
        {
            "output": [
                {"type": "message", "content": [{"type": "output_text", "text": "A"}]},
                {"type": "message", "content": [{"type": "output_text", "text": "B"}]},
            ]
        }
    )
    out, planted = degrade_payload(resp, "responses", Degrade(canary_fact=True), "!")
    texts = [i["content"][0]["text"] for i in orjson.loads(out)["output"]]
    assert planted and texts == ["A!", "B"]  # one copy of the fact per answer


def test_a_stream_cut_before_its_end_plants_nothing() -> None:
    ev = {"id": "c", "object": "chat.completion.chunk", "choices": [{"delta": {"content": "Hi"}}]}
    chunk = b"data: " + orjson.dumps(ev) + b"\n\n"
    cut = StreamDegrader("chat.completions", Degrade(canary_fact=True), " X")
    cut.feed(chunk)
    cut.close()
    assert not cut.planted
    whole = StreamDegrader("chat.completions", Degrade(canary_fact=True), " X")
    out = whole.feed(chunk + b"data: [DONE]\n\n") + whole.close()
    assert whole.planted and b'" X"' in out


def test_the_recorder_aggregates_and_keeps_counts_through_an_outage(tmp_path: Path) -> None:
    async def run() -> list[ServedCanary]:
        rec = CanaryRecorder(SECRET, f"sqlite://{tmp_path / 'r.db'}", facts_per_period=1)
        p = rec.pick("acct-1", 100.0, "dwreq_" + "0" * 32)
        assert p.canary == canary_for("acct-1", SECRET, 0) and p.index == 0
        for ts in (100.0, 130.0, 90.0):
            rec.planted(p, ts)
        rec.uri = "postgres://nowhere"  # the registry is down: counts stay pending
        assert await rec.flush() == 0 and rec.stats.errors == 1 and rec.pending == 1
        rec.planted(p, 140.0)
        rec.uri = f"sqlite://{tmp_path / 'r.db'}"
        await rec.start()
        await rec.stop()  # the last flush on the way out
        assert rec.stats.recorded == 4 and rec.pending == 0 and rec.stats.planted == 4
        reg = open_registry(tmp_path / "r.db", create=False)
        try:
            return reg.served()
        finally:
            reg.close()

    rows = asyncio.run(run())
    assert rows == [ServedCanary(canary_for("acct-1", SECRET, 0), 90.0, 140.0, 4, 0)]


def test_without_a_registry_nothing_is_written(tmp_path: Path) -> None:
    rec = CanaryRecorder(SECRET, None)
    p = rec.pick("acct-1", 0.0, "dwreq_" + "1" * 32)
    rec.planted(p, 0.0)
    assert rec.stats.planted == 1 and rec.pending == 0
    assert asyncio.run(rec.flush()) == 0


def test_the_gateway_plants_canaries_without_importing_scipy() -> None:
    code = (
        "import sys, distillwatch.gateway.proxy, distillwatch.gateway.canaries;"
        "assert 'scipy' not in sys.modules and 'torch' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_doctests() -> None:
    import doctest

    import distillwatch.gateway.canaries as canaries

    failures, tried = doctest.testmod(canaries)
    assert tried > 0 and failures == 0
