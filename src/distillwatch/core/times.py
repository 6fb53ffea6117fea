"""Times as users write them: RFC 3339 with a zone, parsed in one place."""

from __future__ import annotations

from datetime import datetime

from distillwatch.core.errors import DistillwatchError


def parse_time(value: str, where: str) -> datetime:
    """``value`` as an aware datetime; ``where`` names the option or field in the error.

    >>> parse_time("2026-03-01T12:00:00Z", "--since").isoformat()
    '2026-03-01T12:00:00+00:00'
    >>> parse_time("2026-03-01", "--since")
    Traceback (most recent call last):
    ...
    distillwatch.core.errors.DistillwatchError: --since: '2026-03-01' has no time zone (add Z)
    """
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DistillwatchError(f"{where}: {value!r} is not an RFC 3339 timestamp") from None
    if ts.tzinfo is None:
        raise DistillwatchError(f"{where}: {value!r} has no time zone (add Z)")
    return ts
