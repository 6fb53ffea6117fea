"""The admin endpoint: health, Prometheus metrics, what is known and decided for an account.

Served on its own address (``admin_listen``), never on the proxy's port. With ``admin_token``
set, every request needs ``Authorization: Bearer <token>``.

- ``GET /health``: 200 and JSON when the event log and the limiter work, else 503;
- ``GET /metrics``: Prometheus text;
- ``GET /decisions/{account_id}``: the scan finding, cluster finding, live finding and the
  decision the current policy gives, with evidence;
- ``POST /reload``: reload decisions and the policy file now.
"""

from __future__ import annotations

import hmac
from typing import Any

import orjson

from distillwatch.core.values import Finding
from distillwatch.gateway.asgi import plain_lifespan
from distillwatch.gateway.proxy import Gateway, Receive, Scope, Send, _send, openai_error
from distillwatch.gateway.values import Subject, evidence_record


def finding_record(f: Finding | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {
        "subject": f.subject,
        "score": f.score,
        "tier": f.tier,
        "evidence": [evidence_record(e) for e in f.evidence],
    }


class AdminApp:
    """ASGI app over one :class:`Gateway`."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        token = gateway.config.admin_token
        self._token = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await plain_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if self._token is not None:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._token):
                await _send(
                    send,
                    401,
                    openai_error(
                        401, "admin token required", "invalid_request_error", "invalid_api_key"
                    ),
                )
                return
        path, method = scope["path"], scope["method"]
        if path == "/health":
            doc = await self.health()
            await _send(send, 200 if doc["status"] == "ok" else 503, orjson.dumps(doc))
        elif path == "/metrics":
            text = self.gw.metrics.render(self.gauges()).encode()
            await _send(send, 200, text, [(b"content-type", b"text/plain; version=0.0.4")])
        elif path.startswith("/decisions/") and method == "GET":
            account = path[len("/decisions/") :]
            await _send(send, 200, orjson.dumps(self.account(account)))
        elif path == "/reload" and method == "POST":
            loaded = await self.gw.reload_decisions(force=True)
            policy = self.gw.reload_policy()
            doc = {
                "decisions_generation": self.gw.snapshot.generation,
                "decisions_reloaded": loaded,
                "policy_reloaded": policy,
            }
            await _send(send, 200, orjson.dumps(doc))
        else:
            await _send(
                send,
                404,
                openai_error(
                    404, f"unknown admin path {path}", "invalid_request_error", "unknown_url"
                ),
            )

    async def health(self) -> dict[str, Any]:
        gw = self.gw
        limiter_ok = await gw.limiter.healthy()
        accepting = gw.events.max_pending > len(gw.events._queue)
        return {
            "status": "ok" if limiter_ok and accepting else "degraded",
            "node": gw.config.node,
            "upstream": gw.config.upstream,
            "limiter": "ok" if limiter_ok else "unreachable",
            "event_log": {
                "sink": gw.events.sink.uri,
                "pending": gw.events.pending,
                **{k: getattr(gw.events.stats, k) for k in gw.events.stats.__slots__},
            },
            "decisions_generation": gw.snapshot.generation,
            "decision_accounts": len(gw.snapshot.accounts),
            "policy_rules": len(gw.policy.rules),
            "policy_error": gw.policy_error,
            "live_accounts": len(gw.live.findings),
            "live": {
                "mode": gw.live.mode,
                "pid": gw.live.pid,
                "pending": gw.live.pending,
                "lag_seconds": round(gw.live.lag, 3),
                "scored": gw.live.scored,
                "dropped": gw.live.dropped,
                "batches": gw.live.batches,
                "boosts": gw.live.boosts,
                "boosted": gw.live.boosted,
            },
            "canaries": {
                "registry": gw.canaries.uri,
                "pending": gw.canaries.pending,
                **{k: getattr(gw.canaries.stats, k) for k in gw.canaries.stats.__slots__},
            },
        }

    def gauges(self) -> dict[str, float]:
        gw = self.gw
        s = gw.events.stats
        return {
            "dw_events_submitted": s.submitted,
            "dw_events_acknowledged": s.acknowledged,
            "dw_events_delivered": s.delivered,
            "dw_events_recovered": s.recovered,
            "dw_events_pending": gw.events.pending,
            "dw_events_refused": s.refused,
            "dw_sink_delivery_failures": s.delivery_failures,
            "dw_spool_bytes": s.spooled_bytes,
            "dw_decisions_generation": gw.snapshot.generation,
            "dw_decision_accounts": len(gw.snapshot.accounts),
            "dw_live_accounts": len(gw.live.findings),
            "dw_live_scored": gw.live.scored,
            "dw_live_dropped": gw.live.dropped,
            "dw_live_pending": gw.live.pending,
            "dw_live_lag_seconds": gw.live.lag,
            "dw_live_batches": gw.live.batches,
            "dw_live_boosts": gw.live.boosts,
        }

    def account(self, account_id: str) -> dict[str, Any]:
        gw = self.gw
        entry = gw.snapshot.accounts.get(account_id)
        subject = Subject(account_id, entry.org_id if entry else None)
        v = gw.verdicts(subject)
        decision = gw.policy.decide(v)
        return {
            "account_id": account_id,
            "org_id": v.org_id,
            "cluster_id": v.cluster_id,
            "decisions_generation": gw.snapshot.generation,
            "scan": finding_record(v.account),
            "cluster": finding_record(v.cluster),
            "live": finding_record(v.live),
            "decision": decision.to_record(),
        }
