"""The proxy: an ASGI app in front of an OpenAI-compatible API that logs, scores and enforces.

Per call, on the request path: find the account, read and parse the body, look up what is
known of the account (an in-memory snapshot of scan decisions plus the live finding), ask the
policy, enforce (refuse, rate-limit, degrade), forward, and stream the answer back chunk by
chunk. Everything else (records, spooling, scoring, reloads) happens in background tasks.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from distillwatch.gateway.canaries import CanaryRecorder, PlantedCanary
from distillwatch.gateway.config import GatewayConfig
from distillwatch.gateway.decisions import DecisionStore, Snapshot, open_store
from distillwatch.gateway.enforce import (
    Limiter,
    StreamDegrader,
    canary_token,
    degrade_payload,
    degrade_request,
)
from distillwatch.gateway.eventlog import EventLog, open_sink
from distillwatch.gateway.events import ENDPOINT_BY_PATH, Capture
from distillwatch.gateway.live import LiveRunner
from distillwatch.gateway.metrics import Metrics
from distillwatch.gateway.policy import Policy
from distillwatch.gateway.values import Decision, Subject, Verdicts
from distillwatch.watermark.countermeasures import canary_sentence

log = logging.getLogger("distillwatch.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_HOP = {
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"content-length",
    b"content-encoding",
    b"te",
    b"trailer",
    b"upgrade",
    b"date",
    b"server",
    b"proxy-authorization",
    b"proxy-authenticate",
    b"host",
}


def openai_error(status: int, message: str, kind: str, code: str | None = None) -> bytes:
    """An error body in the OpenAI shape: ``{"error": {"message", "type", "param", "code"}}``.

    >>> openai_error(429, "slow down", "rate_limit_error", "rate_limit_exceeded")[:30]
    b'{"error":{"message":"slow down'
    """
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


class _Refusal(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        kind: str,
        code: str,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.code, self.headers = status, kind, code, headers or []


class Gateway:
    """The ASGI application (``uvicorn`` runs it); one instance per process."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.policy: Policy = config.policy
        self._policy_mtime = _mtime(config.policy_path)
        self.policy_error: str | None = None  # the last failed reload's message, until one works
        self.metrics = Metrics()
        self.snapshot = Snapshot()
        self.store: DecisionStore | None = None
        self.live = LiveRunner(
            config.live,
            config.live_mode,
            interval=config.live_interval,
            max_lag=config.live_max_lag,
            priority=config.live_priority,
            max_pending=config.max_pending,
        )
        sink = open_sink(config.sink)
        spool = Path(config.spool) if config.spool else _default_spool(config.sink)
        self.events = EventLog(
            sink,
            spool / config.node,
            node=config.node,
            rotate_seconds=config.rotate_seconds,
            rotate_rows=config.rotate_rows,
            max_pending=config.max_pending,
            max_spool_bytes=config.max_spool_bytes,
            fsync=config.fsync,
            on_records=self.live.submit,
        )
        self.limiter = Limiter(config.limits, config.limits_namespace)
        self.session: aiohttp.ClientSession | None = None
        self._upstream = config.upstream.rstrip("/")
        self._tasks: list[asyncio.Task[None]] = []
        self._secret = config.canary_secret.encode()
        self.canaries = CanaryRecorder(
            self._secret,
            config.canary_registry,
            period_seconds=config.canary_period_seconds,
            facts_per_period=config.canary_facts_per_period,
        )
        self._account_header = (
            config.account_header.lower().encode() if config.account_header else None
        )
        self._org_header = config.org_header.lower().encode() if config.org_header else None
        self._started = False

    # --- lifecycle ------------------------------------------------------------------------------

    async def startup(self) -> None:
        if self._started:
            return
        self._started = True
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.config.connect_timeout, sock_read=self.config.read_timeout
        )
        connector = aiohttp.TCPConnector(
            limit=self.config.max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
        )
        self.session = aiohttp.ClientSession(
            timeout=timeout,
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
        await self.events.start()
        await self.live.start()
        await self.canaries.start()
        if self.config.decisions:
            self.store = open_store(self.config.decisions)
            await self.reload_decisions()
            self._tasks.append(asyncio.create_task(self._reload_loop(), name="dw-reload"))
        elif self.config.policy_path:
            self._tasks.append(asyncio.create_task(self._reload_loop(), name="dw-reload"))

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.events.stop()
        await self.live.stop()
        await self.canaries.stop()
        if self.session is not None:
            await self.session.close()
        if self.store is not None:
            self.store.close()

    async def reload_decisions(self, force: bool = False) -> bool:
        """Take the store's newest generation if it moved; True when a new one was loaded."""
        if self.store is None:
            return False
        try:
            gen = await asyncio.to_thread(self.store.generation)
            if gen == self.snapshot.generation and not force:
                return False
            self.snapshot = await asyncio.to_thread(self.store.snapshot)
            self.metrics.inc("dw_decision_reloads_total")
            log.info(
                "decisions: generation %d, %d accounts",
                self.snapshot.generation,
                len(self.snapshot.accounts),
            )
            return True
        except Exception as exc:  # a store outage keeps the last good snapshot
            self.metrics.inc("dw_decision_reload_errors_total")
            log.warning("decisions: cannot reload from %s: %s", self.config.decisions, exc)
            return False

    def reload_policy(self) -> bool:
        path = self.config.policy_path
        mtime = _mtime(path)
        if path is None or mtime == self._policy_mtime:
            return False
        try:
            self.policy = Policy.load(path)
            self._policy_mtime = mtime
            self.policy_error = None
            self.metrics.inc("dw_policy_reloads_total")
            log.info("policy: reloaded %s (%d rules)", path, len(self.policy.rules))
            return True
        except Exception as exc:  # keep enforcing the last good policy
            self._policy_mtime = mtime
            self.policy_error = str(exc)
            self.metrics.inc("dw_policy_reload_errors_total")
            log.error("policy: %s; keeping the last good policy", exc)
            return False

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.reload_seconds)
            await self.reload_decisions()
            self.reload_policy()

    # --- what the policy sees -------------------------------------------------------------------

    def verdicts(self, subject: Subject) -> Verdicts:
        v = self.snapshot.verdicts(subject.account_id)
        live = self.live.finding(subject.account_id)
        if live is None and subject.org_id is None:
            return v
        org = v.org_id or subject.org_id
        return Verdicts(v.account, v.cluster, live, v.cluster_id, org, subject.account_id)

    # --- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        path = scope["path"]
        method = scope["method"]
        endpoint = ENDPOINT_BY_PATH.get(path)
        if endpoint is not None and method == "POST":
            await self._call(scope, receive, send, path, endpoint)
        elif path == "/v1/models" and method == "GET":
            await self._models(scope, send)
        elif endpoint is not None or path == "/v1/models":
            await _send(
                send,
                405,
                openai_error(
                    405,
                    f"{method} not allowed on {path}",
                    "invalid_request_error",
                    "method_not_allowed",
                ),
            )
        else:
            await _send(
                send,
                404,
                openai_error(404, f"unknown path {path}", "invalid_request_error", "unknown_url"),
            )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("gateway failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _subject(self, headers: dict[bytes, bytes]) -> Subject | None:
        if self._account_header is not None:
            account = headers.get(self._account_header)
            if account:
                org = headers.get(self._org_header) if self._org_header else None
                return Subject(
                    account.decode("utf-8", "replace"),
                    org.decode("utf-8", "replace") if org else None,
                )
        auth = headers.get(b"authorization", b"")
        key = auth[7:].strip() if auth[:7].lower() == b"bearer " else headers.get(b"api-key", b"")
        return self.config.subject(key.decode("utf-8", "replace")) if key else None

    def _upstream_headers(self, headers: dict[bytes, bytes], request_id: str) -> dict[str, str]:
        # not x-request-id: llama-cpp-python's server answers 400 to one that is not its own format
        out = {"content-type": "application/json", "x-distillwatch-request-id": request_id}
        if self.config.upstream_api_key:
            out["authorization"] = f"Bearer {self.config.upstream_api_key}"
        elif b"authorization" in headers:
            out["authorization"] = headers[b"authorization"].decode("latin-1")
        accept = headers.get(b"accept")
        if accept:
            out["accept"] = accept.decode("latin-1")
        return out

    async def _models(self, scope: Scope, send: Send) -> None:
        headers = dict(scope["headers"])
        if self._subject(headers) is None:
            await _send(
                send,
                401,
                openai_error(401, "invalid API key", "invalid_request_error", "invalid_api_key"),
            )
            return
        assert self.session is not None
        try:
            async with self.session.get(
                self._upstream + "/v1/models", headers=self._upstream_headers(headers, "models")
            ) as resp:
                body = await resp.read()
                await _send(send, resp.status, body, _pass_headers(resp))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            status, err = _upstream_error(exc)
            await _send(send, status, err)

    async def _call(
        self, scope: Scope, receive: Receive, send: Send, path: str, endpoint: str
    ) -> None:
        t0 = time.perf_counter()
        m = self.metrics
        headers = dict(scope["headers"])
        subject = self._subject(headers)
        if subject is None:
            m.inc("dw_requests_total", status="401")
            await _send(
                send,
                401,
                openai_error(401, "invalid API key", "invalid_request_error", "invalid_api_key"),
            )
            return
        request_id = "dwreq_" + uuid.uuid4().hex
        client = scope.get("client")
        ua = headers.get(b"user-agent")
        cap = Capture(
            ts=time.time(),
            request_id=request_id,
            subject=subject,
            endpoint=endpoint,
            body=None,
            client_ip=client[0] if client else None,
            user_agent=ua.decode("utf-8", "replace") if ua else None,
        )
        if not self.events.accepting():
            m.inc("dw_requests_total", status="503")
            await _send(
                send,
                503,
                openai_error(
                    503,
                    "the gateway's event log is behind; retry shortly",
                    "server_error",
                    "event_log_full",
                ),
                [(b"retry-after", b"1")],
            )
            return
        try:
            status = await self._handle(scope, receive, send, headers, path, endpoint, cap, t0)
        except _Refusal as r:
            status = r.status
            cap.status, cap.error = r.status, r.code
            cap.response = openai_error(r.status, str(r), r.kind, r.code)
            await _send(
                send, r.status, cap.response, [*r.headers, (b"x-request-id", request_id.encode())]
            )
        except Exception as exc:  # a bug must not take the gateway down; the call is still logged
            log.exception("gateway error on %s", request_id)
            status = cap.status or 500
            cap.status, cap.error = status, f"gateway_error: {type(exc).__name__}"
        total = (time.perf_counter() - t0) * 1000
        cap.latency_ms = total
        m.inc("dw_requests_total", status=str(status))
        if cap.overhead_ms:
            m.observe_overhead(cap.overhead_ms)
        self.events.submit(cap)

    async def _read_body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes:
        limit = self.config.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _Refusal(
                400,
                f"request body over {limit} bytes",
                "invalid_request_error",
                "request_too_large",
            )
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refusal(
                    499, "client disconnected", "invalid_request_error", "client_disconnected"
                )
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refusal(
                    400,
                    f"request body over {limit} bytes",
                    "invalid_request_error",
                    "request_too_large",
                )
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        path: str,
        endpoint: str,
        cap: Capture,
        t0: float,
    ) -> int:
        raw = await self._read_body(receive, headers)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Refusal(
                400,
                f"request body is not valid JSON: {exc}",
                "invalid_request_error",
                "invalid_json",
            ) from None
        if not isinstance(body, dict):
            raise _Refusal(
                400, "request body must be a JSON object", "invalid_request_error", "invalid_json"
            )
        cap.body = body
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise _Refusal(
                400, "you must provide a model parameter", "invalid_request_error", "missing_model"
            )

        v = self.verdicts(cap.subject)
        decision = self.policy.decide(v)
        cap.decision = decision
        cap.live_score = v.live.score if v.live else None
        m = self.metrics
        m.inc("dw_decisions_total", action=decision.action)
        if decision.action in ("block", "verify"):
            if decision.action == "block":
                raise _Refusal(
                    403,
                    "this account is blocked from the API",
                    "permission_error",
                    "account_blocked",
                )
            raise _Refusal(
                403,
                "verification required: confirm your identity to continue using the API",
                "permission_error",
                "verification_required",
            )
        if decision.limits:
            hit = await self.limiter.hit(decision.limits, cap.subject, v)
            if hit is not None:
                m.inc("dw_throttled_total", scope=hit.limit.scope)
                retry = str(max(1, int(hit.retry_after + 0.999))).encode()
                raise _Refusal(
                    429,
                    f"rate limit reached for {hit.limit.scope} ({hit.limit.rate})",
                    "rate_limit_error",
                    "rate_limit_exceeded",
                    [(b"retry-after", retry)],
                )
        shadow_limits = self.policy.shadow_limits(decision) if decision.matches else ()
        if shadow_limits and await self.limiter.hit(shadow_limits, cap.subject, v, consume=False):
            m.inc("dw_shadow_throttled_total")
        degrade = (
            decision.degrade if decision.action == "degrade" or decision.degrade.active else None
        )
        data = raw
        if degrade is not None:
            data = orjson.dumps(degrade_request(body, degrade))
            m.inc("dw_degraded_total")
        fact = (
            self.canaries.pick(cap.subject.account_id, cap.ts, cap.request_id)
            if degrade and degrade.canary_fact
            else None
        )
        # the text appended to the answer: the canary fact's sentence, then the invisible marker
        marks = [canary_sentence(fact.canary)] if fact else []
        if degrade and degrade.canary:
            marks.append(canary_token(self._secret, cap.subject.account_id))
        canary = "".join(marks) or None
        stream = body.get("stream") is True
        return await self._forward(
            send, headers, path, endpoint, data, stream, cap, t0, degrade, canary, decision, fact
        )

    def _planted(self, cap: Capture, fact: PlantedCanary | None) -> None:
        """The answer carried its canary fact: note it in the record, count it for the registry."""
        if fact is not None:
            cap.canary = fact.record()
            self.canaries.planted(fact, cap.ts)
            self.metrics.inc("dw_canaries_planted_total")

    async def _forward(
        self,
        send: Send,
        headers: dict[bytes, bytes],
        path: str,
        endpoint: str,
        data: bytes,
        stream: bool,
        cap: Capture,
        t0: float,
        degrade: Any,
        canary: str | None,
        decision: Decision,
        fact: PlantedCanary | None = None,
    ) -> int:
        assert self.session is not None
        rid = cap.request_id.encode()
        t_up = time.perf_counter()
        pre = t_up - t0
        try:
            resp = await self.session.post(
                self._upstream + path,
                data=data,
                headers=self._upstream_headers(headers, cap.request_id),
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            status, err = _upstream_error(exc)
            cap.status, cap.error, cap.response = status, orjson.loads(err)["error"]["code"], err
            cap.overhead_ms = pre * 1000
            await _send(send, status, err, [(b"x-request-id", rid)])
            return status
        async with resp:
            out_headers = [*_pass_headers(resp), (b"x-request-id", rid)]
            cap.status = resp.status
            is_sse = resp.content_type == "text/event-stream"
            if not (stream and is_sse):
                try:
                    payload = await resp.read()
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    status, err = _upstream_error(exc)
                    cap.status, cap.error, cap.response = (
                        status,
                        orjson.loads(err)["error"]["code"],
                        err,
                    )
                    await _send(send, status, err, [(b"x-request-id", rid)])
                    return status
                t_back = time.perf_counter()
                cap.response = payload
                planted = False
                if degrade is not None and resp.status == 200:
                    payload, planted = degrade_payload(payload, endpoint, degrade, canary)
                await _send(send, resp.status, payload, out_headers)
                if planted:  # counted once sent
                    self._planted(cap, fact)
                cap.overhead_ms = (pre + time.perf_counter() - t_back) * 1000
                return resp.status
            await send(
                {"type": "http.response.start", "status": resp.status, "headers": out_headers}
            )
            shaper = StreamDegrader(endpoint, degrade, canary) if degrade is not None else None
            work = 0.0
            try:
                async for chunk in resp.content.iter_any():
                    t_c = time.perf_counter()
                    cap.chunks.append(chunk)
                    if shaper is not None:
                        chunk = shaper.feed(chunk)
                        if not chunk:
                            continue
                    work += time.perf_counter() - t_c
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if shaper is not None:
                    tail = shaper.close()
                    if tail:
                        await send({"type": "http.response.body", "body": tail, "more_body": True})
                    if shaper.planted and resp.status == 200:
                        self._planted(cap, fact)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                cap.error = (
                    "upstream_timeout" if isinstance(exc, TimeoutError) else "upstream_disconnected"
                )
                log.warning("stream %s cut short: %s", cap.request_id, exc)
            except Exception:  # the client went away: keep what was seen
                cap.error = "client_disconnected"
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except Exception:
                cap.error = cap.error or "client_disconnected"
            cap.overhead_ms = (pre + work) * 1000
            return resp.status


def _pass_headers(resp: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    return [
        (k.lower(), v)
        for k, v in resp.raw_headers
        if k.lower() not in _HOP and not k.lower().startswith(b"x-request-id")
    ]


def _upstream_error(exc: BaseException) -> tuple[int, bytes]:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return 504, openai_error(
            504,
            "the upstream model server did not answer in time",
            "server_error",
            "upstream_timeout",
        )
    return 502, openai_error(
        502,
        f"the upstream model server is unavailable ({type(exc).__name__})",
        "server_error",
        "upstream_unavailable",
    )


async def _send(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    has_type = headers is not None and any(k == b"content-type" for k, _ in headers)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*(headers or []), *([] if has_type else _JSON)],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _mtime(path: str | None) -> tuple[int, int] | None:
    """What tells a changed file: modification time (ns) and size."""
    if not path:
        return None
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _default_spool(sink_uri: str) -> Path:
    if sink_uri.startswith("file://"):
        folder = sink_uri[len("file://") :].split("?", 1)[0]
        return Path(folder) / ".spool"
    return Path(".distillwatch-spool")
