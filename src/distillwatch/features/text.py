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
