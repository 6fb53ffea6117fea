"""The text of each call that text features read: the last user message and the system prompt."""

from __future__ import annotations

import polars as pl


def messages_of(role: str) -> pl.Expr:
    """The contents of a call's messages with ``role``, as a list per call."""
    msgs = pl.col("request").struct.field("messages")
    return msgs.list.eval(
        pl.element().filter(pl.element().struct.field("role") == role).struct.field("content")
    )


def last_user_message() -> pl.Expr:
    """The last user message of each call (empty when there is none): what text features read."""
    return messages_of("user").list.last().fill_null("")


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
    msgs = pl.col("request").struct.field("messages")
    return calls.select(
        "account_id",
        "ts",
        "model",
        last_user_message().alias("prompt"),
        pl.coalesce(
            pl.col("request").struct.field("system"), messages_of("system").list.first()
        ).alias("system"),
        msgs.list.len().alias("n_messages"),
    )
