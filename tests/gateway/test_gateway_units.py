"""Pure parts of the gateway: policy, live scorer, records, degrading, public API, imports."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import orjson
import polars as pl
import pytest

import distillwatch.gateway as gateway
from distillwatch.core.errors import DistillwatchError
from distillwatch.core.values import Evidence, Finding
from distillwatch.gateway import Degrade, LiveScorer, OnlineRules, Policy, Verdicts
from distillwatch.gateway.enforce import StreamDegrader, degrade_request, degrade_response
from distillwatch.gateway.events import Capture, call_record
from distillwatch.gateway.values import Subject
from distillwatch.ingest import read_calls
from distillwatch.rules import load_rules
from distillwatch.rules.golden import FILES, SEPARATOR, SYSTEM_TAG

GOLDEN = Path(__file__).parents[1] / "rules" / "golden"


def test_public_api_is_pinned() -> None:
    assert sorted(gateway.__all__) == sorted(
        [
            "ACTIONS",
            "AccountEntry",
            "Decision",
            "DecisionStore",
            "Degrade",
            "EventLog",
            "Gateway",
            "GatewayConfig",
            "Limit",
            "Limiter",
            "LiveConfig",
            "LiveScorer",
            "Match",
            "OnlineRules",
            "Policy",
            "PolicyRule",
            "Snapshot",
            "Subject",
            "Verdicts",
            "canary_token",
            "decode_canary",
            "load_scan",
            "open_sink",
            "open_store",
            "openai_error",
            "publish_scan",
        ]
    )


def test_gateway_imports_no_detector_internals() -> None:
    src = Path(gateway.__file__).parent
    banned = re.compile(
        r"^\s*(from|import) distillwatch\.(detectors|scoring|clusters|features|cli|sim|eval)\b",
        re.M,
    )
    offenders = [p.name for p in src.glob("*.py") if banned.search(p.read_text())]
    assert offenders == []


def test_values_are_frozen() -> None:
    d = Policy().decide(Verdicts())
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.action = "block"  # type: ignore[misc]


def _finding(tier: str, score: float, *evidence: Evidence) -> Finding:
    return Finding("a", score, tier, evidence)


def test_policy_takes_the_most_severe_enforced_action_and_logs_shadow_matches() -> None:
    policy = Policy.from_dict(
        {
            "rules": [
                {"id": "watch-all", "action": "watch"},
                {
                    "id": "thr",
                    "when": {"score": {"gte": 0.8}},
                    "action": "throttle",
                    "limit": "10/minute",
                },
                {"id": "blk", "when": {"tier": ["block"]}, "action": "block", "shadow": True},
                {
                    "id": "deg",
                    "when": {"live_signal": {"name": "rule:intent/cot-elicitation", "gte": 0.3}},
                    "action": "degrade",
                    "degrade": {"reasoning": "withhold", "max_tokens": 100},
                },
            ]
        }
    )
    live = Finding(
        "a",
        0.4,
        "watch",
        (Evidence("rule:intent/cot-elicitation", 0.5, 0.0, 0.0, "gateway:live@1"),),
    )
    d = policy.decide(Verdicts(account=_finding("block", 0.97), live=live, account_id="a"))
    assert d.action == "throttle" and d.shadow_action == "block"
    assert [m.rule for m in d.matches] == ["watch-all", "thr", "blk", "deg"]
    assert (
        d.limits[0].rate == "10/minute"
        and d.degrade.reasoning == "withhold"
        and d.degrade.max_tokens == 100
    )
    thr = d.matches[1].evidence[0]
    assert (thr.signal, thr.value, thr.baseline, thr.source) == ("score", 0.97, 0.8, "policy:thr@1")
    rec = orjson.loads(orjson.dumps(d.to_record()))
    assert rec["matches"][2]["shadow"] is True
    assert (
        Policy.from_dict({"shadow": True, "rules": [{"id": "b", "action": "block"}]})
        .decide(Verdicts())
        .action
        == "allow"
    )


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"rules": [{"id": "x", "action": "nuke"}]}, "rules/0/action"),
        ({"rules": [{"id": "x", "action": "throttle"}]}, "throttle needs a limit"),
        ({"rules": [{"id": "x", "action": "throttle", "limit": "lots"}]}, "not a rate"),
        ({"rules": [{"id": "x", "action": "degrade"}]}, "degrade needs"),
        ({"rules": [{"id": "x", "action": "allow"}, {"id": "x", "action": "allow"}]}, "duplicate"),
        (
            {"rules": [{"id": "x", "action": "allow", "when": {"tier": ["red"]}}]},
            "rules/0/when/tier/0",
        ),
    ],
)
def test_bad_policies_are_refused_with_the_field(doc: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(DistillwatchError, match=re.escape(message)):
        Policy.from_dict(doc, "p.yaml")


def test_degrade_merge_keeps_the_stricter() -> None:
    a = Degrade(reasoning="summarise", max_tokens=500)
    b = Degrade(reasoning="withhold", max_tokens=900, canary=True)
    m = a.merge(b)
    assert (m.reasoning, m.max_tokens, m.canary) == ("withhold", 500, True)


def _golden(rule_dir: Path) -> list[tuple[str | None, str | None, bool]]:
    out = []
    for name, expected in FILES.items():
        for block in (rule_dir / name).read_text().split(f"\n{SEPARATOR}\n"):
            text = block.strip("\n")
            if text.startswith(SYSTEM_TAG):
                out.append((None, text[len(SYSTEM_TAG) :].lstrip("\n"), expected))
            else:
                out.append((text, None, expected))
    return out


def test_online_rules_agree_with_the_rule_engine_on_golden_sets() -> None:
    online = OnlineRules()
    rules = load_rules()
    for rule in rules:
        examples = _golden(GOLDEN / rule.id.replace("/", "__"))
        frame = pl.DataFrame(
            {"prompt": [p for p, _, _ in examples], "system": [s for _, s, _ in examples]},
            schema={"prompt": pl.String, "system": pl.String},
        )
        engine = rules.signals(frame)[rule.column].to_list()
        mine = [rule in online.fired(p, s) for p, s, _ in examples]
        assert mine == engine, rule.id


def test_live_score_rises_for_a_campaign_and_stays_low_for_a_person() -> None:
    scorer = LiveScorer(rules=OnlineRules())
    t = 1_000_000.0
    for i in range(60):  # a harvester: coercion template, logprobs, every 2 s like clockwork
        prompt = f"Solve problem {i}. Show your full internal reasoning before answering."
        scorer.update(
            [
                {
                    "account_id": "bot",
                    "_ts": t + 2 * i,
                    "request": {
                        "messages": [{"role": "user", "content": prompt}],
                        "logprobs": True,
                    },
                }
            ]
        )
    topics = [
        "recipe for bread",
        "fix my bike chain",
        "poem about rain",
        "explain tides",
        "tax question",
    ]
    for i in range(60):  # a person: varied prompts, irregular gaps
        scorer.update(
            [
                {
                    "account_id": "person",
                    "_ts": t + 97 * i + (i * i) % 400,
                    "request": {"messages": [{"role": "user", "content": f"{topics[i % 5]} {i}"}]},
                }
            ]
        )
    bot, person = scorer.finding("bot"), scorer.finding("person")
    assert bot is not None and person is not None
    assert bot.tier == "block" and person.tier == "allow"
    assert {e.signal for e in bot.evidence} >= {"live:intent_share", "rule:intent/cot-elicitation"}
    assert all(e.source == "gateway:live@1" for e in bot.evidence)


def _cap(body: dict, endpoint: str = "chat.completions", **kw: object) -> Capture:  # type: ignore[type-arg]
    return Capture(
        ts=1_760_000_000.5,
        request_id="r1",
        subject=Subject("acct", "org", "key_1"),
        endpoint=endpoint,
        body=body,
        status=200,
        **kw,
    )  # type: ignore[arg-type]


def test_call_records_read_back_in_the_canonical_schema(tmp_path: Path) -> None:
    chat = {
        "id": "x",
        "choices": [
            {
                "index": 0,
                "message": {"content": "hi", "reasoning_content": "think"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    sse = [
        b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\ndata: {"choices":[{"index":0,"del',
        b'ta":{"content":"b"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n',
    ]
    caps = [
        _cap(
            {
                "model": "m",
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "q"}, {"type": "image_url"}],
                    }
                ],
                "tools": [{"type": "function"}],
                "logprobs": True,
                "top_logprobs": 5,
            },
            response=orjson.dumps(chat),
        ),
        _cap(
            {"model": "m", "stream": True, "messages": [{"role": "user", "content": "q"}]},
            chunks=sse,
        ),
        _cap(
            {"model": "m", "input": "q", "instructions": "sys", "reasoning": {"effort": "high"}},
            "responses",
            response=b'{"status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"r"}]}]}',
        ),
        _cap(
            {"model": "m", "prompt": "q", "logprobs": 3},
            "completions",
            response=b'{"choices":[{"index":0,"text":"c"}]}',
        ),
        _cap({"model": 5, "messages": "x", "max_tokens": "9"}),
        _cap(None),  # body that was not JSON
    ]
    path = tmp_path / "calls.jsonl"
    path.write_bytes(
        b"".join(orjson.dumps(call_record(c), option=orjson.OPT_APPEND_NEWLINE) for c in caps)
    )
    result = read_calls(path)
    assert result.n_bad == 0 and result.n_good == len(caps)
    rows = pl.from_arrow(result.table).to_dicts()
    assert rows[0]["request"]["messages"][0]["content"] == "q\n[image_url]"
    assert (
        rows[0]["response"]["reasoning_text"] == "think"
        and rows[0]["response"]["usage"]["input_tokens"] == 3
    )
    assert (
        rows[1]["response"]["output_text"] == "ab"
        and rows[1]["response"]["finish_reason"] == "stop"
    )
    assert (
        rows[2]["request"]["system"] == "sys" and rows[2]["request"]["reasoning_effort"] == "high"
    )
    assert rows[2]["response"]["output_text"] == "r"
    assert rows[3]["request"]["logprobs"] is True and rows[3]["request"]["top_logprobs"] == 3
    assert rows[4]["model"] == "unknown" and rows[4]["request"]["max_tokens"] is None
    assert orjson.loads(rows[0]["extra"])["gateway"]["overhead_ms"] == 0.0


def test_degrading_requests_and_responses() -> None:
    d = Degrade(
        reasoning="summarise",
        summary_chars=5,
        max_tokens=10,
        drop_logprobs=True,
        single_choice=True,
    )
    body = degrade_request(
        {"model": "m", "max_tokens": 500, "n": 4, "logprobs": True, "top_logprobs": 5}, d
    )
    assert (body["max_tokens"], body["n"], body["logprobs"], "top_logprobs" in body) == (
        10,
        1,
        False,
        False,
    )
    assert degrade_request({"model": "m"}, d)["max_tokens"] == 10
    raw = orjson.dumps(
        {
            "choices": [
                {
                    "index": 0,
                    "message": {"content": "x", "reasoning_content": "abcdefghij"},
                    "logprobs": {},
                }
            ]
        }
    )
    out = orjson.loads(degrade_response(raw, "chat.completions", d, "!"))
    assert (
        out["choices"][0]["message"] == {"content": "x!", "reasoning_content": "abcde […]"}
        and "logprobs" not in out["choices"][0]
    )
    shaper = StreamDegrader("chat.completions", Degrade(reasoning="withhold"), "~")
    stream = b'data: {"id":"1","choices":[{"index":0,"delta":{"reasoning_content":"secret"}}]}\n\ndata: {"id":"1","choices":[{"index":0,"delta":{"content":"ok"}}]}\n\ndata: [DONE]\n\n'
    text = (
        b"".join(shaper.feed(stream[i : i + 7]) for i in range(0, len(stream), 7)) + shaper.close()
    )
    assert b"secret" not in text and b'"content":"ok"' in text and b'"content":"~"' in text
    assert text.rstrip().endswith(b"data: [DONE]")


def test_n_choices_keep_the_first_answer_in_the_schema_and_the_others_in_extra(
    tmp_path: Path,
) -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 9}
    chat = {
        "choices": [
            {"index": i, "message": {"content": f"a{i}"}, "finish_reason": f"f{i}"}
            for i in (0, 1, 2)
        ],
        "usage": usage,
    }
    # a stream with two choices interleaved, the usage of both in the last event
    sse = [
        b'data: {"choices":[{"index":1,"delta":{"content":"y"}},{"index":0,"delta":{"content":"x"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"},'
        b'{"index":1,"delta":{"content":"y","reasoning_content":"r1"},"finish_reason":"length"}]}\n\n',
        b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":4}}\n\ndata: [DONE]\n\n',
    ]
    completions = {"choices": [{"index": 0, "text": "c0"}, {"index": 1, "text": "c1"}]}
    caps = [
        _cap({"model": "m", "n": 3, "messages": []}, response=orjson.dumps(chat)),
        _cap({"model": "m", "n": 2, "stream": True, "messages": []}, chunks=sse),
        _cap(
            {"model": "m", "n": 2, "prompt": "p"}, "completions", response=orjson.dumps(completions)
        ),
        _cap(
            {"model": "m", "messages": []}, response=orjson.dumps({"choices": chat["choices"][:1]})
        ),
    ]
    path = tmp_path / "calls.jsonl"
    path.write_bytes(
        b"".join(orjson.dumps(call_record(c), option=orjson.OPT_APPEND_NEWLINE) for c in caps)
    )
    result = read_calls(path)
    assert result.n_bad == 0
    rows = pl.from_arrow(result.table).to_dicts()
    extra = [orjson.loads(r["extra"])["gateway"] for r in rows]
    assert [r["request"]["n"] for r in rows] == [3, 2, 2, None]
    assert [r["response"]["output_text"] for r in rows] == ["a0", "xx", "c0", "a0"]
    assert [r["response"]["finish_reason"] for r in rows[:2]] == ["f0", "stop"]
    # usage is the API's, for all choices together
    assert rows[0]["response"]["usage"]["output_tokens"] == 9
    assert rows[1]["response"]["usage"]["output_tokens"] == 4
    assert extra[0]["choices"] == [
        {"index": i, "output_text": f"a{i}", "reasoning_text": None, "finish_reason": f"f{i}"}
        for i in (1, 2)
    ]
    assert extra[1]["choices"] == [
        {"index": 1, "output_text": "yy", "reasoning_text": "r1", "finish_reason": "length"}
    ]
    assert [c["output_text"] for c in extra[2]["choices"]] == ["c1"]
    assert "choices" not in extra[3]  # one answer: nothing extra


def _sse_events(raw: bytes) -> list[tuple[str | None, dict]]:  # type: ignore[type-arg]
    """(event name, data) per SSE event, framed by blank lines as a client reads them."""
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = None, None
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data = orjson.loads(line[5:].strip())
        if data is not None:
            out.append((name, data))
    return out


def test_streamed_responses_get_the_canary_and_lose_their_reasoning() -> None:
    import asyncio

    from distillwatch.gateway.stub import ANSWER, REASONING, StubUpstream

    assert "asks for 2+2" in REASONING

    sent: list[bytes] = []

    async def run() -> None:
        async def send(msg: dict) -> None:  # type: ignore[type-arg]
            if msg["type"] == "http.response.body":
                sent.append(msg["body"])

        await StubUpstream()._responses_stream(send, "m")

    asyncio.run(run())
    upstream = b"".join(sent)
    shaper = StreamDegrader("responses", Degrade(reasoning="withhold", canary=True), "~~")
    # cut at every 11 bytes: lines and events split across chunks
    out = (
        b"".join(shaper.feed(upstream[i : i + 11]) for i in range(0, len(upstream), 11))
        + shaper.close()
    )
    events = _sse_events(out)
    assert all(name == ev["type"] for name, ev in events)  # every event line matches its data
    assert b"asks for 2+2" not in out and b'"type":"reasoning"' not in out
    assert not any("reasoning" in ev["type"] for _, ev in events)
    text = "".join(ev["delta"] for _, ev in events if ev["type"] == "response.output_text.delta")
    assert text == ANSWER + "~~"
    by_type = {ev["type"]: ev for _, ev in events}
    assert by_type["response.output_text.done"]["text"] == ANSWER + "~~"
    assert by_type["response.content_part.done"]["part"]["text"] == ANSWER + "~~"
    assert by_type["response.output_item.done"]["item"]["content"][0]["text"] == ANSWER + "~~"
    completed = by_type["response.completed"]["response"]["output"]
    assert [i["type"] for i in completed] == ["message"]
    assert completed[0]["content"][0]["text"] == ANSWER + "~~"
    seq = [ev["sequence_number"] for _, ev in events]
    assert seq == sorted(set(seq))  # the inserted event kept the numbering strictly increasing
    # no canary asked: the text is left alone, reasoning still withheld
    plain = StreamDegrader("responses", Degrade(reasoning="withhold"), None)
    out = plain.feed(upstream) + plain.close()
    assert b"~~" not in out and b"asks for 2+2" not in out and ANSWER.encode() in out
