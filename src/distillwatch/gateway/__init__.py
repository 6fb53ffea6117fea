"""The inline gateway: an OpenAI-compatible proxy that logs, scores and enforces in real time.

Detect ≠ decide ≠ enforce: scan verdicts (:mod:`.decisions`) and the live scorer
(:mod:`.online`) produce findings, a YAML :class:`Policy` maps them to a :class:`Decision`,
and the proxy (:class:`Gateway`) enforces it while the :class:`EventLog` writes every call in
the canonical schema. See docs/gateway.md.
"""

from distillwatch.gateway.config import GatewayConfig
from distillwatch.gateway.decisions import (
    AccountEntry,
    DecisionStore,
    Snapshot,
    load_scan,
    open_store,
    publish_scan,
)
from distillwatch.gateway.enforce import Limiter, canary_token, decode_canary
from distillwatch.gateway.eventlog import EventLog, open_sink
from distillwatch.gateway.online import LiveConfig, LiveScorer, OnlineRules
from distillwatch.gateway.policy import Policy, PolicyRule
from distillwatch.gateway.proxy import Gateway, openai_error
from distillwatch.gateway.values import ACTIONS, Decision, Degrade, Limit, Match, Subject, Verdicts

__all__ = [
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
