"""What a read returns: the good rows as one canonical table, and the bad ones as errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from distillwatch.core.errors import RecordError

OnError = Callable[[RecordError], None]
Progress = Callable[[int], None]

DEFAULT_MAX_ERRORS = 1000


@dataclass(frozen=True, slots=True)
class ReadResult:
    """The outcome of reading one or more files.

    ``table`` holds every good record in the canonical schema; ``errors`` the first bad
    ones (at most ``max_errors``), while ``n_bad`` counts all of them.
    """

    table: pa.Table
    errors: tuple[RecordError, ...]
    n_good: int
    n_bad: int
    files: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when no record was bad."""
        return self.n_bad == 0


class ErrorLog:
    """Counts every bad record, keeps the first ``cap``, and tells ``on_error`` about each."""

    __slots__ = ("_on_error", "cap", "count", "errors")

    def __init__(self, cap: int = DEFAULT_MAX_ERRORS, on_error: OnError | None = None) -> None:
        self.cap = cap
        self.count = 0
        self.errors: list[RecordError] = []
        self._on_error = on_error

    def add(self, file: str, line: int, field: str, message: str) -> None:
        """Record one bad record."""
        error = RecordError(file, line, field, message)
        self.count += 1
        if len(self.errors) < self.cap:
            self.errors.append(error)
        if self._on_error is not None:
            self._on_error(error)
