"""Log sources -> canonical frames: readers and writers for the call-log schema v1.

Readers turn JSONL (plain, gzip, zstd), CSV and Parquet files into Arrow tables that match
:mod:`distillwatch.core.schema` exactly, reporting bad records instead of stopping on them;
:func:`write_table` writes any of those tables back, byte-for-byte deterministically.
"""

from __future__ import annotations

from distillwatch.ingest.readers import (
    READERS,
    input_files,
    read_accounts,
    read_calls,
    read_labels,
    read_models,
)
from distillwatch.ingest.result import OnError, Progress, ReadResult
from distillwatch.ingest.writers import write_table

__all__ = [
    "READERS",
    "OnError",
    "Progress",
    "ReadResult",
    "input_files",
    "read_accounts",
    "read_calls",
    "read_labels",
    "read_models",
    "write_table",
]
