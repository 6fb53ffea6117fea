"""Enforcement: apply a :class:`Decision` to one call (refuse, rate-limit, or degrade).

Rate limits use the ``limits`` library (moving window), stored by URI: ``memory://`` for one
gateway, ``redis://host:port`` for a fleet enforcing one limit together.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from limits import RateLimitItem
from limits import parse as parse_limit
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from distillwatch.gateway.values import Degrade, Limit, Subject, Verdicts

# --- rate limits ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LimitHit:
    """A limit that refused a call, and when to retry."""

    limit: Limit
    key: str
    retry_after: float


class Limiter:
    """Moving-window limits per account, cluster or org, in memory or in Redis."""

    def __init__(self, uri: str = "memory://", namespace: str = "dw") -> None:
        scheme_uri = uri if uri.startswith("async+") else "async+" + uri
        self.uri = uri
        self.namespace = namespace
        # the redis-py client (a dependency anyway) instead of limits' default, coredis
        options = {"implementation": "redispy"} if "redis" in scheme_uri.split("://")[0] else {}
        self.storage: Any = storage_from_string(scheme_uri, **options)
        self.strategy = MovingWindowRateLimiter(self.storage)
        self._items: dict[str, RateLimitItem] = {}

    def _item(self, rate: str) -> RateLimitItem:
        item = self._items.get(rate)
        if item is None:
            item = self._items[rate] = parse_limit(rate)
        return item

    @staticmethod
    def key(limit: Limit, subject: Subject, v: Verdicts) -> str:
        """The bucket a limit counts in; a missing cluster or org falls back to the account."""
        if limit.scope == "cluster" and v.cluster_id:
            return f"cluster:{v.cluster_id}"
        org = subject.org_id or v.org_id
        if limit.scope == "org" and org:
            return f"org:{org}"
        return f"account:{subject.account_id}"

    async def hit(
        self, limits: tuple[Limit, ...], subject: Subject, v: Verdicts, *, consume: bool = True
    ) -> LimitHit | None:
        """Count the call against every limit; the first one exceeded, or ``None``.

        With ``consume=False`` (shadow rules) the limits are only tested.
        """
        for limit in limits:
            item = self._item(limit.rate)
            key = self.key(limit, subject, v)
            ids = (self.namespace, limit.rule, key)
            ok = (
                await self.strategy.hit(item, *ids)
                if consume
                else await self.strategy.test(item, *ids)
            )
            if not ok:
                stats = await self.strategy.get_window_stats(item, *ids)
                return LimitHit(limit, key, max(0.0, stats.reset_time - time.time()))
        return None

    async def healthy(self) -> bool:
        try:
            return bool(await self.storage.check())
        except Exception:
            return False


# --- degrading requests and responses ------------------------------------------------------------

_ZW = ("\u200b", "\u200c")  # zero-width space / non-joiner: bits 0 and 1


def canary_token(secret: bytes, account_id: str, bits: int = 32) -> str:
    """An invisible marker keyed to the account: ``bits`` zero-width characters from an HMAC.

    >>> t = canary_token(b"k", "acct-1"); len(t), decode_canary("ab" + t + "c") == t
    (32, True)
    """
    digest = hmac.new(secret, account_id.encode(), hashlib.sha256).digest()
    value = int.from_bytes(digest[:8], "big")
    return "".join(_ZW[(value >> (63 - i)) & 1] for i in range(bits))


def decode_canary(text: str) -> str | None:
    """The zero-width canary run in ``text``, if any (to match against :func:`canary_token`)."""
    run = "".join(ch for ch in text if ch in _ZW)
    return run or None


def degrade_request(body: dict[str, Any], d: Degrade) -> dict[str, Any]:
    """A copy of the request body with output capped, log-probabilities and extra choices off."""
    out = dict(body)
    if d.max_tokens is not None:
        for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
            value = out.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                out[key] = min(value, d.max_tokens)
        if not any(k in out for k in ("max_tokens", "max_completion_tokens", "max_output_tokens")):
            out["max_output_tokens" if "input" in out else "max_tokens"] = d.max_tokens
    if d.drop_logprobs:
        out.pop("top_logprobs", None)
        if "logprobs" in out:
            out["logprobs"] = False if isinstance(out["logprobs"], bool) else None
            if out["logprobs"] is None:
                del out["logprobs"]
    if d.single_choice and isinstance(out.get("n"), int) and out["n"] > 1:
        out["n"] = 1
    return out


def _reasoning(text: str, d: Degrade) -> str | None:
    if d.reasoning == "withhold":
        return None
    if len(text) <= d.summary_chars:
        return text
    return text[: d.summary_chars].rstrip() + " […]"


def _degrade_message(msg: dict[str, Any], d: Degrade, canary: str | None, key: str) -> bool:
    if d.reasoning != "keep":
        for field in ("reasoning_content", "reasoning"):
            if isinstance(msg.get(field), str):
                kept = _reasoning(msg[field], d)
                if kept is None:
                    del msg[field]
                else:
                    msg[field] = kept
    if d.drop_logprobs:
        msg.pop("logprobs", None)
    if canary and isinstance(msg.get(key), str):
        msg[key] = msg[key] + canary
        return True
    return False


def degrade_response(raw: bytes, endpoint: str, d: Degrade, canary: str | None) -> bytes:
    """A degraded copy of a non-streamed JSON response (unchanged when it is not JSON)."""
    return degrade_payload(raw, endpoint, d, canary)[0]


def degrade_payload(
    raw: bytes, endpoint: str, d: Degrade, canary: str | None
) -> tuple[bytes, bool]:
    """:func:`degrade_response`, and whether the canary text went into the answer."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw, False
    if not isinstance(doc, dict):
        return raw, False
    planted = False
    if endpoint == "responses":
        items = doc.get("output")
        if isinstance(items, list):
            if d.reasoning == "withhold":
                doc["output"] = items = [
                    i for i in items if not (isinstance(i, dict) and i.get("type") == "reasoning")
                ]
            for item in items:
                if isinstance(item, dict) and item.get("type") == "message" and canary:
                    for part in item.get("content") or ():
                        if isinstance(part, dict) and part.get("type") == "output_text":
                            part["text"] = str(part.get("text", "")) + canary
                            planted = True
                            break
                if planted:
                    break
    else:
        for i, choice in enumerate(doc.get("choices") or ()):
            if not isinstance(choice, dict):
                continue
            if d.drop_logprobs:
                choice.pop("logprobs", None)
            target = choice if endpoint == "completions" else choice.get("message")
            if isinstance(target, dict):
                key = "text" if endpoint == "completions" else "content"
                planted |= _degrade_message(target, d, canary if i == 0 else None, key)
    return orjson.dumps(doc), planted


class StreamDegrader:
    """Degrades an SSE stream chunk by chunk: lines are re-cut at newlines, reasoning deltas
    dropped or cut short, and the canary sent as one more text delta: before ``[DONE]`` (chat,
    completions), or before the first ``response.output_text.done`` of a Responses stream,
    whose done / part / item / completed events then carry it too. ``planted`` tells whether
    the canary was sent."""

    def __init__(self, endpoint: str, d: Degrade, canary: str | None) -> None:
        self.endpoint, self.d, self.canary = endpoint, d, canary
        self.planted = False
        self._buf = b""
        self._reasoning_sent = 0
        self._template: dict[str, Any] | None = None
        self._held: bytes | None = None  # a Responses stream's "event:" line, until its data
        self._marked: tuple[Any, Any] | None = None  # (item_id, content_index) given the canary
        self._shift = 0  # sequence numbers after the inserted canary event move up by one

    def feed(self, chunk: bytes) -> bytes:
        self._buf += chunk
        cut = self._buf.rfind(b"\n")
        if cut < 0:
            return b""
        ready, self._buf = self._buf[: cut + 1], self._buf[cut + 1 :]
        return b"".join(self._lines(ready.split(b"\n")[:-1]))

    def close(self) -> bytes:
        rest, self._buf = self._buf, b""
        return b"".join(self._lines([rest])) if rest else b""

    def _lines(self, lines: list[bytes]) -> Iterator[bytes]:
        if self.endpoint == "responses":
            yield from self._responses_lines(lines)
            return
        for line in lines:
            if not line.startswith(b"data:"):
                yield line + b"\n"
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                if self.canary and self._template is not None:
                    self.planted = True
                    yield b"data: " + orjson.dumps(self._canary_event()) + b"\n\n"
                yield line + b"\n"
                continue
            try:
                ev = orjson.loads(data)
            except orjson.JSONDecodeError:
                yield line + b"\n"
                continue
            ev = self._event(ev)
            if ev is not None:
                yield b"data: " + orjson.dumps(ev) + b"\n"

    def _responses_lines(self, lines: list[bytes]) -> Iterator[bytes]:
        for line in lines:
            if line.startswith(b"event:"):
                if self._held is not None:
                    yield self._held + b"\n"
                self._held = line
                continue
            held, self._held = self._held, None
            if not line.startswith(b"data:"):
                if held is not None:
                    yield held + b"\n"
                yield line + b"\n"
                continue
            try:
                ev = orjson.loads(line[5:].strip())
            except orjson.JSONDecodeError:
                yield (held + b"\n" if held is not None else b"") + line + b"\n"
                continue
            for out in self._responses_event(ev):
                head = b"event: " + str(out.get("type", "")).encode() + b"\n" if held else b""
                yield head + b"data: " + orjson.dumps(out) + b"\n"
                if out is not ev:  # an inserted event: close it; the stream closes the last
                    yield b"\n"

    def _responses_event(self, ev: Any) -> list[Any]:
        """The events to send for one upstream Responses event (none: withheld)."""
        if not isinstance(ev, dict):
            return [ev]
        kind = str(ev.get("type", ""))
        withhold = self.d.reasoning == "withhold"
        if withhold and "reasoning" in kind:
            return []
        item = ev.get("item")
        if withhold and isinstance(item, dict) and item.get("type") == "reasoning":
            return []
        if self._shift and isinstance(ev.get("sequence_number"), int):
            ev["sequence_number"] += self._shift
        out: list[Any] = []
        if kind == "response.output_text.done" and self.canary and self._marked is None:
            self._marked = (ev.get("item_id"), ev.get("content_index"))
            self.planted = True
            mark: dict[str, Any] = {
                "type": "response.output_text.delta",
                "item_id": ev.get("item_id"),
                "output_index": ev.get("output_index"),
                "content_index": ev.get("content_index"),
                "delta": self.canary,
            }
            if isinstance(ev.get("sequence_number"), int):
                mark["sequence_number"] = ev["sequence_number"]
                ev["sequence_number"] += 1
                self._shift += 1
            out.append(mark)
            if isinstance(ev.get("text"), str):
                ev["text"] += self.canary
        elif self._marked is not None and self.canary:
            self._mark_copies(ev, kind)
        response = ev.get("response")
        if withhold and isinstance(response, dict) and isinstance(response.get("output"), list):
            response["output"] = [
                i
                for i in response["output"]
                if not (isinstance(i, dict) and i.get("type") == "reasoning")
            ]
        out.append(ev)
        return out

    def _mark_copies(self, ev: dict[str, Any], kind: str) -> None:
        """Add the canary to the later events that repeat the marked text in full."""
        assert self._marked is not None and self.canary
        item_id, content_index = self._marked
        if kind == "response.content_part.done" and ev.get("item_id") == item_id:
            part = ev.get("part")
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] += self.canary
            return
        items: list[Any] = []
        if kind == "response.output_item.done":
            items = [ev.get("item")]
        elif isinstance(ev.get("response"), dict):
            items = list(ev["response"].get("output") or ())
        for item in items:
            if not (isinstance(item, dict) and item.get("id") == item_id):
                continue
            parts = item.get("content")
            if not (isinstance(parts, list) and isinstance(content_index, int)):
                continue
            part = parts[content_index] if 0 <= content_index < len(parts) else None
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] += self.canary

    def _event(self, ev: Any) -> Any:
        if not isinstance(ev, dict):
            return ev
        for choice in ev.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            if self.d.drop_logprobs:
                choice.pop("logprobs", None)
            delta = choice.get("delta")
            if isinstance(delta, dict) and self.d.reasoning != "keep":
                for field in ("reasoning_content", "reasoning"):
                    text = delta.get(field)
                    if isinstance(text, str):
                        room = (
                            0
                            if self.d.reasoning == "withhold"
                            else max(self.d.summary_chars - self._reasoning_sent, 0)
                        )
                        if room <= 0:
                            del delta[field]
                        else:
                            delta[field] = text[:room]
                            self._reasoning_sent += len(delta[field])
            if self._template is None:
                self._template = {k: ev.get(k) for k in ("id", "object", "created", "model")}
        return ev

    def _canary_event(self) -> dict[str, Any]:
        ev = dict(self._template or {})
        if self.endpoint == "completions":
            ev["choices"] = [{"index": 0, "text": self.canary, "finish_reason": None}]
        else:
            ev["choices"] = [{"index": 0, "delta": {"content": self.canary}, "finish_reason": None}]
        return ev
