"""The gateway as a real process between a client and a real (stub) OpenAI-compatible server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import polars as pl
import pytest
import yaml
from gateway_procs import Gw, Stub, write_scan
from typer.testing import CliRunner

from distillwatch.cli.main import app
from distillwatch.gateway.enforce import canary_token, decode_canary
from distillwatch.ingest import read_calls

POLICY = {
    "rules": [
        {"id": "scan-block", "when": {"tier": ["block"]}, "action": "block"},
        {"id": "cluster-verify", "when": {"cluster_tier": ["block"]}, "action": "verify"},
        {"id": "dave-verify", "when": {"accounts": ["acct-dave"]}, "action": "verify"},
        {
            "id": "erin-throttle",
            "when": {"accounts": ["acct-erin"]},
            "action": "throttle",
            "limit": "2/minute",
        },
        {"id": "org-shadow", "when": {"orgs": ["org-a"]}, "action": "block", "shadow": True},
        {
            "id": "frank-degrade",
            "when": {"accounts": ["acct-frank"]},
            "action": "degrade",
            "degrade": {
                "reasoning": "withhold",
                "max_tokens": 64,
                "drop_logprobs": True,
                "single_choice": True,
                "canary": True,
            },
        },
    ]
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, stub: Stub) -> Iterator[Gw]:
    folder = tmp_path_factory.mktemp("gw")
    g = Gw(
        folder,
        stub.url,
        decisions="sqlite://decisions.db",
        reload_seconds=0.2,
        policy=POLICY,
        max_body_bytes=20_000,
    )
    yield g
    g.stop()


def test_chat_passes_through_with_the_upstream_answer(gw: Gw) -> None:
    r = gw.chat()
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "The answer is 4."
    assert r.headers["x-request-id"].startswith("dwreq_")


def test_streaming_arrives_chunk_by_chunk(gw: Gw) -> None:
    body = {
        "model": "stub-1",
        "stream": True,
        "stub_chunk_delay_ms": 30,
        "messages": [{"role": "user", "content": "hi"}],
    }
    arrivals: list[float] = []
    events = []
    with httpx.stream(
        "POST",
        gw.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": "Bearer sk-alice"},
        timeout=30,
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic())
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    text = "".join(orjson.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == "The answer is 4."
    # the stub waits 30 ms between chunks: passed through, they arrive spread out, not at once
    assert arrivals[-1] - arrivals[0] > 0.3


def test_other_endpoints_and_models(gw: Gw) -> None:
    h = {"authorization": "Bearer sk-alice"}
    r = httpx.post(gw.url + "/v1/responses", json={"model": "m", "input": "hello"}, headers=h)
    assert r.status_code == 200 and r.json()["object"] == "response"
    r = httpx.post(gw.url + "/v1/completions", json={"model": "m", "prompt": "hello"}, headers=h)
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "The answer is 4."
    r = httpx.get(gw.url + "/v1/models", headers=h)
    assert r.status_code == 200 and r.json()["data"][0]["id"] == "stub-1"


def _error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and err["type"] and "param" in err


def test_bad_requests_get_openai_errors(gw: Gw) -> None:
    _error(gw.chat(key="sk-nobody"), 401, "invalid_api_key")
    h = {"authorization": "Bearer sk-alice"}
    _error(
        httpx.post(gw.url + "/v1/chat/completions", content=b"{not json", headers=h),
        400,
        "invalid_json",
    )
    _error(
        httpx.post(gw.url + "/v1/chat/completions", content=b"[1, 2]", headers=h),
        400,
        "invalid_json",
    )
    _error(
        httpx.post(gw.url + "/v1/chat/completions", json={"messages": []}, headers=h),
        400,
        "missing_model",
    )
    big = {"model": "m", "messages": [{"role": "user", "content": "x" * 50_000}]}
    _error(
        httpx.post(gw.url + "/v1/chat/completions", json=big, headers=h), 400, "request_too_large"
    )
    _error(httpx.get(gw.url + "/v2/nothing", headers=h), 404, "unknown_url")
    _error(httpx.get(gw.url + "/v1/chat/completions", headers=h), 405, "method_not_allowed")
    assert gw.chat().status_code == 200  # still serving


def test_policy_actions(gw: Gw) -> None:
    _error(gw.chat(key="sk-dave"), 403, "verification_required")
    assert [gw.chat(key="sk-erin").status_code for _ in range(2)] == [200, 200]
    r = gw.chat(key="sk-erin")
    _error(r, 429, "rate_limit_exceeded")
    assert int(r.headers["retry-after"]) >= 1
    # frank is degraded: no reasoning, one choice, no logprobs, an invisible canary
    r = gw.chat(key="sk-frank", n=3, logprobs=True, max_tokens=4000)
    choices = r.json()["choices"]
    assert len(choices) == 1 and "reasoning_content" not in choices[0]["message"]
    assert not choices[0].get("logprobs")
    assert decode_canary(choices[0]["message"]["content"]) == canary_token(
        b"distillwatch-canary", "acct-frank"
    )
    # alice is in org-a: the shadow block rule matches but does not block
    assert gw.chat().status_code == 200


def test_degraded_stream_withholds_reasoning(gw: Gw) -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(
        gw.url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer sk-frank"}
    )
    assert r.status_code == 200
    assert "reasoning_content" not in r.text and r.text.rstrip().endswith("data: [DONE]")
    assert "The answer is 4." in "".join(
        orjson.loads(line[6:])["choices"][0]["delta"].get("content", "")
        for line in r.text.splitlines()
        if line.startswith("data: {")
    ).replace(canary_token(b"distillwatch-canary", "acct-frank"), "")


def test_account_header_from_an_auth_layer(tmp_path: Path, stub: Stub) -> None:
    g = Gw(tmp_path, stub.url, account_header="x-account-id", org_header="x-org-id")
    try:
        r = httpx.post(
            g.url + "/v1/chat/completions",
            json={"model": "m", "messages": []},
            headers={"x-account-id": "acct-from-header", "x-org-id": "org-h"},
        )
        assert r.status_code == 200
        g.wait_delivered(1)
    finally:
        g.stop()
    calls = pl.from_arrow(read_calls(tmp_path / "log").table)
    assert calls["account_id"].to_list() == ["acct-from-header"] and calls["org_id"].to_list() == [
        "org-h"
    ]


def test_decisions_hot_reload_blocks_an_account(gw: Gw, tmp_path: Path) -> None:
    assert gw.chat(key="sk-carol").status_code == 200
    scan = write_scan(
        tmp_path / "scan",
        [
            {"account_id": "acct-carol", "score": 0.99, "tier": "block"},
            {"account_id": "acct-bob", "score": 0.7, "tier": "watch", "cluster_id": "cl-1"},
        ],
        [{"cluster_id": "cl-1", "score": 0.97, "tier": "block", "members": ["acct-bob"]}],
    )
    store = f"sqlite://{gw.folder / 'decisions.db'}"
    result = CliRunner().invoke(app, ["gateway", "load-decisions", str(scan), "--store", store])
    assert result.exit_code == 0, result.output
    deadline = time.monotonic() + 10
    while gw.chat(key="sk-carol").status_code != 403 and time.monotonic() < deadline:
        time.sleep(0.1)
    _error(gw.chat(key="sk-carol"), 403, "account_blocked")
    _error(gw.chat(key="sk-bob"), 403, "verification_required")  # its cluster is blocked
    doc = httpx.get(gw.admin + "/decisions/acct-carol").json()
    assert doc["scan"]["tier"] == "block" and doc["decision"]["action"] == "block"
    assert doc["decision"]["matches"][0]["evidence"][0]["source"] == "policy:scan-block@1"
    assert any(
        e["source"] == "detector:account-gbm@1" for e in doc["decision"]["matches"][0]["evidence"]
    )


def test_admin_metrics_and_health(gw: Gw) -> None:
    gw.chat()
    text = httpx.get(gw.admin + "/metrics").text
    assert 'dw_requests_total{status="200"}' in text and "dw_added_latency_ms_bucket" in text
    assert "dw_events_acknowledged" in text
    h = gw.health()
    assert h["status"] == "ok" and h["limiter"] == "ok"


def test_streamed_responses_get_a_canary_and_n_choices_all_arrive(gw: Gw) -> None:
    token = canary_token(b"distillwatch-canary", "acct-frank")
    body = {"model": "m", "stream": True, "input": "hi"}
    r = httpx.post(
        gw.url + "/v1/responses", json=body, headers={"authorization": "Bearer sk-frank"}
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [orjson.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    names = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
    assert names == [e["type"] for e in events]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "The answer is 4." + token and decode_canary(text) == token
    assert "asks for 2+2" not in r.text  # reasoning still withheld
    # alice is not degraded: reasoning kept, no canary
    r = httpx.post(
        gw.url + "/v1/responses", json=body, headers={"authorization": "Bearer sk-alice"}
    )
    assert "asks for 2+2" in r.text and decode_canary(r.text) is None
    r = gw.chat(n=3)
    assert [c["message"]["content"] for c in r.json()["choices"]] == [
        "The answer is 4.",
        "The answer is 4. (1)",
        "The answer is 4. (2)",
    ]


def test_every_call_is_logged_and_scan_reads_the_log(gw: Gw, tmp_path: Path) -> None:
    """Runs last in this module: every call above is in the log, and `scan` reads the folder."""
    h = gw.health()
    n = h["event_log"]["submitted"]
    h = gw.wait_delivered(n)
    assert h["event_log"]["delivered"] == n
    result = read_calls(gw.folder / "log")
    assert result.n_bad == 0 and result.n_good == n
    calls = pl.from_arrow(result.table)
    statuses = calls["response"].struct.field("status").to_list()
    assert {200, 400, 403, 429} <= set(statuses)
    assert 401 not in statuses  # no account: nothing to log it under
    extra = [orjson.loads(e) for e in calls["extra"].to_list()]
    assert all("decision" in e["gateway"] for e in extra)
    shadow = [
        e
        for e in extra
        if e["gateway"]["decision"]
        and any(m["shadow"] for m in e["gateway"]["decision"]["matches"])
    ]
    assert shadow and all(e["gateway"]["decision"]["action"] != "block" for e in shadow)
    streamed = calls.filter(pl.col("request").struct.field("stream").fill_null(False))
    assert "The answer is 4." in streamed["response"].struct.field("output_text").to_list()
    responses = streamed.filter(pl.col("endpoint") == "responses")["response"].to_list()
    assert responses and all(r["output_text"] == "The answer is 4." for r in responses)
    assert all(r["usage"]["output_tokens"] == 6 for r in responses)
    n3 = [e for e, n in zip(extra, calls["request"].struct.field("n"), strict=True) if n == 3]
    assert any(
        [c["output_text"] for c in e["gateway"].get("choices", [])]
        == ["The answer is 4. (1)", "The answer is 4. (2)"]
        for e in n3
    )
    out = tmp_path / "scan-out"
    res = CliRunner().invoke(
        app, ["scan", str(gw.folder / "log"), "--out", str(out), "--quiet", "--no-clusters"]
    )
    assert res.exit_code == 0, res.output
    scanned = pl.read_parquet(out / "accounts.parquet")
    assert {"acct-alice", "acct-frank", "acct-erin"} <= set(scanned["account_id"].to_list())


def _until(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_policy_file_hot_reload_and_a_bad_edit_keeps_the_last_good_policy(
    tmp_path: Path, stub: Stub
) -> None:
    policy = tmp_path / "policy.yaml"
    watch = {"id": "carol-watch", "when": {"accounts": ["acct-carol"]}, "action": "watch"}
    policy.write_text(yaml.safe_dump({"rules": [watch]}))
    g = Gw(tmp_path, stub.url, policy="policy.yaml", reload_seconds=0.1)
    try:
        assert g.chat().status_code == 200
        block = {"id": "alice-block", "version": 2, "when": {"accounts": ["acct-alice"]}}
        policy.write_text(yaml.safe_dump({"rules": [watch, {**block, "action": "block"}]}))
        assert _until(lambda: g.chat().status_code == 403)  # the next calls follow the edit
        _error(g.chat(), 403, "account_blocked")
        assert g.chat(key="sk-bob").status_code == 200
        h = g.health()
        assert h["policy_rules"] == 2 and h["policy_error"] is None

        def errors() -> float:
            text = httpx.get(g.admin + "/metrics").text
            line = [ln for ln in text.splitlines() if ln.startswith("dw_policy_reload_errors")]
            return float(line[0].split()[-1]) if line else 0.0

        # broken edits: a schema error, bad YAML, an empty file (as if caught half-written)
        for n, broken in enumerate(
            [
                yaml.safe_dump({"rules": [{**block, "action": "explode"}]}),
                "rules: [unclosed",
                "",
            ],
            start=1,
        ):
            policy.write_text(broken)
            assert _until(lambda n=n: errors() >= n), broken
            assert g.proc.poll() is None
            _error(g.chat(), 403, "account_blocked")  # the last good policy stays in force
            assert g.chat(key="sk-bob").status_code == 200
        h = g.health()
        assert h["policy_rules"] == 2 and "empty" in h["policy_error"]
        assert "dw_policy_reloads_total 1" in httpx.get(g.admin + "/metrics").text
        policy.write_text(yaml.safe_dump({"rules": [watch]}))  # a good edit is taken again
        assert _until(lambda: g.chat().status_code == 200)
        assert g.health()["policy_error"] is None
        n_calls = g.health()["event_log"]["submitted"]
        g.wait_delivered(n_calls)
    finally:
        out = g.stop()
    assert "keeping the last good policy" in out and "rules/0/action" in out
    calls = pl.from_arrow(read_calls(tmp_path / "log").table)
    decisions = [orjson.loads(e)["gateway"]["decision"] for e in calls["extra"].to_list()]
    blocked = [d for d in decisions if d and d["action"] == "block"]
    assert blocked and all(
        d["matches"][0]["evidence"][0]["source"] == "policy:alice-block@2" for d in blocked
    )
