"""Values the gateway passes around: what the policy decided for one call, and why.

Frozen and slotted, like every value that crosses a package boundary: the decision store,
the live scorer, the policy and the enforcement code only ever exchange these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from distillwatch.core.values import Evidence, Finding

Action = Literal["allow", "watch", "degrade", "throttle", "verify", "block"]

ACTIONS: Final[tuple[Action, ...]] = ("allow", "watch", "degrade", "throttle", "verify", "block")
"""Actions from mildest to most severe; the policy keeps the most severe one that applies."""

SEVERITY: Final = {action: rank for rank, action in enumerate(ACTIONS)}


@dataclass(frozen=True, slots=True)
class Subject:
    """Who is calling: the account (from the API key or a trusted header) and its organisation."""

    account_id: str
    org_id: str | None = None
    api_key_id: str | None = None


@dataclass(frozen=True, slots=True)
class Verdicts:
    """What is known about an account when a call arrives.

    ``account`` and ``cluster`` come from the latest batch ``scan`` (via the decision store),
    ``live`` from the gateway's own online scorer; any of them may be missing.
    """

    account: Finding | None = None
    cluster: Finding | None = None
    live: Finding | None = None
    cluster_id: str | None = None
    org_id: str | None = None
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class Degrade:
    """How to weaken a response without refusing it.

    ``reasoning``: ``keep``, ``withhold`` (drop visible reasoning text) or ``summarise`` (keep
    its first ``summary_chars`` characters); ``max_tokens`` caps the output; ``drop_logprobs``
    and ``single_choice`` remove log-probabilities and ``n`` > 1; ``canary`` appends an invisible
    marker keyed to the account, ``canary_fact`` a fictitious fact unique to the account (recorded
    in the canary registry), so leaked outputs and models trained on them can be traced back.
    """

    reasoning: Literal["keep", "withhold", "summarise"] = "keep"
    summary_chars: int = 200
    max_tokens: int | None = None
    drop_logprobs: bool = False
    single_choice: bool = False
    canary: bool = False
    canary_fact: bool = False

    def merge(self, other: Degrade) -> Degrade:
        """The stricter of two degradations, field by field."""
        order = ("keep", "summarise", "withhold")
        caps = [c for c in (self.max_tokens, other.max_tokens) if c is not None]
        reasoning = max(self.reasoning, other.reasoning, key=order.index)
        return Degrade(
            reasoning=reasoning,
            summary_chars=min(self.summary_chars, other.summary_chars),
            max_tokens=min(caps) if caps else None,
            drop_logprobs=self.drop_logprobs or other.drop_logprobs,
            single_choice=self.single_choice or other.single_choice,
            canary=self.canary or other.canary,
            canary_fact=self.canary_fact or other.canary_fact,
        )

    @property
    def active(self) -> bool:
        return self != Degrade()


@dataclass(frozen=True, slots=True)
class Limit:
    """One rate limit to enforce: ``rate`` in the ``limits`` syntax (``"10/minute"``), keyed by
    ``scope`` (``account``, ``cluster`` or ``org``) and set by policy rule ``rule``."""

    rate: str
    scope: Literal["account", "cluster", "org"]
    rule: str


@dataclass(frozen=True, slots=True)
class Match:
    """One policy rule that matched: its id, action, whether it only watched (shadow) and the
    evidence of the conditions it tested."""

    rule: str
    action: Action
    shadow: bool
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer for one call.

    ``action`` is the most severe enforced action; ``matches`` lists every rule that fired,
    shadow ones included, so a log shows what a shadow policy *would* have done.
    """

    action: Action
    matches: tuple[Match, ...] = ()
    limits: tuple[Limit, ...] = ()
    degrade: Degrade = field(default_factory=Degrade)

    @property
    def shadow_action(self) -> Action:
        """The most severe action including shadow rules: what enforcement would have done."""
        actions = [self.action, *(m.action for m in self.matches)]
        return max(actions, key=SEVERITY.__getitem__)

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready summary, written with every logged call."""
        return {
            "action": self.action,
            "shadow_action": self.shadow_action,
            "matches": [
                {
                    "rule": m.rule,
                    "action": m.action,
                    "shadow": m.shadow,
                    "evidence": [_evidence(e) for e in m.evidence],
                }
                for m in self.matches
            ],
        }


ALLOW: Final = Decision("allow")


def _evidence(e: Evidence) -> dict[str, Any]:
    return {
        "signal": e.signal,
        "value": e.value,
        "baseline": e.baseline,
        "weight": e.weight,
        "source": e.source,
    }


def evidence_record(e: Evidence) -> dict[str, Any]:
    """``e`` as a JSON-ready dict (the shape scan writes in ``accounts.parquet``)."""
    return _evidence(e)
