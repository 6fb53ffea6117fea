"""Gateway configuration: one YAML file, validated on load, every path relative to it.

Keys map to accounts either in the file (``keys:``, plain or ``sha256:<hex>`` of the key) or
through a header an upstream auth layer sets (``account_header``); see docs/gateway.md.
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml

from distillwatch.core.errors import DistillwatchError
from distillwatch.gateway.online import LiveConfig
from distillwatch.gateway.policy import Policy
from distillwatch.gateway.values import Subject

DEFAULT_CANARY_REGISTRY = "sqlite://canaries.db"
"""Where planted canary facts are recorded unless ``canary_registry`` says otherwise."""

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "upstream": {"type": "string"},
        "upstream_api_key": {"type": ["string", "null"]},
        "listen": {"type": "string"},
        "admin_listen": {"type": ["string", "null"]},
        "admin_token": {"type": ["string", "null"]},
        "node": {"type": "string", "pattern": r"^[A-Za-z0-9_.]+$"},
        "keys": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["account_id"],
                "additionalProperties": False,
                "properties": {
                    "account_id": {"type": "string", "minLength": 1},
                    "org_id": {"type": ["string", "null"]},
                    "key_id": {"type": ["string", "null"]},
                },
            },
        },
        "account_header": {"type": ["string", "null"]},
        "org_header": {"type": ["string", "null"]},
        "sink": {"type": "string"},
        "spool": {"type": ["string", "null"]},
        "rotate_seconds": {"type": "number", "exclusiveMinimum": 0},
        "rotate_rows": {"type": "integer", "minimum": 1},
        "max_pending": {"type": "integer", "minimum": 1},
        "max_spool_bytes": {"type": "integer", "minimum": 1},
        "fsync": {"type": "boolean"},
        "decisions": {"type": ["string", "null"]},
        "reload_seconds": {"type": "number", "exclusiveMinimum": 0},
        "limits": {"type": "string"},
        "limits_namespace": {"type": "string"},
        "policy": {"type": ["string", "object", "null"]},
        "live": {"type": "object"},
        "live_mode": {"enum": ["process", "thread", "off"]},
        "live_interval": {"type": "number", "exclusiveMinimum": 0},
        "live_max_lag": {"type": "number", "exclusiveMinimum": 0},
        "live_priority": {"enum": ["idle", "normal"]},
        "max_body_bytes": {"type": "integer", "minimum": 1},
        "connect_timeout": {"type": "number", "exclusiveMinimum": 0},
        "read_timeout": {"type": "number", "exclusiveMinimum": 0},
        "max_connections": {"type": "integer", "minimum": 1},
        "canary_secret": {"type": "string"},
        "canary_registry": {"type": ["string", "null"]},
        "canary_period_seconds": {"type": "number", "exclusiveMinimum": 0},
        "canary_facts_per_period": {"type": "integer", "minimum": 1},
    },
}


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Everything ``distillwatch gateway`` needs; see docs/gateway.md for each field."""

    upstream: str = "http://127.0.0.1:8000"
    upstream_api_key: str | None = None
    listen: str = "127.0.0.1:8080"
    admin_listen: str | None = "127.0.0.1:8081"
    admin_token: str | None = None
    node: str = ""
    keys: dict[str, Subject] = field(default_factory=dict)
    account_header: str | None = None
    org_header: str | None = None
    sink: str = "file://gateway-log"
    spool: str | None = None
    rotate_seconds: float = 60.0
    rotate_rows: int = 50_000
    max_pending: int = 100_000
    max_spool_bytes: int = 1 << 30
    fsync: bool = False
    decisions: str | None = None
    reload_seconds: float = 2.0
    limits: str = "memory://"
    limits_namespace: str = "dw"
    policy: Policy = field(default_factory=Policy)
    policy_path: str | None = None
    live: LiveConfig = field(default_factory=LiveConfig)
    live_mode: Literal["process", "thread", "off"] = "process"
    live_interval: float = 0.05
    live_max_lag: float = 2.0
    live_priority: Literal["idle", "normal"] = "idle"
    max_body_bytes: int = 4 << 20
    connect_timeout: float = 5.0
    read_timeout: float = 300.0
    max_connections: int = 1000
    canary_secret: str = "distillwatch-canary"
    canary_registry: str | None = DEFAULT_CANARY_REGISTRY
    canary_period_seconds: float = 86400.0
    canary_facts_per_period: int = 4

    @classmethod
    def from_dict(cls, doc: dict[str, Any], base: Path, where: str = "<config>") -> GatewayConfig:
        """Validate ``doc`` and resolve its relative paths against ``base``."""
        try:
            jsonschema.validate(doc, CONFIG_SCHEMA)
        except jsonschema.ValidationError as exc:
            at = "/".join(str(p) for p in exc.absolute_path) or "<root>"
            raise DistillwatchError(f"{where}: {at}: {exc.message}") from None
        values: dict[str, Any] = {
            k: v for k, v in doc.items() if k not in ("keys", "policy", "live")
        }
        values["keys"] = {
            key: Subject(v["account_id"], v.get("org_id"), v.get("key_id") or _key_id(key))
            for key, v in (doc.get("keys") or {}).items()
        }
        policy = doc.get("policy")
        if isinstance(policy, str):
            path = _resolve(policy, base)
            values["policy"] = Policy.load(path)
            values["policy_path"] = path
        elif isinstance(policy, dict):
            values["policy"] = Policy.from_dict(policy, f"{where}: policy")
        live = doc.get("live") or {}
        known = {f.name for f in fields(LiveConfig)}
        unknown = set(live) - known
        if unknown:
            raise DistillwatchError(f"{where}: live: unknown keys {sorted(unknown)}")
        values["live"] = LiveConfig(**live)
        values.setdefault("canary_registry", DEFAULT_CANARY_REGISTRY)  # next to the config
        for key in ("sink", "decisions", "spool", "canary_registry"):
            if isinstance(values.get(key), str):
                values[key] = _resolve_uri(values[key], base)
        cfg = cls(**values)
        if not cfg.node:
            port = cfg.listen.rsplit(":", 1)[-1]
            cfg = replace(
                cfg, node=f"{socket.gethostname().split('.')[0]}_{port}".replace("-", "_")
            )
        return cfg

    @classmethod
    def load(cls, path: str | Path | None, **overrides: Any) -> GatewayConfig:
        """The config in ``path`` (or the defaults), with command-line ``overrides`` on top."""
        doc: dict[str, Any] = {}
        base = Path.cwd()
        where = "<defaults>"
        if path is not None:
            p = Path(path)
            try:
                doc = yaml.safe_load(p.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise DistillwatchError(f"{p}: cannot read config: {exc}") from None
            if not isinstance(doc, dict):
                raise DistillwatchError(f"{p}: a gateway config is a YAML mapping")
            base, where = p.resolve().parent, str(p)
        doc.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(doc, base, where)

    def subject(self, api_key: str | None) -> Subject | None:
        """The account an API key belongs to, by the key itself or its SHA-256."""
        if not api_key:
            return None
        hit = self.keys.get(api_key)
        if hit is None:
            hit = self.keys.get("sha256:" + hashlib.sha256(api_key.encode()).hexdigest())
        return hit


def _key_id(key: str) -> str:
    """A stable id for a key that never shows the key: ``key_`` + 12 hex of its SHA-256."""
    digest = (
        key.removeprefix("sha256:")
        if key.startswith("sha256:")
        else hashlib.sha256(key.encode()).hexdigest()
    )
    return "key_" + digest[:12]


def _resolve(path: str, base: Path) -> str:
    p = Path(path)
    return str(p if p.is_absolute() else base / p)


def _resolve_uri(uri: str, base: Path) -> str:
    """``file://rel`` and ``sqlite://rel`` are taken relative to the config file."""
    for scheme in ("file://", "sqlite://"):
        if uri.startswith(scheme):
            rest = uri[len(scheme) :]
            path, _, query = rest.partition("?")
            if path.startswith("/"):
                return uri
            return scheme + _resolve(path, base) + (f"?{query}" if query else "")
    if "://" not in uri:  # a bare path
        return _resolve(uri, base)
    return uri
