"""A small, fast OpenAI-compatible model server for tests, benchmarks and demos.

It answers ``/v1/chat/completions`` (plain and SSE), ``/v1/completions``, ``/v1/responses``
and ``/v1/models`` with a fixed short answer and visible reasoning text, so the gateway's
parsing, degrading and logging paths all run. Request field ``stub_delay_ms`` delays one answer
(timeouts); ``--delay-ms`` delays every answer (an upstream with real latency).

Run: ``python -m distillwatch.gateway.stub --port 9000`` or
``distillwatch gateway stub-upstream --port 9000``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from distillwatch.gateway.asgi import plain_lifespan

ANSWER = "The answer is 4."
REASONING = "The user asks for 2+2. Two plus two is four. I should answer briefly."
MODEL = "stub-1"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _usage() -> dict[str, Any]:
    return {
        "prompt_tokens": 12,
        "completion_tokens": 6,
        "total_tokens": 18,
        "completion_tokens_details": {"reasoning_tokens": 15},
    }


class StubUpstream:
    """The ASGI app; ``delay_ms`` is added to every answer, ``chunks`` is the SSE word count."""

    def __init__(self, delay_ms: float = 0.0) -> None:
        self.delay_ms = delay_ms
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await plain_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self.calls += 1
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        path = scope["path"]
        try:
            req = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            await _json(
                send, 400, {"error": {"message": "bad json", "type": "invalid_request_error"}}
            )
            return
        asked = req.get("stub_delay_ms", 0) if isinstance(req, dict) else 0
        delay = (asked if isinstance(asked, int | float) else 0) + self.delay_ms
        if delay:
            await asyncio.sleep(delay / 1000)
        if path == "/v1/models":
            doc: dict[str, Any] = {
                "object": "list",
                "data": [{"id": MODEL, "object": "model", "owned_by": "stub"}],
            }
            await _json(send, 200, doc)
            return
        model = req.get("model", MODEL) if isinstance(req, dict) else MODEL
        stream = isinstance(req, dict) and req.get("stream") is True
        if path == "/v1/chat/completions":
            if stream:
                await self._chat_stream(send, model, req)
            else:
                n: int = req["n"] if isinstance(req.get("n"), int) else 1
                choices: list[dict[str, Any]] = [
                    {
                        "index": i,
                        "message": {
                            "role": "assistant",
                            "content": f"{ANSWER} ({i})" if i else ANSWER,
                            "reasoning_content": REASONING,
                        },
                        "logprobs": {"content": []} if req.get("logprobs") else None,
                        "finish_reason": "stop",
                    }
                    for i in range(max(1, n))
                ]
                doc = {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": choices,
                    "usage": _usage(),
                }
                await _json(send, 200, doc)
        elif path == "/v1/completions":
            k: int = req["n"] if isinstance(req.get("n"), int) else 1
            doc = {
                "id": "cmpl-stub",
                "object": "text_completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": i,
                        "text": f"{ANSWER} ({i})" if i else ANSWER,
                        "finish_reason": "stop",
                    }
                    for i in range(max(1, k))
                ],
                "usage": _usage(),
            }
            await _json(send, 200, doc)
        elif path == "/v1/responses" and stream:
            await self._responses_stream(send, model)
        elif path == "/v1/responses":
            doc = {
                "id": "resp-stub",
                "object": "response",
                "model": model,
                "status": "completed",
                "output": [
                    {"type": "reasoning", "summary": [{"type": "summary_text", "text": REASONING}]},
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": ANSWER}],
                    },
                ],
                "usage": {
                    "input_tokens": 12,
                    "output_tokens": 6,
                    "output_tokens_details": {"reasoning_tokens": 15},
                },
            }
            await _json(send, 200, doc)
        else:
            await _json(
                send, 404, {"error": {"message": "not found", "type": "invalid_request_error"}}
            )

    async def _chat_stream(self, send: Send, model: str, req: dict[str, Any]) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        base: dict[str, Any] = {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        pieces: list[dict[str, Any]] = [
            {"role": "assistant", "reasoning_content": w + " "} for w in REASONING.split(" ")
        ]
        pieces += [{"content": w + (" " if i < 3 else "")} for i, w in enumerate(ANSWER.split(" "))]
        gap = float(req.get("stub_chunk_delay_ms", 0) or 0) / 1000
        n = req["n"] if isinstance(req.get("n"), int) and req["n"] > 1 else 1
        for delta in pieces:
            choices = [{"index": i, "delta": delta, "finish_reason": None} for i in range(n)]
            ev = {**base, "choices": choices}
            await send(
                {
                    "type": "http.response.body",
                    "body": b"data: " + orjson.dumps(ev) + b"\n\n",
                    "more_body": True,
                }
            )
            if gap:
                await asyncio.sleep(gap)
        last = {
            **base,
            "choices": [{"index": i, "delta": {}, "finish_reason": "stop"} for i in range(n)],
            "usage": _usage(),
        }
        await send(
            {
                "type": "http.response.body",
                "body": b"data: " + orjson.dumps(last) + b"\n\ndata: [DONE]\n\n",
                "more_body": False,
            }
        )

    async def _responses_stream(self, send: Send, model: str) -> None:
        """A Responses-API event stream (``event:`` + ``data:``), reasoning summary first."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        reasoning = {"id": "rs_stub", "type": "reasoning", "summary": []}
        message: dict[str, Any] = {
            "id": "msg_stub",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        resp: dict[str, Any] = {
            "id": "resp-stub",
            "object": "response",
            "model": model,
            "status": "in_progress",
            "output": [],
        }
        done_part = {"type": "output_text", "text": ANSWER, "annotations": []}
        summary = {"type": "summary_text", "text": REASONING}
        words = ANSWER.split(" ")
        deltas = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
        text_ids = {"item_id": "msg_stub", "output_index": 1, "content_index": 0}
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": resp},
            {"type": "response.output_item.added", "output_index": 0, "item": reasoning},
            *(
                {
                    "type": "response.reasoning_summary_text.delta",
                    "item_id": "rs_stub",
                    "output_index": 0,
                    "summary_index": 0,
                    "delta": w + " ",
                }
                for w in REASONING.split(" ")
            ),
            {
                "type": "response.output_item.done",
                "output_index": 0,
                "item": {**reasoning, "summary": [summary]},
            },
            {"type": "response.output_item.added", "output_index": 1, "item": message},
            {
                "type": "response.content_part.added",
                **text_ids,
                "part": {**done_part, "text": ""},
            },
            *({"type": "response.output_text.delta", **text_ids, "delta": d} for d in deltas),
            {"type": "response.output_text.done", **text_ids, "text": ANSWER},
            {"type": "response.content_part.done", **text_ids, "part": done_part},
            {
                "type": "response.output_item.done",
                "output_index": 1,
                "item": {**message, "status": "completed", "content": [done_part]},
            },
            {
                "type": "response.completed",
                "response": {
                    **resp,
                    "status": "completed",
                    "output": [
                        {**reasoning, "summary": [summary]},
                        {**message, "status": "completed", "content": [done_part]},
                    ],
                    "usage": {
                        "input_tokens": 12,
                        "output_tokens": 6,
                        "output_tokens_details": {"reasoning_tokens": 15},
                    },
                },
            },
        ]
        for seq, ev in enumerate(events):
            ev = {**ev, "sequence_number": seq}
            data = b"event: " + ev["type"].encode() + b"\ndata: " + orjson.dumps(ev) + b"\n\n"
            last = seq == len(events) - 1
            await send({"type": "http.response.body", "body": data, "more_body": not last})


async def _json(send: Send, status: int, doc: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": orjson.dumps(doc)})


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    uvicorn.run(
        StubUpstream(args.delay_ms),
        host=args.host,
        port=args.port,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
