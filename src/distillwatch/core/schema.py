"""The canonical call-log schema, version 1: Arrow schemas for frames, JSON Schema for records.

One call record is one API call. On disk it is one JSON object per line (JSONL, optionally gzip
or zstd) or the same columns in Parquet. `docs/schema.md` is the prose version of this module;
`tests/core/test_schema.py` keeps the two in step.

Normalisation done by readers (so every later stage sees one shape):

- ``ts`` and other times become ``timestamp[us, UTC]``.
- message ``content`` that is an OpenAI-style list of parts becomes one string: text parts joined
  with a newline, other parts as ``[<type>]`` placeholders (``[image_url]``).
- ``tools`` entries are kept as their JSON text, one string per tool.
- fields this schema does not name are kept, as JSON text, in ``extra``.
"""

from __future__ import annotations

from typing import Any, Final

import pyarrow as pa

SCHEMA_VERSION: Final = "1.0"

ENDPOINTS: Final = ("chat.completions", "responses", "messages", "completions")
SIGNUP_CHANNELS: Final = (
    "self_serve",
    "education",
    "startup_program",
    "research_program",
    "enterprise",
    "reseller",
)
LABELS: Final = ("legit", "distill")

TS = pa.timestamp("us", tz="UTC")

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

CLIENT = pa.struct(
    [
        ("ip", pa.string()),
        ("user_agent", pa.string()),
        ("asn", pa.int64()),
        ("country", pa.string()),
        ("tls_fingerprint", pa.string()),
    ]
)

REQUEST = pa.struct(
    [
        ("messages", pa.list_(MESSAGE)),
        ("system", pa.string()),
        ("temperature", pa.float64()),
        ("top_p", pa.float64()),
        ("max_tokens", pa.int64()),
        ("n", pa.int64()),
        ("logprobs", pa.bool_()),
        ("top_logprobs", pa.int64()),
        ("tools", pa.list_(pa.string())),
        ("reasoning_effort", pa.string()),
        ("stream", pa.bool_()),
        ("seed", pa.int64()),
    ]
)

USAGE = pa.struct(
    [
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
    ]
)

RESPONSE = pa.struct(
    [
        ("status", pa.int64()),
        ("output_text", pa.string()),
        ("reasoning_text", pa.string()),
        ("finish_reason", pa.string()),
        ("usage", USAGE),
        ("latency_ms", pa.float64()),
    ]
)

CALL_SCHEMA: Final = pa.schema(
    [
        pa.field("ts", TS, nullable=False),
        pa.field("request_id", pa.string()),
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("org_id", pa.string()),
        pa.field("api_key_id", pa.string()),
        pa.field("model", pa.string(), nullable=False),
        pa.field("endpoint", pa.string()),
        pa.field("client", CLIENT),
        pa.field("request", REQUEST, nullable=False),
        pa.field("response", RESPONSE),
        pa.field("extra", pa.string()),
    ],
    metadata={"distillwatch.schema": "calls", "distillwatch.schema_version": SCHEMA_VERSION},
)

ACCOUNT_SCHEMA: Final = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("org_id", pa.string()),
        pa.field("created_at", TS),
        pa.field("signup_channel", pa.string()),
        pa.field("payment_fingerprint", pa.string()),
        pa.field("verified", pa.bool_()),
        pa.field("country", pa.string()),
        pa.field("allowlisted", pa.bool_()),
        pa.field("extra", pa.string()),
    ],
    metadata={"distillwatch.schema": "accounts", "distillwatch.schema_version": SCHEMA_VERSION},
)

MODEL_SCHEMA: Final = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("released_at", TS, nullable=False),
    ],
    metadata={"distillwatch.schema": "models", "distillwatch.schema_version": SCHEMA_VERSION},
)

LABEL_SCHEMA: Final = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("persona", pa.string(), nullable=False),
        pa.field("campaign_id", pa.string()),
        pa.field("org_id", pa.string()),
        pa.field("mundane_share", pa.float64()),
    ],
    metadata={"distillwatch.schema": "labels", "distillwatch.schema_version": SCHEMA_VERSION},
)

# --- JSON Schema (draft 2020-12) for one record of each table --------------------------------

_NULL_STR: dict[str, Any] = {"type": ["string", "null"]}
_NULL_NUM: dict[str, Any] = {"type": ["number", "null"]}
_NULL_INT: dict[str, Any] = {"type": ["integer", "null"]}
_NULL_BOOL: dict[str, Any] = {"type": ["boolean", "null"]}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}

_CONTENT_PART: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"type": "string"}, "text": {"type": "string"}},
}

_CALL_JSON: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://distillwatch.dev/schema/call/1.0",
    "title": "distillwatch call record",
    "type": "object",
    "required": ["ts", "account_id", "model", "request"],
    "properties": {
        "ts": _TIME,
        "request_id": _NULL_STR,
        "account_id": {"type": "string", "minLength": 1},
        "org_id": _NULL_STR,
        "api_key_id": _NULL_STR,
        "model": {"type": "string", "minLength": 1},
        "endpoint": {"enum": [*ENDPOINTS, None]},
        "client": {
            "type": ["object", "null"],
            "properties": {
                "ip": _NULL_STR,
                "user_agent": _NULL_STR,
                "asn": {"type": ["integer", "string", "null"]},
                "country": _NULL_STR,
                "tls_fingerprint": _NULL_STR,
            },
        },
        "request": {
            "type": "object",
            "required": ["messages"],
            "properties": {
                "messages": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["role", "content"],
                        "properties": {
                            "role": {"type": "string"},
                            "content": {
                                "oneOf": [
                                    {"type": "string"},
                                    {"type": "null"},
                                    {"type": "array", "items": _CONTENT_PART},
                                ]
                            },
                        },
                    },
                },
                "system": _NULL_STR,
                "temperature": _NULL_NUM,
                "top_p": _NULL_NUM,
                "max_tokens": _NULL_INT,
                "n": _NULL_INT,
                "logprobs": _NULL_BOOL,
                "top_logprobs": _NULL_INT,
                "tools": {"type": ["array", "null"]},
                "reasoning_effort": _NULL_STR,
                "stream": _NULL_BOOL,
                "seed": _NULL_INT,
            },
        },
        "response": {
            "type": ["object", "null"],
            "properties": {
                "status": _NULL_INT,
                "output_text": _NULL_STR,
                "reasoning_text": _NULL_STR,
                "finish_reason": _NULL_STR,
                "usage": {
                    "type": ["object", "null"],
                    "properties": {
                        "input_tokens": _NULL_INT,
                        "output_tokens": _NULL_INT,
                        "reasoning_tokens": _NULL_INT,
                    },
                },
                "latency_ms": _NULL_NUM,
            },
        },
    },
}

_ACCOUNT_JSON: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://distillwatch.dev/schema/account/1.0",
    "title": "distillwatch account record",
    "type": "object",
    "required": ["account_id"],
    "properties": {
        "account_id": {"type": "string", "minLength": 1},
        "org_id": _NULL_STR,
        "created_at": {"type": ["string", "null"], "format": "date-time"},
        "signup_channel": {"enum": [*SIGNUP_CHANNELS, None]},
        "payment_fingerprint": _NULL_STR,
        "verified": _NULL_BOOL,
        "country": _NULL_STR,
        "allowlisted": _NULL_BOOL,
    },
}

_MODEL_JSON: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://distillwatch.dev/schema/model/1.0",
    "title": "distillwatch model release record",
    "type": "object",
    "required": ["model", "released_at"],
    "properties": {"model": {"type": "string", "minLength": 1}, "released_at": _TIME},
}

_JSON_SCHEMAS: Final = {"calls": _CALL_JSON, "accounts": _ACCOUNT_JSON, "models": _MODEL_JSON}


def json_schema(table: str) -> dict[str, Any]:
    """The JSON Schema of one record of ``table`` (``calls``, ``accounts`` or ``models``).

    >>> json_schema("calls")["required"]
    ['ts', 'account_id', 'model', 'request']
    """
    try:
        return _JSON_SCHEMAS[table]
    except KeyError:
        raise KeyError(
            f"no JSON Schema for table {table!r}; known: {sorted(_JSON_SCHEMAS)}"
        ) from None
