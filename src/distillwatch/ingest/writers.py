"""Writers: one Arrow table to Parquet, JSONL (plain, gzip, zstd) or CSV, chosen by suffix.

Output is deterministic, so the same table always gives the same bytes: gzip headers carry
no file name and mtime 0, zstd uses a fixed level, rows are written in fixed-size slices.
JSONL is what the readers read back to an equal table: times as RFC 3339 with ``Z`` and
microseconds, and the ``extra`` JSON text spread back into top-level fields.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Final

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from distillwatch.core.errors import DistillwatchError
from distillwatch.ingest._specs import EXTRA
from distillwatch.ingest._values import BadValue, json_object
from distillwatch.ingest.sources import Compression, file_format

GZIP_LEVEL: Final = 3  # 2-3x faster than 6 for ~20% more bytes; use .zst for both
ZSTD_LEVEL: Final = 3
_ROWS_PER_SLICE: Final = 100_000
# Parquet row groups are the unit a reader decodes at once: 64k call records (~100 MB) keep a
# streaming reader's memory small while staying large enough for good compression.
ROW_GROUP_ROWS: Final = 65_536
_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S%.6fZ"


def write_table(table: pa.Table, path: str | Path) -> Path:
    """Write ``table`` to ``path`` in the format its suffix names; returns the path.

    ``.parquet`` (zstd, row groups of :data:`ROW_GROUP_ROWS`), ``.jsonl`` / ``.jsonl.gz`` / ``.jsonl.zst``, ``.csv`` (flat tables
    only). The file appears whole or not at all: it is written beside and then renamed.
    """
    target = Path(path)
    fmt, compression = file_format(target)
    if fmt == "csv":
        _check_flat(table, target)
    partial = target.with_name(target.name + ".partial")
    try:
        if fmt == "parquet":
            pq.write_table(table, partial, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        else:
            with _open_out(partial, compression) as out:
                for offset, piece in _slices(table):
                    data = _ndjson(piece, offset) if fmt == "jsonl" else _csv(piece, offset == 0)
                    out.write(data)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _slices(table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
    """``(first row, rows)`` in fixed-size runs; an empty table is one empty run."""
    if table.num_rows == 0:
        yield 0, table
    for start in range(0, table.num_rows, _ROWS_PER_SLICE):
        yield start, table.slice(start, _ROWS_PER_SLICE)


@contextmanager
def _open_out(path: Path, compression: Compression) -> Iterator[BinaryIO]:
    """A binary stream that compresses into ``path``, deterministically."""
    with path.open("wb") as raw:
        if compression == "gzip":
            with gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0
            ) as out:
                yield out  # type: ignore[misc]
        elif compression == "zstd":
            compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
            with compressor.stream_writer(raw, closefd=False) as out:
                yield out
        else:
            yield raw


def _frame(table: pa.Table) -> pl.DataFrame:
    """``table`` as polars with top-level times rendered as RFC 3339 text in UTC."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    times = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime):
            col = pl.col(name)
            utc = col.dt.replace_time_zone("UTC") if dtype.time_zone is None else col
            times.append(utc.dt.convert_time_zone("UTC").dt.strftime(_TIME_FORMAT).alias(name))
    return frame.with_columns(times) if times else frame


def _ndjson(table: pa.Table, offset: int) -> bytes:
    """One JSON object per row; ``extra`` fields appended to their row's object."""
    if table.num_rows == 0:
        return b""
    has_extra = EXTRA in table.column_names
    body = table.drop_columns([EXTRA]) if has_extra else table
    buffer = io.BytesIO()
    _frame(body).write_ndjson(buffer)
    data = buffer.getvalue()
    if not has_extra or table.column(EXTRA).null_count == table.num_rows:
        return data
    reserved = set(body.column_names)
    lines = data.split(b"\n")
    for i, text in enumerate(table.column(EXTRA).to_pylist()):
        if text is None:
            continue
        fields = _extra_fields(text, reserved, offset + i)
        if fields:
            lines[i] = lines[i][:-1] + b"," + orjson.dumps(fields)[1:]
    return b"\n".join(lines)


def _extra_fields(text: str, reserved: set[str], row: int) -> dict[str, Any]:
    """The fields in one ``extra`` text; they must not shadow real columns."""
    try:
        fields = json_object(text)
    except BadValue as exc:
        raise DistillwatchError(f"row {row}: extra: {exc.message}") from None
    clash = reserved.intersection(fields)
    if clash:
        raise DistillwatchError(f"row {row}: extra repeats column(s) {sorted(clash)}")
    return fields


def _csv(table: pa.Table, header: bool) -> bytes:
    buffer = io.BytesIO()
    _frame(table).write_csv(buffer, include_header=header)
    return buffer.getvalue()


def _check_flat(table: pa.Table, path: Path) -> None:
    nested = [f.name for f in table.schema if pa.types.is_nested(f.type)]
    if nested:
        raise DistillwatchError(
            f"{path}: CSV holds flat tables only, but {', '.join(nested)} nested; "
            "write .jsonl or .parquet instead"
        )
