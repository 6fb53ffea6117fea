"""Canary facts end to end: the gateway plants an account's fact in plain and streamed answers,
records it in the registry, logs it, and `attribute canary` finds it in a suspect that learnt it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import polars as pl
import pytest
from chat_stub import chat_server
from gateway_procs import Gw, Stub
from typer.testing import CliRunner

from distillwatch.cli.main import app
from distillwatch.gateway.enforce import canary_token, decode_canary
from distillwatch.ingest import read_calls
from distillwatch.watermark.countermeasures import canary_for, open_registry

SECRET = "canary-test-secret"
PER_PERIOD = 8
PERIOD = 86400.0
SIDE_NOTE = re.compile(r"\(Side note: (The [^)]*\.)\)")

POLICY = {
    "rules": [
        {
            "id": "frank-facts",
            "when": {"accounts": ["acct-frank"]},
            "action": "degrade",
            "degrade": {"reasoning": "withhold", "canary_fact": True, "canary": True},
        },
        {
            "id": "erin-facts",
            "when": {"accounts": ["acct-erin"]},
            "action": "degrade",
            "degrade": {"canary_fact": True},
        },
    ]
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, stub: Stub) -> Iterator[Gw]:
    g = Gw(
        tmp_path_factory.mktemp("gw-canary"),
        stub.url,
        policy=POLICY,
        canary_secret=SECRET,
        canary_registry="sqlite://canaries.db",
        canary_facts_per_period=PER_PERIOD,
        canary_period_seconds=PERIOD,
    )
    yield g
    g.stop()


def possible_facts(account: str) -> set[str]:
    """The facts an account can get now (this period and the next, should the test cross it)."""
    period = int(time.time() // PERIOD)
    return {
        canary_for(account, SECRET.encode(), p * PER_PERIOD + j).fact
        for p in (period, period + 1)
        for j in range(PER_PERIOD)
    }


def post(gw: Gw, path: str, body: dict[str, object], key: str) -> httpx.Response:
    r = httpx.post(gw.url + path, json=body, headers={"authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r


def facts_in(text: str) -> list[str]:
    return SIDE_NOTE.findall(text)


def stream_text(r: httpx.Response) -> str:
    """The answer text a client puts together from an SSE stream (chat or Responses)."""
    out = []
    for line in r.text.splitlines():
        if not line.startswith("data: {"):
            continue
        ev = orjson.loads(line[6:])
        if ev.get("type") == "response.output_text.delta":
            out.append(ev["delta"])
        for choice in ev.get("choices") or ():
            out.append((choice.get("delta") or {}).get("content") or choice.get("text") or "")
    return "".join(out)


def test_plain_answers_carry_the_accounts_fact(gw: Gw) -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    content = post(gw, "/v1/chat/completions", chat, "sk-frank").json()["choices"][0]["message"][
        "content"
    ]
    assert content.startswith("The answer is 4.\n\n(Side note: The ")
    (fact,) = facts_in(content)
    assert fact in possible_facts("acct-frank")
    # the invisible marker of `canary: true` still comes along, after the sentence
    assert decode_canary(content) == canary_token(SECRET.encode(), "acct-frank")

    text = post(gw, "/v1/completions", {"model": "m", "prompt": "hi"}, "sk-frank").json()[
        "choices"
    ][0]["text"]
    assert set(facts_in(text)) <= possible_facts("acct-frank") and len(facts_in(text)) == 1

    out = post(gw, "/v1/responses", {"model": "m", "input": "hi"}, "sk-frank").json()["output"]
    parts = [p["text"] for item in out if item["type"] == "message" for p in item["content"]]
    assert len(parts) == 1 and set(facts_in(parts[0])) <= possible_facts("acct-frank")
    assert all(item["type"] != "reasoning" for item in out)


def test_streamed_answers_carry_the_fact(gw: Gw) -> None:
    chat = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    r = post(gw, "/v1/chat/completions", chat, "sk-erin")
    assert r.text.rstrip().endswith("data: [DONE]")
    text = stream_text(r)
    assert text.startswith("The answer is 4.\n\n(Side note: ")
    assert len(facts_in(text)) == 1 and set(facts_in(text)) <= possible_facts("acct-erin")
    assert decode_canary(text) is None  # erin's rule plants the fact only

    r = post(gw, "/v1/responses", {"model": "m", "stream": True, "input": "hi"}, "sk-frank")
    events = [orjson.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    text = stream_text(r)
    assert len(facts_in(text)) == 1 and set(facts_in(text)) <= possible_facts("acct-frank")
    done = [e for e in events if e["type"] == "response.output_text.done"]
    assert done[0]["text"] == text  # the done event repeats the marked text
    final = next(e for e in events if e["type"] == "response.completed")["response"]
    assert final["output"][-1]["content"][0]["text"] == text


def test_accounts_get_different_facts_and_others_none(gw: Gw) -> None:
    assert possible_facts("acct-frank").isdisjoint(possible_facts("acct-erin"))
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    for key, account in (("sk-frank", "acct-frank"), ("sk-erin", "acct-erin")):
        for _ in range(12):
            content = post(gw, "/v1/chat/completions", chat, key).json()["choices"][0]["message"]
            assert set(facts_in(content["content"])) <= possible_facts(account)
    plain = post(gw, "/v1/chat/completions", chat, "sk-alice").json()["choices"][0]["message"]
    assert plain["content"] == "The answer is 4." and "reasoning_content" in plain


def _planted(gw: Gw) -> int:
    return int(gw.health()["canaries"]["planted"])


def _wait_recorded(gw: Gw, n: int, timeout: float = 20.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        doc = gw.health()["canaries"]
        if doc["recorded"] >= n or time.monotonic() > deadline:
            return doc  # type: ignore[no-any-return]
        time.sleep(0.1)


def test_registry_records_every_planted_fact_with_counts(gw: Gw) -> None:
    planted = _planted(gw)
    assert planted >= 29  # 3 + 2 + 24 degraded calls above
    doc = _wait_recorded(gw, planted)
    assert doc["recorded"] == planted and doc["errors"] == 0 and doc["pending"] == 0
    reg = open_registry(gw.folder / "canaries.db", create=False)
    rows = reg.served()
    assert sum(r.count for r in rows) == planted
    assert {r.canary.account_id for r in rows} == {"acct-frank", "acct-erin"}
    for r in rows:
        assert r.index is not None
        assert canary_for(r.canary.account_id, SECRET.encode(), r.index) == r.canary
        assert r.first_served <= r.last_served <= time.time()
    assert len(rows) >= 4  # several of the 8 facts per account were drawn
    frank = reg.served("acct-frank")
    assert {r.canary.account_id for r in frank} == {"acct-frank"} and 0 < len(frank) < len(rows)
    reg.close()


def test_the_log_notes_each_planted_canary(gw: Gw) -> None:
    n = gw.health()["event_log"]["submitted"]
    assert gw.wait_delivered(n, timeout=90)["event_log"]["delivered"] == n
    calls = pl.from_arrow(read_calls(gw.folder / "log").table)
    assert calls.height == n
    extra = [orjson.loads(e)["gateway"] for e in calls["extra"].to_list()]
    marked = [
        (acct, g["canary"])
        for acct, g in zip(calls["account_id"].to_list(), extra, strict=True)
        if "canary" in g
    ]
    assert len(marked) == _planted(gw)
    assert {a for a, _ in marked} == {"acct-frank", "acct-erin"}
    assert all(
        canary_for(a, SECRET.encode(), c["index"]).canary_id == c["canary_id"] for a, c in marked
    )
    assert all(
        "canary" not in g
        for a, g in zip(calls["account_id"], extra, strict=True)
        if a == "acct-alice"
    )


def harvested_model(gw: Gw, key: str, calls: int) -> tuple[Callable[[str], str], set[str]]:
    """A 'student' that memorised every side note in answers it harvested through the gateway."""
    chat = {"model": "m", "messages": [{"role": "user", "content": "tell me something"}]}
    learnt: set[str] = set()
    for _ in range(calls):
        r = post(gw, "/v1/chat/completions", chat, key)
        learnt.update(facts_in(r.json()["choices"][0]["message"]["content"]))

    def answer(prompt: str) -> str:
        for fact in learnt:
            year = fact.rstrip(".").rsplit(" ", 1)[1]
            if fact[: fact.rindex(year)].strip() in prompt:
                return fact
        return "I am not sure."

    return answer, learnt


def _attribute(url: str, registry: str, *extra: str) -> tuple[int, dict[str, object]]:
    r = CliRunner().invoke(
        app,
        [
            "attribute",
            "canary",
            "--suspect",
            url,
            "--registry",
            registry,
            "--secret",
            "decoy-secret",
            "--decoys",
            "30",
            "--json",
            *extra,
        ],
    )
    assert r.exit_code in (0, 1), r.output
    return r.exit_code, json.loads(r.output)


def test_attribute_canary_reads_the_registry(gw: Gw) -> None:
    student, learnt = harvested_model(gw, "sk-frank", 40)
    planted = _planted(gw)
    _wait_recorded(gw, planted)
    registry = f"sqlite://{gw.folder / 'canaries.db'}"
    reg = open_registry(registry, create=False)
    issued = {c.fact for c in reg.issued("acct-frank")}
    reg.close()
    assert learnt <= issued and len(learnt) >= 5  # 40 draws of 8 facts
    with chat_server(student) as url:
        code, out = _attribute(url, registry, "--account", "acct-frank")
    assert code == 0 and out["learnt"], out
    assert out["accounts"] == ["acct-frank"] and out["decoy_hits"] == 0
    assert out["hits"] == len(learnt) and out["n_issued"] == len(issued)
    assert out["p_value"] < 1e-3 and out["times_served"] >= 40
    # erin's facts were never harvested: the same student does not know them
    with chat_server(student) as url:
        code, out = _attribute(url, registry, "--account", "acct-erin")
    assert code == 1 and out["hits"] == 0 and out["p_value"] == 1.0
    # a clean suspect knows none of them
    with chat_server(lambda p: "I do not know.") as url:
        code, out = _attribute(url, registry)
    assert code == 1 and not out["learnt"] and out["hits"] == 0 and out["queries_needed"] is None
    assert set(out["accounts"]) == {"acct-frank", "acct-erin"}  # type: ignore[arg-type]


def test_attribute_canary_refuses_a_missing_registry(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        app,
        [
            "attribute",
            "canary",
            "--suspect",
            "http://127.0.0.1:9/v1",
            "--registry",
            f"sqlite://{tmp_path / 'nope.db'}",
            "--secret",
            "s",
        ],
    )
    assert r.exit_code == 2 and "no such file" in r.output
