"""The call frame: one slim row per call with every column later stages read.

Canonical call records carry whole conversations and answers; no feature needs most of that.
:func:`call_frame` keeps the last user message, the system prompt, the request parameters, usage
and the client fingerprint, and drops the rest, so a scan can turn each batch of records into
call-frame rows as it reads them and never hold the full records of a large log at once.
Account features, text features, clustering and the report all read this frame.
"""

from __future__ import annotations

from typing import Any, Final

import polars as pl
import pyarrow as pa

from distillwatch.features.text import last_user_message, messages_of

# task types, by keyword on the prompt (first match wins, in this order). Word boundaries are
# ASCII ones, ``(?-u:\b)``, written ``\b`` here: the keywords are English, and a Unicode ``\b``
# keeps Rust's regex engine off its fast DFA path (measured 20-50x slower on prompt text).
_TASK_PATTERNS: tuple[tuple[str, str], ...] = (
    ("code", r"(?i)```|\bdef \w+\(|\bfunction\b|\bpython\b|\bjavascript\b|\bsql\b|\bclass \w+|"
             r"\bcode\b|\bcompile|\bbug\b|\bregex\b|\bjava\b|\bc\+\+|\brust\b|\bapi\b"),
    ("math", r"(?i)\bhow many\b|\bhow much\b|\bcalculate\b|\bequation\b|\bsolve\b|\bprobability\b|"
             r"\d+\s*[\+\-\*/x×]\s*\d+|\bpercent\b|\bintegral\b|\bderivative\b|\$\d"),
    ("mcq", r"(?m)^\s*[A-D][\.\)]\s"),
    ("writing", r"(?i)\b(write|draft|compose|rewrite|paraphrase|summari[sz]e|translate)\b"),
    ("reasoning", r"(?i)\b(why|explain|reason|prove|logic|riddle|puzzle)\b"),
)  # fmt: skip
TASK_TYPES: tuple[tuple[str, str], ...] = tuple(
    (name, pattern.replace(r"\b", r"(?-u:\b)")) for name, pattern in _TASK_PATTERNS
)

_CALL_FRAME_COLUMNS: dict[str, pl.DataType | type[pl.DataType]] = {
    "account_id": pl.String,
    "org_id": pl.String,
    "ts": pl.Datetime("us", "UTC"),
    "model": pl.String,
    "prompt": pl.String,
    "system": pl.String,
    "n_messages": pl.UInt32,
    "n_tools": pl.UInt32,
    "has_system": pl.Boolean,
    "max_tokens": pl.Int64,
    "n": pl.Int64,
    "logprobs": pl.Boolean,
    "top_logprobs": pl.Int64,
    "seed": pl.Int64,
    "temperature": pl.Float64,
    "reasoning_effort": pl.String,
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "finish_reason": pl.String,
    "ip": pl.String,
    "asn": pl.Int64,
    "user_agent": pl.String,
    "tls_fingerprint": pl.String,
    "task_type": pl.String,
}
CALL_FRAME_SCHEMA: Final = pl.Schema(_CALL_FRAME_COLUMNS)


def task_type() -> pl.Expr:
    """The task type of a call's prompt: ``tool`` when tools are sent, else by keyword."""
    expr: Any = pl.when(pl.col("n_tools") > 0).then(pl.lit("tool"))
    for name, pattern in TASK_TYPES:
        expr = expr.when(pl.col("prompt").str.contains(pattern)).then(pl.lit(name))
    out: pl.Expr = expr.otherwise(pl.lit("chat")).alias("task_type")
    return out


def call_frame(calls: pl.LazyFrame) -> pl.LazyFrame:
    """Canonical calls -> the call frame (:data:`CALL_FRAME_SCHEMA`), one row per call.

    ``prompt`` is the last user message (empty when there is none); ``system`` is the request's
    ``system`` field, else its first system message; ``has_system`` says whether the ``system``
    field was set.

    >>> import datetime as dt
    >>> calls = pl.LazyFrame({"account_id": ["a"], "org_id": [None],
    ...     "ts": [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)], "model": ["m"],
    ...     "request": [{"messages": [{"role": "system", "content": "be brief"},
    ...     {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
    ...     {"role": "user", "content": "2+2?"}], "system": None}]})
    >>> call_frame(calls).select("prompt", "system", "n_messages", "task_type").collect().row(0)
    ('2+2?', 'be brief', 4, 'math')
    """
    schema = calls.collect_schema()

    def field(column: str, name: str, dtype: pl.DataType | type[pl.DataType]) -> pl.Expr:
        """``column.name``, or null when a hand-built frame lacks the column or the field."""
        struct = schema.get(column)
        if not isinstance(struct, pl.Struct) or name not in {f.name for f in struct.fields}:
            return pl.lit(None, dtype).alias(name)
        return pl.col(column).struct.field(name).cast(dtype).alias(name)

    system = field("request", "system", pl.String)
    usage = pl.col("response").struct.field("usage")
    has_usage = isinstance(schema.get("response"), pl.Struct)
    return calls.select(
        "account_id",
        pl.col("org_id") if "org_id" in schema else pl.lit(None, pl.String).alias("org_id"),
        "ts",
        "model",
        last_user_message().alias("prompt"),
        pl.coalesce(system, messages_of("system").list.first()).alias("system"),
        pl.col("request").struct.field("messages").list.len().cast(pl.UInt32).alias("n_messages"),
        field("request", "tools", pl.List(pl.String))
        .list.len()
        .fill_null(0)
        .cast(pl.UInt32)
        .alias("n_tools"),
        system.is_not_null().alias("has_system"),
        field("request", "max_tokens", pl.Int64),
        field("request", "n", pl.Int64).fill_null(1),
        field("request", "logprobs", pl.Boolean).fill_null(False),
        field("request", "top_logprobs", pl.Int64).fill_null(0),
        field("request", "seed", pl.Int64),
        field("request", "temperature", pl.Float64),
        field("request", "reasoning_effort", pl.String),
        *(
            usage.struct.field(k).cast(pl.Int64).alias(k)
            if has_usage
            else pl.lit(None, pl.Int64).alias(k)
            for k in ("input_tokens", "output_tokens")
        ),
        field("response", "finish_reason", pl.String),
        field("client", "ip", pl.String),
        field("client", "asn", pl.Int64),
        field("client", "user_agent", pl.String),
        field("client", "tls_fingerprint", pl.String),
    ).with_columns(task_type())


UNREAD_FIELDS: Final = frozenset(
    {"response.output_text", "response.reasoning_text", "response.latency_ms", "extra"}
)
"""Canonical fields no call-frame column reads: readers may skip them (``read_calls(skip=)``)
and :func:`call_frame_from_arrow` drops them before anything is imported into Polars."""


def call_frame_from_arrow(batch: pa.Table) -> pl.DataFrame:
    """:func:`call_frame` of one Arrow batch of canonical calls, holding no reference to it.

    Polars imports a struct column as one unit, so a result column that is a struct field taken
    as is (``max_tokens``) would keep the whole struct alive, answers and all. Flattening the
    structs in Arrow first, where every buffer is released on its own, and re-nesting only the
    fields the call frame reads lets the batch go as soon as this returns.
    """
    flat = batch.flatten()
    flat = flat.drop_columns([c for c in flat.column_names if c in UNREAD_FIELDS])
    frame = pl.from_arrow(flat)
    assert isinstance(frame, pl.DataFrame)
    nested: dict[str, list[pl.Expr]] = {}
    plain: list[str] = []
    for name in frame.columns:
        parent, dot, child = name.partition(".")
        if dot:
            nested.setdefault(parent, []).append(pl.col(name).alias(child))
        else:
            plain.append(name)
    rebuilt = frame.select(*plain, *(pl.struct(f).alias(p) for p, f in nested.items()))
    return call_frame(rebuilt.lazy()).collect()


def is_call_frame(frame: pl.LazyFrame | pl.DataFrame) -> bool:
    """Whether ``frame`` is already a call frame (has no ``request`` struct and the columns)."""
    names = set(frame.collect_schema().names())
    return "request" not in names and set(CALL_FRAME_SCHEMA.names()) <= names


def prompt_frame(calls: pl.LazyFrame) -> pl.LazyFrame:
    """One row per call: ``account_id``, ``ts``, ``model``, ``prompt`` (last user message),
    ``system`` (the ``system`` field, else the first system message) and ``n_messages``.

    >>> import datetime as dt
    >>> calls = pl.LazyFrame({"account_id": ["a"], "ts": [dt.datetime(2026, 1, 1)],
    ...     "model": ["m"], "request": [{"messages": [{"role": "system", "content": "be brief"},
    ...     {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
    ...     {"role": "user", "content": "2+2?"}], "system": None}]})
    >>> prompt_frame(calls).select("prompt", "system", "n_messages").collect().row(0)
    ('2+2?', 'be brief', 4)
    """
    return call_frame(calls).select("account_id", "ts", "model", "prompt", "system", "n_messages")
