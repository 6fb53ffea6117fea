"""The text of each call that text features read: the last user message and the system prompt."""

from __future__ import annotations

import polars as pl


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
    user = msgs.list.eval(
        pl.element().filter(pl.element().struct.field("role") == "user").struct.field("content")
    )
    sys_msg = msgs.list.eval(
        pl.element().filter(pl.element().struct.field("role") == "system").struct.field("content")
    )
    return calls.select(
        "account_id",
        "ts",
        "model",
        user.list.last().fill_null("").alias("prompt"),
        pl.coalesce(pl.col("request").struct.field("system"), sys_msg.list.first()).alias("system"),
        msgs.list.len().alias("n_messages"),
    )
