"""Per-value normalisation shared by every reader: times, message content, tools, ASNs.

Each function takes one decoded JSON (or CSV, or Parquet) value and returns the canonical
Python value, or raises :class:`BadValue` naming what is wrong. They run on the tolerant
per-record path only, so clarity wins over speed here, except in :func:`timestamp_us`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
# Epoch numbers at or above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is 1973.
_EPOCH_MS_THRESHOLD: Final = 1e11
# Content parts whose ``text`` is kept verbatim (Chat Completions and Responses API names).
TEXT_PART_TYPES: Final = frozenset({"text", "input_text", "output_text"})


class BadValue(Exception):
    """A value that cannot be normalised; ``field`` is relative to the value that raised it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def under(self, parent: str) -> BadValue:
        """The same error seen from ``parent`` (a field name or ``[i]`` index)."""
        if not self.field:
            field = parent
        elif self.field.startswith("["):
            field = parent + self.field
        else:
            field = f"{parent}.{self.field}"
        return BadValue(field, self.message)


def json_type(value: object) -> str:
    """The JSON name of a Python value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def timestamp_us(value: object) -> int:
    """Microseconds since the Unix epoch (UTC) from RFC 3339 text, epoch seconds/ms or a datetime.

    >>> timestamp_us("1970-01-01T00:00:01.5Z"), timestamp_us("1970-01-01T01:00:01+01:00")
    (1500000, 1000000)
    >>> timestamp_us(1_000), timestamp_us(1e12)
    (1000000000, 1000000000000000)
    """
    if type(value) is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise BadValue("", f"not an RFC 3339 timestamp: {value!r}") from None
        if parsed.tzinfo is None:
            raise BadValue("", f"timestamp has no UTC offset (add Z or +hh:mm): {value!r}")
        return (parsed - _EPOCH) // _MICROSECOND
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return (value - _EPOCH) // _MICROSECOND
    if type(value) is int or type(value) is float:
        if not math.isfinite(value):
            raise BadValue("", f"not a finite epoch time: {value!r}")
        seconds = value / 1000 if abs(value) >= _EPOCH_MS_THRESHOLD else value
        micros = round(seconds * 1_000_000)
        if not INT64_MIN <= micros <= INT64_MAX:
            raise BadValue("", f"epoch time out of range: {value!r}")
        return micros
    raise BadValue("", f"expected an RFC 3339 string or epoch number, got {json_type(value)}")


def content_text(value: object) -> str | None:
    """Message content as one string: text parts joined by newlines, other parts as ``[<type>]``.

    >>> content_text([{"type": "text", "text": "What is this?"}, {"type": "image_url"}])
    'What is this?\\n[image_url]'
    """
    if value is None or type(value) is str:
        return value
    if type(value) is not list:
        raise BadValue("", f"expected a string or a list of parts, got {json_type(value)}")
    pieces: list[str] = []
    for i, part in enumerate(value):
        if type(part) is str:
            pieces.append(part)
            continue
        if type(part) is not dict:
            raise BadValue(f"[{i}]", f"expected a content part object, got {json_type(part)}")
        kind = part.get("type")
        if type(kind) is not str:
            raise BadValue(f"[{i}].type", f"expected a string part type, got {json_type(kind)}")
        text = part.get("text")
        if kind in TEXT_PART_TYPES and type(text) is str:
            pieces.append(text)
        else:
            pieces.append(f"[{kind}]")
    return "\n".join(pieces)


def tool_json(value: object) -> str:
    """One tool definition as JSON text; a string is taken to be JSON text already.

    >>> tool_json({"type": "function", "function": {"name": "f"}})
    '{"type":"function","function":{"name":"f"}}'
    """
    if type(value) is str:
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:
        raise BadValue("", f"tool is not JSON-serialisable: {exc}") from None


def asn_number(value: object) -> int:
    """An autonomous-system number from ``13335`` or ``"AS13335"``.

    >>> asn_number("AS13335"), asn_number("as7"), asn_number(64512)
    (13335, 7, 64512)
    """
    if type(value) is int:
        number = value
    elif type(value) is str:
        digits = value[2:] if value[:2].upper() == "AS" else value
        if not digits.isascii() or not digits.isdigit():
            raise BadValue("", f"not an AS number: {value!r}")
        number = int(digits)
    else:
        raise BadValue("", f"expected an integer or 'AS<n>' string, got {json_type(value)}")
    if not 0 <= number <= INT64_MAX:
        raise BadValue("", f"AS number out of range: {value!r}")
    return number


def json_object(text: object) -> dict[str, Any]:
    """The fields held in an ``extra`` value: JSON text of an object.

    >>> json_object('{"trace_id": "ab12"}')
    {'trace_id': 'ab12'}
    """
    if type(text) is not str:
        raise BadValue("", f"expected JSON object text, got {json_type(text)}")
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadValue("", f"not JSON text: {exc}") from None
    if type(value) is not dict:
        raise BadValue("", f"expected a JSON object, got {json_type(value)}")
    return value


def coerce_scalar(value: object, kind: type) -> Any:
    """Accept the near-misses JSON allows (an int for a float, ``2.0`` for an int) or raise."""
    if kind is float and type(value) is int:
        return float(value)
    if kind is int and type(value) is float and value.is_integer():
        value = int(value)
    if kind is int and type(value) is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise BadValue("", f"integer out of int64 range: {value}")
        return value
    raise BadValue("", f"expected {_KIND_NAMES[kind]}, got {json_type(value)}")


def text_scalar(text: str, kind: type) -> Any:
    """A CSV cell (always text) as ``kind``; the empty string is null."""
    if text == "":
        return None
    if kind is str:
        return text
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise BadValue("", f"expected true/false/1/0, got {text!r}")
    try:
        number = kind(text.strip())
    except ValueError:
        raise BadValue("", f"expected {_KIND_NAMES[kind]}, got {text!r}") from None
    return coerce_scalar(number, kind) if kind is int else number


_KIND_NAMES: Final[dict[type, str]] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
}
