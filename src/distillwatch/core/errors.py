"""Errors and the value that describes one bad input record."""

from __future__ import annotations

from dataclasses import dataclass


class DistillwatchError(Exception):
    """Base class for errors a user can act on (bad input, bad config)."""


@dataclass(frozen=True, slots=True)
class RecordError:
    """One malformed input record: where it is and what is wrong with it.

    >>> str(RecordError("calls.jsonl", 12, "ts", "not an RFC 3339 timestamp"))
    'calls.jsonl:12: field ts: not an RFC 3339 timestamp'
    """

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: field {self.field}: {self.message}"
