"""One proxied call -> one canonical call record (docs/schema.md), built off the request path.

The request path only captures what it saw (:class:`Capture`: the parsed request body, the
raw response bytes or SSE chunks, status, timings); the event log's worker turns captures into
records here, so parsing responses and streams costs the caller nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from distillwatch.gateway.values import Decision, Subject

ENDPOINT_BY_PATH = {
    "/v1/chat/completions": "chat.completions",
    "/v1/responses": "responses",
    "/v1/completions": "completions",
}

UNKNOWN_MODEL = "unknown"
"""``model`` of a logged call whose request could not be read (the schema requires one)."""


@dataclass(slots=True)
class Capture:
    """What the request path saw of one call; filled in as the call proceeds."""

    ts: float
    request_id: str
    subject: Subject
    endpoint: str
    body: dict[str, Any] | None
    client_ip: str | None = None
    user_agent: str | None = None
    status: int = 0
    response: bytes | None = None
    chunks: list[bytes] = field(default_factory=list)
    latency_ms: float = 0.0
    overhead_ms: float = 0.0
    decision: Decision | None = None
    live_score: float | None = None
    error: str | None = None
    canary: dict[str, Any] | None = None  # the canary fact planted in the answer, if any


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return int(value)
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def content_text(content: Any) -> str | None:
    """Message content as one string (list-of-parts joined as the schema says).

    >>> content_text([{"type": "text", "text": "hi"}, {"type": "image_url"}, "x"])
    'hi\\n[image_url]\\nx'
    """
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                kind = part.get("type")
                if kind in ("text", "input_text", "output_text") and isinstance(
                    part.get("text"), str
                ):
                    parts.append(part["text"])
                else:
                    parts.append(f"[{kind if isinstance(kind, str) else 'part'}]")
        return "\n".join(parts)
    return None


def _messages(body: dict[str, Any], endpoint: str) -> tuple[list[dict[str, Any]], str | None]:
    """Canonical messages and a separate system prompt, whatever the endpoint."""
    if endpoint == "completions":
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            prompt = "\n".join(p for p in prompt if isinstance(p, str))
        return [{"role": "user", "content": _str(prompt)}], None
    if endpoint == "responses":
        raw = body.get("input")
        system = _str(body.get("instructions"))
        if isinstance(raw, str):
            return [{"role": "user", "content": raw}], system
        items: list[Any] = raw if isinstance(raw, list) else []
    else:
        messages = body.get("messages")
        items = messages if isinstance(messages, list) else []
        system = None
    out = [
        {"role": m["role"], "content": content_text(m.get("content"))}
        for m in items
        if isinstance(m, dict) and isinstance(m.get("role"), str)
    ]
    return out, system


def request_record(body: dict[str, Any] | None, endpoint: str) -> dict[str, Any]:
    """The schema's ``request`` struct from a request body; wrongly typed fields are dropped,
    so a logged call always reads back (scan never skips gateway output)."""
    if body is None:
        return {"messages": []}
    messages, system = _messages(body, endpoint)
    logprobs = body.get("logprobs")
    top_logprobs = _int(body.get("top_logprobs"))
    if endpoint == "completions" and _int(logprobs) is not None:  # legacy: logprobs is a count
        top_logprobs, logprobs = _int(logprobs), True
    max_tokens = (
        body.get("max_tokens")
        if body.get("max_tokens") is not None
        else body.get("max_completion_tokens", body.get("max_output_tokens"))
    )
    reasoning = body.get("reasoning")
    effort = body.get("reasoning_effort")
    if effort is None and isinstance(reasoning, dict):
        effort = reasoning.get("effort")
    tools = body.get("tools")
    return {
        "messages": messages,
        "system": system,
        "temperature": _float(body.get("temperature")),
        "top_p": _float(body.get("top_p")),
        "max_tokens": _int(max_tokens),
        "n": _int(body.get("n")),
        "logprobs": _bool(logprobs),
        "top_logprobs": top_logprobs,
        "tools": [orjson.dumps(t).decode() for t in tools] if isinstance(tools, list) else None,
        "reasoning_effort": _str(effort),
        "stream": _bool(body.get("stream")),
        "seed": _int(body.get("seed")),
    }


@dataclass(slots=True)
class _Choice:
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    finish_reason: str | None = None

    def record(self, index: int) -> dict[str, Any]:
        return {
            "index": index,
            "output_text": "".join(self.text) if self.text else None,
            "reasoning_text": "".join(self.reasoning) if self.reasoning else None,
            "finish_reason": self.finish_reason,
        }


@dataclass(slots=True)
class _Output:
    """The answer as parsed: every choice by index (``n`` > 1), and the usage of all of them."""

    choices: dict[int, _Choice] = field(default_factory=dict)
    usage: dict[str, Any] | None = None

    def choice(self, index: int = 0) -> _Choice:
        c = self.choices.get(index)
        if c is None:
            c = self.choices[index] = _Choice()
        return c

    def add_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        details = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
        self.usage = {
            "input_tokens": _int(usage.get("prompt_tokens", usage.get("input_tokens"))),
            "output_tokens": _int(usage.get("completion_tokens", usage.get("output_tokens"))),
            "reasoning_tokens": _int(details.get("reasoning_tokens"))
            if isinstance(details, dict)
            else None,
        }

    def add_choice(self, choice: Any, delta_key: str) -> None:
        if not isinstance(choice, dict):
            return
        index = _int(choice.get("index"))
        c = self.choice(index if index is not None and index >= 0 else 0)
        if delta_key == "text":
            piece: Any = {"content": choice.get("text")}
        else:
            piece = choice.get(delta_key)
        if isinstance(piece, dict):
            if isinstance(piece.get("content"), str):
                c.text.append(piece["content"])
            reasoning = piece.get("reasoning_content", piece.get("reasoning"))
            if isinstance(reasoning, str):
                c.reasoning.append(reasoning)
        if isinstance(choice.get("finish_reason"), str):
            c.finish_reason = choice["finish_reason"]

    def add_responses_object(self, obj: Any) -> None:
        if not isinstance(obj, dict):
            return
        c = self.choice()
        for item in obj.get("output") or ():
            if not isinstance(item, dict):
                continue
            if item.get("type") == "message":
                c.text.append(content_text(item.get("content")) or "")
            elif item.get("type") == "reasoning":
                parts = (item.get("content") or []) + (item.get("summary") or [])
                c.reasoning.extend(
                    p["text"]
                    for p in parts
                    if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
        status = obj.get("status")
        c.finish_reason = "stop" if status == "completed" else _str(status)
        self.add_usage(obj.get("usage"))


def _parse_body(endpoint: str, raw: bytes, out: _Output) -> None:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return
    if not isinstance(doc, dict):
        return
    if endpoint == "responses":
        out.add_responses_object(doc)
        return
    choices = doc.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        out.add_choice(choice, "text" if endpoint == "completions" else "message")
    out.add_usage(doc.get("usage"))


def sse_events(chunks: list[bytes]) -> list[Any]:
    """The JSON payloads of an SSE stream's ``data:`` lines (``[DONE]`` and bad lines skipped)."""
    events: list[Any] = []
    for line in b"".join(chunks).split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if not data or data == b"[DONE]":
            continue
        try:
            events.append(orjson.loads(data))
        except orjson.JSONDecodeError:
            continue
    return events


def _parse_stream(endpoint: str, chunks: list[bytes], out: _Output) -> None:
    for ev in sse_events(chunks):
        if not isinstance(ev, dict):
            continue
        if endpoint == "responses":
            kind = ev.get("type")
            c = out.choice()
            if kind == "response.output_text.delta" and isinstance(ev.get("delta"), str):
                c.text.append(ev["delta"])
            elif kind in ("response.reasoning_text.delta", "response.reasoning_summary_text.delta"):
                if isinstance(ev.get("delta"), str):
                    c.reasoning.append(ev["delta"])
            elif kind == "response.completed" and isinstance(ev.get("response"), dict):
                c.finish_reason = "stop"
                out.add_usage(ev["response"].get("usage"))
            continue
        for choice in ev.get("choices") or ():
            out.add_choice(choice, "text" if endpoint == "completions" else "delta")
        if ev.get("usage"):
            out.add_usage(ev["usage"])


def response_record(cap: Capture) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The schema's ``response`` (the first choice's text: the schema has one ``output_text``;
    ``usage`` covers every choice, as the API reports it) and the other choices (``n`` > 1)."""
    out = _Output()
    if cap.chunks:
        _parse_stream(cap.endpoint, cap.chunks, out)
    elif cap.response and 200 <= cap.status < 300:
        _parse_body(cap.endpoint, cap.response, out)
    order = sorted(out.choices)
    first = out.choices[order[0]] if order else _Choice()
    if cap.error and first.finish_reason is None:
        first.finish_reason = cap.error
    response = {
        "status": cap.status,
        **{k: v for k, v in first.record(0).items() if k != "index"},
        "usage": out.usage,
        "latency_ms": round(cap.latency_ms, 3),
    }
    return response, [out.choices[i].record(i) for i in order[1:]]


def iso(ts: float) -> str:
    """Epoch seconds as the schema's RFC 3339 text with ``Z`` and microseconds."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def call_record(cap: Capture) -> dict[str, Any]:
    """The canonical call record of one capture, with the gateway's decision in ``gateway``
    (an unknown top-level field, which readers keep in ``extra``), and there too, as
    ``gateway.choices``, the answers after the first when ``n`` > 1, and as ``gateway.canary``
    the canary fact planted by ``degrade`` (``canary_id``, ``index``)."""
    body = cap.body if isinstance(cap.body, dict) else None
    model = _str(body.get("model")) if body else None
    response, others = response_record(cap)
    rec: dict[str, Any] = {
        "ts": iso(cap.ts),
        "request_id": cap.request_id,
        "account_id": cap.subject.account_id,
        "org_id": cap.subject.org_id,
        "api_key_id": cap.subject.api_key_id,
        "model": model or UNKNOWN_MODEL,
        "endpoint": cap.endpoint,
        "client": {"ip": cap.client_ip, "user_agent": cap.user_agent},
        "request": request_record(body, cap.endpoint),
        "response": response,
        "gateway": {
            "decision": cap.decision.to_record() if cap.decision else None,
            "live_score": cap.live_score,
            "overhead_ms": round(cap.overhead_ms, 3),
            "error": cap.error,
        },
    }
    if others:  # n > 1: the schema keeps one answer; the others ride along in extra
        rec["gateway"]["choices"] = others
    if cap.canary is not None:  # degrade planted a canary fact (the answer logged is upstream's)
        rec["gateway"]["canary"] = cap.canary
    return rec
