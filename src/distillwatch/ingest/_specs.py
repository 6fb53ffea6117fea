"""What each canonical table needs beyond its Arrow schema: required paths, enums, special fields.

A :class:`TableSpec` is data; :mod:`distillwatch.ingest._records` compiles it into a per-record
normaliser and :mod:`distillwatch.ingest._columnar` into vectorised checks, so the tolerant
and the fast path enforce the same rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import pyarrow as pa

from distillwatch.core.schema import (
    ACCOUNT_SCHEMA,
    CALL_SCHEMA,
    ENDPOINTS,
    LABEL_SCHEMA,
    LABELS,
    MODEL_SCHEMA,
    SIGNUP_CHANNELS,
)
from distillwatch.ingest._values import asn_number, content_text, tool_json
from distillwatch.ingest.sources import Format

EXTRA: Final = "extra"


@dataclass(frozen=True, slots=True)
class TableSpec:
    """Rules for one canonical table.

    ``required`` are dotted paths that must be present and not null (``[]`` marks list items);
    ``nonempty`` strings must also not be empty; ``enums`` restrict strings to a set;
    ``special`` replaces the plain type check of a path with a normaliser.
    """

    name: str
    schema: pa.Schema
    required: frozenset[str]
    nonempty: frozenset[str] = frozenset()
    enums: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    special: Mapping[str, Callable[[object], object]] = field(default_factory=dict)
    formats: tuple[Format, ...] = ("jsonl", "parquet")

    @property
    def keeps_extra(self) -> bool:
        """Whether unknown top-level fields are kept, as JSON text, in an ``extra`` column."""
        return EXTRA in self.schema.names


CALLS: Final = TableSpec(
    name="calls",
    schema=CALL_SCHEMA,
    required=frozenset(
        {"ts", "account_id", "model", "request", "request.messages", "request.messages[]"}
        | {"request.messages[].role"}
    ),
    nonempty=frozenset({"account_id", "model"}),
    enums={"endpoint": ENDPOINTS},
    special={
        "request.messages[].content": content_text,
        "request.system": content_text,
        "request.tools[]": tool_json,
        "client.asn": asn_number,
    },
)

ACCOUNTS: Final = TableSpec(
    name="accounts",
    schema=ACCOUNT_SCHEMA,
    required=frozenset({"account_id"}),
    nonempty=frozenset({"account_id"}),
    enums={"signup_channel": SIGNUP_CHANNELS},
    formats=("jsonl", "csv", "parquet"),
)

MODELS: Final = TableSpec(
    name="models",
    schema=MODEL_SCHEMA,
    required=frozenset({"model", "released_at"}),
    nonempty=frozenset({"model"}),
    formats=("jsonl", "csv", "parquet"),
)

LABELS_SPEC: Final = TableSpec(
    name="labels",
    schema=LABEL_SCHEMA,
    required=frozenset({"account_id", "label", "persona"}),
    nonempty=frozenset({"account_id"}),
    enums={"label": LABELS},
    formats=("jsonl", "csv", "parquet"),
)

SPECS: Final[dict[str, TableSpec]] = {
    spec.name: spec for spec in (CALLS, ACCOUNTS, MODELS, LABELS_SPEC)
}
