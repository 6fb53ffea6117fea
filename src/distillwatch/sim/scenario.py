"""Scenario files: every knob of the simulator, with the documented defaults in ``default.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from distillwatch.core.errors import DistillwatchError
from distillwatch.core.schema import SIGNUP_CHANNELS
from distillwatch.core.times import parse_time

LEGIT_PERSONAS = (
    "casual_chat",
    "power_user",
    "corporate_team",
    "product_backend",
    "eval_harness",
    "batch_job",
    "agent_platform",
    "education",
    "reseller",
    "migrating_customer",
    "synthetic_data_partner",
)
ATTACK_STYLES = (
    "cot_coercion",
    "alpaca_sweep",
    "benchmark_rubric",
    "tool_trace",
    "safe_rewrite",
    "param_harvest",
    "passive_harvest",
    "low_and_slow",
)

# persona knobs that only mean something for some personas
_PERSONA_ONLY = {
    "shared_template": ("product_backend", "migrating_customer", "reseller"),
    "cot_prompts": ("eval_harness", "education"),
}
_RANGE = {"type": "array", "items": {"type": "number", "minimum": 0}, "minItems": 2, "maxItems": 2}
_SHARE = {"type": "number", "minimum": 0, "maximum": 1}
_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "start", "models", "release", "volume", "legit_share", "personas"],
    "properties": {
        "version": {"const": 1},
        "start": {"type": "string"},
        "models": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["model", "released_at", "share"],
                "properties": {
                    "model": {"type": "string"},
                    "released_at": {"type": "string"},
                    "share": _SHARE,
                    "reasoning": {"type": "boolean"},
                },
            },
        },
        "release": {
            "type": "object",
            "additionalProperties": False,
            "required": ["model", "day"],
            "properties": {
                "model": {"type": "string"},
                "day": {"type": "number", "minimum": 0},
                "reasoning": {"type": "boolean"},
            },
        },
        "volume": {
            "type": "object",
            "additionalProperties": False,
            "required": ["median_calls_per_day", "sigma", "max_calls_per_day"],
            "properties": {
                "median_calls_per_day": {"type": "number", "exclusiveMinimum": 0},
                "sigma": {"oneOf": [{"const": "fit"}, {"type": "number", "minimum": 0}]},
                "max_calls_per_day": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "legit_share": _SHARE,
        "legit_behaviour": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "new_signup_share": _SHARE,
                "early_adopter_share": _SHARE,
                "mobile_share": _SHARE,
            },
        },
        "personas": {
            "type": "object",
            "propertyNames": {"enum": list(LEGIT_PERSONAS)},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["share", "volume", "active_days", "org_size"],
                "properties": {
                    "share": _SHARE,
                    "volume": {"type": "number", "exclusiveMinimum": 0},
                    "active_days": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                    "org_size": _RANGE,
                    "shared_egress": _SHARE,
                    "shared_template": _SHARE,
                    "cot_prompts": _SHARE,
                },
            },
        },
        "campaigns": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "style", "calls_per_day", "mundane_share"],
                "anyOf": [{"required": ["share"]}, {"required": ["accounts"]}],
                "properties": {
                    "id": {"type": "string", "minLength": 1},
                    "style": {"enum": list(ATTACK_STYLES)},
                    "share": _SHARE,
                    "accounts": {"type": "integer", "minimum": 1},
                    "min_accounts": {"type": "integer", "minimum": 1},
                    "calls_per_day": _RANGE,
                    "mundane_share": _RANGE,
                    "shared_payment": _SHARE,
                    "proxy_ips": {"type": "number", "exclusiveMinimum": 0},
                    "sync": _SHARE,
                    "replacement": _SHARE,
                    "pivot": _SHARE,
                    "proxy_session_hours": _RANGE,
                    "aged_accounts": _SHARE,
                    "human_hours": _SHARE,
                    "signup": {"type": "array", "items": {"enum": list(SIGNUP_CHANNELS)}},
                    "service_hours": _SHARE,
                    "wave_minutes": {"type": "number", "exclusiveMinimum": 0, "maximum": 1440},
                    "legit_system": _SHARE,
                    "legit_params": _SHARE,
                    "paraphrases": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
}


@dataclass(frozen=True, slots=True)
class ModelSpec:
    model: str
    released_at: datetime
    share: float
    reasoning: bool


@dataclass(frozen=True, slots=True)
class PersonaSpec:
    name: str
    share: float
    volume: float
    active_days: float
    org_size: tuple[int, int]
    shared_egress: float = 0.0  # share of multi-account orgs behind one egress address pool
    shared_template: float = 0.0  # share of orgs whose accounts all run one product template
    cot_prompts: float = 0.0  # share of accounts asking for step-by-step reasoning


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    id: str
    style: str
    share: float
    min_accounts: int
    calls_per_day: tuple[float, float]
    mundane_share: tuple[float, float]
    shared_payment: float
    proxy_ips: float
    sync: float
    replacement: float
    pivot: float
    proxy_session_hours: tuple[float, float]
    aged_accounts: float
    human_hours: float
    signup: tuple[str, ...]
    accounts: int | None = None  # absolute size: overrides share and min_accounts
    service_hours: float = 0.0
    wave_minutes: float = 15.0
    legit_system: float = 0.0
    legit_params: float = 0.0
    paraphrases: int = 0


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario; ``raw`` is the merged document, written beside the output."""

    start: datetime
    models: tuple[ModelSpec, ...]
    release: ModelSpec
    release_day: float
    median_calls_per_day: float
    sigma: float | None  # None: take the fitted sigma
    max_calls_per_day: float
    legit_share: float
    new_signup_share: float
    early_adopter_share: float
    mobile_share: float
    personas: tuple[PersonaSpec, ...]
    campaigns: tuple[CampaignSpec, ...]
    raw: dict[str, Any]

    @property
    def fixed_accounts(self) -> int:
        """Accounts taken by campaigns of absolute size (``accounts:``), whatever the population."""
        return sum(c.accounts or 0 for c in self.campaigns)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def default_scenario_text() -> str:
    return (resources.files("distillwatch") / "sim" / "scenarios" / "default.yaml").read_text()


def load_scenario(path: Path | None = None) -> Scenario:
    """The default scenario, with the file at ``path`` (if any) merged over it, validated."""
    doc: dict[str, Any] = yaml.safe_load(default_scenario_text())
    name = "default.yaml"
    if path is not None:
        name = str(path)
        try:
            over = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise DistillwatchError(f"{name}: cannot read scenario: {exc}") from None
        if not isinstance(over, dict):
            raise DistillwatchError(f"{name}: a scenario must be a YAML mapping")
        doc = _merge(doc, over)
    try:
        jsonschema.validate(doc, _SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise DistillwatchError(f"{name}: at {where}: {exc.message}") from None
    personas = tuple(
        PersonaSpec(
            name=k,
            share=float(v["share"]),
            volume=float(v["volume"]),
            active_days=float(v["active_days"]),
            org_size=(int(v["org_size"][0]), max(int(v["org_size"][0]), int(v["org_size"][1]))),
            shared_egress=float(v.get("shared_egress", 0.0)),
            shared_template=float(v.get("shared_template", 0.0)),
            cot_prompts=float(v.get("cot_prompts", 0.0)),
        )
        for k, v in doc["personas"].items()
        if v["share"] > 0
    )
    for p in personas:
        for knob, allowed in _PERSONA_ONLY.items():
            if getattr(p, knob) > 0 and p.name not in allowed:
                raise DistillwatchError(
                    f"{name}: at personas/{p.name}: {knob} applies only to {', '.join(allowed)}"
                )
    campaigns = tuple(
        CampaignSpec(
            id=c["id"],
            style=c["style"],
            share=float(c.get("share", 0.0)),
            min_accounts=int(c.get("min_accounts", 1)),
            calls_per_day=(float(c["calls_per_day"][0]), float(c["calls_per_day"][1])),
            mundane_share=(float(c["mundane_share"][0]), float(c["mundane_share"][1])),
            shared_payment=float(c.get("shared_payment", 0.0)),
            proxy_ips=float(c.get("proxy_ips", 3)),
            sync=float(c.get("sync", 0.0)),
            replacement=float(c.get("replacement", 0.0)),
            pivot=float(c.get("pivot", 0.0)),
            proxy_session_hours=(
                float(c.get("proxy_session_hours", [3, 48])[0]),
                float(c.get("proxy_session_hours", [3, 48])[1]),
            ),
            aged_accounts=float(c.get("aged_accounts", 0.0)),
            human_hours=float(c.get("human_hours", 0.0)),
            signup=tuple(c.get("signup", ["self_serve"])),
            accounts=int(c["accounts"]) if "accounts" in c else None,
            service_hours=float(c.get("service_hours", 0.0)),
            wave_minutes=float(c.get("wave_minutes", 15.0)),
            legit_system=float(c.get("legit_system", 0.0)),
            legit_params=float(c.get("legit_params", 0.0)),
            paraphrases=int(c.get("paraphrases", 0)),
        )
        for c in doc.get("campaigns", [])
        if "accounts" in c or c["share"] > 0
    )
    if len({c.id for c in campaigns}) != len(campaigns):
        raise DistillwatchError(f"{name}: campaign ids must be unique")
    if not personas:
        raise DistillwatchError(f"{name}: at least one persona needs a share above 0")
    models = tuple(
        ModelSpec(
            m["model"],
            parse_time(m["released_at"], f"{name}: models"),
            float(m["share"]),
            bool(m.get("reasoning", False)),
        )
        for m in doc["models"]
    )
    rel = doc["release"]
    start = parse_time(doc["start"], f"{name}: start")
    sigma = doc["volume"]["sigma"]
    return Scenario(
        start=start,
        models=models,
        release=ModelSpec(rel["model"], start, 0.0, bool(rel.get("reasoning", False))),
        release_day=float(rel["day"]),
        median_calls_per_day=float(doc["volume"]["median_calls_per_day"]),
        sigma=None if sigma == "fit" else float(sigma),
        max_calls_per_day=float(doc["volume"]["max_calls_per_day"]),
        legit_share=float(doc["legit_share"]),
        new_signup_share=float(doc.get("legit_behaviour", {}).get("new_signup_share", 0.0)),
        early_adopter_share=float(doc.get("legit_behaviour", {}).get("early_adopter_share", 0.0)),
        mobile_share=float(doc.get("legit_behaviour", {}).get("mobile_share", 0.0)),
        personas=personas,
        campaigns=campaigns,
        raw=doc,
    )
