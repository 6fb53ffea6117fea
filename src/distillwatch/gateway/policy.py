"""Policy as data: YAML rules that map findings to actions.

A policy file is a list of rules; each names the conditions it tests (``when``), the action it
takes and whether it only watches (``shadow``). For a call, every rule whose conditions all
hold *matches*; the decision is the most severe action among the non-shadow matches, and all
matches (shadow ones too) are logged with the evidence they saw. Conditions read only
:class:`~distillwatch.gateway.values.Verdicts`: the batch scan's account and cluster findings
and the gateway's own live finding.

>>> policy = Policy.from_dict({"rules": [
...     {"id": "scan-block", "when": {"tier": ["block"]}, "action": "block"}]})
>>> from distillwatch.core.values import Finding
>>> policy.decide(Verdicts(account=Finding("a", 0.99, "block", ()))).action
'block'
>>> policy.decide(Verdicts()).action
'allow'
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import jsonschema
import yaml
from limits import parse as parse_limit

from distillwatch.core.errors import DistillwatchError
from distillwatch.core.values import TIERS, Evidence, Finding
from distillwatch.gateway.values import (
    ACTIONS,
    SEVERITY,
    Action,
    Decision,
    Degrade,
    Limit,
    Match,
    Verdicts,
)

_THRESHOLD = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"gte": {"type": "number"}, "lt": {"type": "number"}},
    "minProperties": 1,
}
_TIER_LIST = {"type": "array", "items": {"enum": list(TIERS)}, "minItems": 1}

POLICY_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "distillwatch gateway policy",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "version": {"const": 1},
        "shadow": {"type": "boolean"},
        "rules": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "action"],
                "properties": {
                    "id": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_./-]*$"},
                    "version": {"type": "integer", "minimum": 1},
                    "description": {"type": "string"},
                    "action": {"enum": list(ACTIONS)},
                    "shadow": {"type": "boolean"},
                    "limit": {"type": "string"},
                    "scope": {"enum": ["account", "cluster", "org"]},
                    "degrade": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "reasoning": {"enum": ["keep", "withhold", "summarise"]},
                            "summary_chars": {"type": "integer", "minimum": 0},
                            "max_tokens": {"type": "integer", "minimum": 1},
                            "drop_logprobs": {"type": "boolean"},
                            "single_choice": {"type": "boolean"},
                            "canary": {"type": "boolean"},
                            "canary_fact": {"type": "boolean"},
                        },
                    },
                    "when": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "tier": _TIER_LIST,
                            "cluster_tier": _TIER_LIST,
                            "live_tier": _TIER_LIST,
                            "score": _THRESHOLD,
                            "cluster_score": _THRESHOLD,
                            "live_score": _THRESHOLD,
                            "live_signal": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "gte": {"type": "number"},
                                    "lt": {"type": "number"},
                                },
                            },
                            "accounts": {"type": "array", "items": {"type": "string"}},
                            "orgs": {"type": "array", "items": {"type": "string"}},
                            "in_scan": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One rule of a policy, validated."""

    id: str
    version: int
    action: Action
    when: dict[str, Any]
    shadow: bool = False
    limit: Limit | None = None
    degrade: Degrade = field(default_factory=Degrade)
    description: str = ""

    @property
    def source(self) -> str:
        return f"policy:{self.id}@{self.version}"

    def test(self, v: Verdicts) -> tuple[Evidence, ...] | None:
        """The evidence of each condition when all hold, ``None`` when one fails."""
        out: list[Evidence] = []
        findings: list[Finding] = []
        for key, want in self.when.items():
            ok, ev, finding = _condition(key, want, v, self.source)
            if not ok:
                return None
            out.extend(ev)
            if finding is not None and finding not in findings:
                findings.append(finding)
        for finding in findings:  # the findings' own reasons, strongest first
            out.extend(sorted(finding.evidence, key=lambda e: -abs(e.weight))[:4])
        return tuple(out)


def _threshold(value: float | None, want: dict[str, float]) -> tuple[bool, float]:
    if value is None or math.isnan(value):
        return False, math.nan
    lo = want.get("gte", -math.inf)
    hi = want.get("lt", math.inf)
    return lo <= value < hi, lo if "gte" in want else hi


def _condition(
    key: str, want: Any, v: Verdicts, source: str
) -> tuple[bool, list[Evidence], Finding | None]:
    finding = {
        "tier": v.account,
        "score": v.account,
        "cluster_tier": v.cluster,
        "cluster_score": v.cluster,
        "live_tier": v.live,
        "live_score": v.live,
        "live_signal": v.live,
    }.get(key)
    if key in ("tier", "cluster_tier", "live_tier"):
        if finding is None or finding.tier not in want:
            return False, [], None
        rank = float(TIERS.index(finding.tier))
        return True, [Evidence(f"{key}={finding.tier}", rank, math.nan, 0.0, source)], finding
    if key in ("score", "cluster_score", "live_score"):
        ok, bound = _threshold(finding.score if finding else None, want)
        if not ok or finding is None:
            return False, [], None
        return True, [Evidence(key, finding.score, bound, 0.0, source)], finding
    if key == "live_signal":
        if finding is None:
            return False, [], None
        value = next((e.value for e in finding.evidence if e.signal == want["name"]), None)
        ok, bound = _threshold(value, want)
        if not ok or value is None:
            return False, [], None
        return True, [Evidence(want["name"], value, bound, 0.0, source)], None
    if key == "accounts":
        return v.account_id in want, [Evidence("account_listed", 1.0, 0.0, 0.0, source)], None
    if key == "orgs":
        return v.org_id in want, [Evidence("org_listed", 1.0, 0.0, 0.0, source)], None
    if key == "in_scan":
        seen = v.account is not None
        return seen == want, [Evidence("in_scan", float(seen), float(want), 0.0, source)], None
    raise DistillwatchError(f"unknown policy condition {key!r}")  # schema rules this out


@dataclass(frozen=True, slots=True)
class Policy:
    """An ordered set of rules; :meth:`decide` is pure (no I/O, no clock)."""

    rules: tuple[PolicyRule, ...] = ()
    shadow: bool = False
    path: str = ""

    @classmethod
    def from_dict(cls, doc: dict[str, Any], path: str = "<policy>") -> Policy:
        """Validate and build a policy; errors name the file and the offending field."""
        try:
            jsonschema.validate(doc, POLICY_SCHEMA)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "<root>"
            raise DistillwatchError(f"{path}: {where}: {exc.message}") from None
        rules: list[PolicyRule] = []
        seen: set[str] = set()
        for raw in doc.get("rules", []):
            if raw["id"] in seen:
                raise DistillwatchError(f"{path}: duplicate rule id {raw['id']!r}")
            seen.add(raw["id"])
            rules.append(_rule(raw, path))
        return cls(tuple(rules), bool(doc.get("shadow", False)), path)

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        p = Path(path)
        try:
            doc = yaml.safe_load(p.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise DistillwatchError(f"{p}: cannot read policy: {exc}") from None
        if doc is None:  # most likely a file caught half-written: never read it as "no rules"
            raise DistillwatchError(f"{p}: the policy file is empty (write `rules: []` for none)")
        return cls.from_dict(doc, str(p))

    def decide(self, v: Verdicts) -> Decision:
        """The decision for one call given what is known about its account."""
        matches: list[Match] = []
        action: Action = "allow"
        limits: list[Limit] = []
        degrade = Degrade()
        for rule in self.rules:
            evidence = rule.test(v)
            if evidence is None:
                continue
            shadow = rule.shadow or self.shadow
            matches.append(Match(rule.id, rule.action, shadow, evidence))
            if shadow:
                continue
            if rule.limit is not None:
                limits.append(rule.limit)
            if rule.action == "degrade":
                degrade = degrade.merge(rule.degrade)
            # throttle only refuses when its limit is exceeded: that is enforcement's call
            if SEVERITY[rule.action] > SEVERITY[action]:
                action = rule.action
        if not matches:
            return Decision("allow")
        return Decision(action, tuple(matches), tuple(limits), degrade)

    def shadow_limits(self, decision: Decision) -> tuple[Limit, ...]:
        """Limits of the shadow throttle rules that matched: tested, never consumed."""
        by_id = {r.id: r for r in self.rules}
        return tuple(
            cast(Limit, by_id[m.rule].limit)
            for m in decision.matches
            if m.shadow and by_id.get(m.rule) is not None and by_id[m.rule].limit is not None
        )


def _rule(raw: dict[str, Any], path: str) -> PolicyRule:
    rid = raw["id"]
    action = cast(Action, raw["action"])
    limit = None
    if action == "throttle" and "limit" not in raw:
        raise DistillwatchError(f"{path}: rule {rid!r}: throttle needs a limit (e.g. '10/minute')")
    if "limit" in raw:
        try:
            parse_limit(raw["limit"])
        except ValueError:
            raise DistillwatchError(
                f"{path}: rule {rid!r}: limit {raw['limit']!r} is not a rate like '10/minute'"
            ) from None
        limit = Limit(raw["limit"], raw.get("scope", "account"), rid)
    if action == "degrade" and not raw.get("degrade"):
        raise DistillwatchError(f"{path}: rule {rid!r}: degrade needs a 'degrade' block")
    return PolicyRule(
        id=rid,
        version=int(raw.get("version", 1)),
        action=action,
        when=dict(raw.get("when", {})),
        shadow=bool(raw.get("shadow", False)),
        limit=limit,
        degrade=Degrade(**raw.get("degrade", {})),
        description=raw.get("description", ""),
    )


def describe_matches(matches: Iterable[Match]) -> list[str]:
    """One line per match, for the CLI and the admin endpoint."""
    return [f"{m.rule}: {m.action}{' (shadow)' if m.shadow else ''}" for m in matches]
