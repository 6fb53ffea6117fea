"""Readers for the canonical tables: JSONL (plain, gzip, zstd), CSV and Parquet.

Each reader returns a :class:`ReadResult`. A bad record never stops a read: it is counted,
described by a :class:`RecordError` (file, 1-based line or row, dotted field, message) and
skipped, and every good record before and after it is kept. A file that cannot be opened or
decoded at all is reported once, as line 0, and the read goes on with the next file.

JSONL is read in blocks of whole lines. Each block first tries the columnar fast path
(``pyarrow.json`` with the canonical schema, then vectorised checks); a block that is not
already canonical (content parts, tool objects, unknown fields, any bad line) goes through the
per-record path (``orjson`` plus the compiled normaliser), which gives the exact errors.
"""

from __future__ import annotations

import csv
import functools
import gc
import io
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Final, cast

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import zstandard

from distillwatch.ingest._columnar import NotColumnar, conform, rfc3339_times, violations
from distillwatch.ingest._records import (
    Layout,
    Row,
    extra_json,
    record_normaliser,
    rows_to_table,
)
from distillwatch.ingest._specs import (
    ACCOUNTS,
    CALLS,
    EXTRA,
    LABELS_SPEC,
    MODELS,
    SPECS,
    TableSpec,
)
from distillwatch.ingest._values import BadValue, json_object
from distillwatch.ingest.result import (
    DEFAULT_MAX_ERRORS,
    ErrorLog,
    OnError,
    Progress,
    ReadResult,
)
from distillwatch.ingest.sources import (
    Compression,
    expand_paths,
    file_format,
    line_blocks,
    open_binary,
)

PathArg = str | Path | Iterable[str | Path]
Reader = Callable[..., ReadResult]
Transform = Callable[[pa.Table], pa.Table]

_RECORD: Final = "<record>"
_FILE: Final = "<file>"
_ROWS_PER_TABLE: Final = 65_536
_SLOW_STREAK: Final = 8  # blocks to skip the fast path after a clean block that needed the slow one
_FILE_ERRORS: Final = (
    OSError,
    EOFError,
    UnicodeDecodeError,
    csv.Error,
    zlib.error,
    zstandard.ZstdError,
    pa.ArrowException,
)


def read_calls(
    paths: PathArg,
    *,
    on_error: OnError | None = None,
    progress: Progress | None = None,
    max_errors: int = DEFAULT_MAX_ERRORS,
    transform: Transform | None = None,
    skip: Collection[str] = (),
) -> ReadResult:
    """Read call logs (files or directories of ``.jsonl[.gz|.zst]`` / ``.parquet``).

    ``on_error`` sees every bad record as it is found; ``progress`` is called with the number
    of records (lines or rows) processed since its last call; ``max_errors`` caps how many
    errors the result keeps (``n_bad`` still counts all). ``transform``, when given, is applied
    to each batch of good records as it is read (a projection or a filter), so a large log
    never has to be held whole; the result's table is then the concatenation of its outputs.
    ``skip`` names fields (dotted paths such as ``response.output_text``) the caller will not
    read: Parquet files leave them undecoded and null (a third of the work for a log with
    answers); line formats still parse them.
    """
    return read_table(
        CALLS,
        paths,
        on_error=on_error,
        progress=progress,
        max_errors=max_errors,
        transform=transform,
        skip=skip,
    )


def read_accounts(
    paths: PathArg,
    *,
    on_error: OnError | None = None,
    progress: Progress | None = None,
    max_errors: int = DEFAULT_MAX_ERRORS,
) -> ReadResult:
    """Read account records (JSONL, CSV or Parquet) into ``ACCOUNT_SCHEMA``."""
    return read_table(ACCOUNTS, paths, on_error=on_error, progress=progress, max_errors=max_errors)


def read_models(
    paths: PathArg,
    *,
    on_error: OnError | None = None,
    progress: Progress | None = None,
    max_errors: int = DEFAULT_MAX_ERRORS,
) -> ReadResult:
    """Read model-release records (JSONL, CSV or Parquet) into ``MODEL_SCHEMA``."""
    return read_table(MODELS, paths, on_error=on_error, progress=progress, max_errors=max_errors)


def read_labels(
    paths: PathArg,
    *,
    on_error: OnError | None = None,
    progress: Progress | None = None,
    max_errors: int = DEFAULT_MAX_ERRORS,
) -> ReadResult:
    """Read ground-truth labels (JSONL, CSV or Parquet) into ``LABEL_SCHEMA``."""
    return read_table(
        LABELS_SPEC, paths, on_error=on_error, progress=progress, max_errors=max_errors
    )


READERS: Final[dict[str, Reader]] = {
    "calls": read_calls,
    "accounts": read_accounts,
    "models": read_models,
    "labels": read_labels,
}


def input_files(paths: PathArg, kind: str = "calls") -> tuple[Path, ...]:
    """The files a reader of ``kind`` would read from ``paths``, in reading order."""
    return expand_paths(paths, SPECS[kind].formats, skip_tables=set(SPECS) - {kind})


def read_table(
    spec: TableSpec,
    paths: PathArg,
    *,
    on_error: OnError | None = None,
    progress: Progress | None = None,
    max_errors: int = DEFAULT_MAX_ERRORS,
    transform: Transform | None = None,
    skip: Collection[str] = (),
) -> ReadResult:
    """Read ``paths`` as the table ``spec`` describes; the readers above are thin wrappers.
    ``transform`` maps each batch of good records as it is read, and Parquet files leave the
    fields in ``skip`` undecoded (see :func:`read_calls`)."""
    files = input_files(paths, spec.name)
    log = ErrorLog(max_errors, on_error)
    tick = progress or _ignore
    tables: list[pa.Table] = []
    n_good = 0
    for path in files:
        fmt, compression = file_format(path)
        if fmt == "parquet":
            batches = _read_parquet(spec, path, log, tick, skip)
        elif fmt == "csv":
            batches = _read_csv(spec, path, compression, log, tick)
        else:
            batches = _read_jsonl(spec, path, compression, log, tick)
        try:
            for batch in batches:
                n_good += batch.num_rows
                tables.append(batch if transform is None else transform(batch))
        except _FILE_ERRORS as exc:
            log.add(str(path), 0, _FILE, f"cannot read file: {exc}")
    if tables:
        table = pa.concat_tables(tables)
    else:
        empty = spec.schema.empty_table()
        table = empty if transform is None else transform(empty)
    return ReadResult(
        table=table,
        errors=tuple(log.errors),
        n_good=n_good,
        n_bad=log.count,
        files=tuple(str(p) for p in files),
    )


def _ignore(_: int) -> None:
    """The progress callback when nobody listens."""


# --- JSONL ------------------------------------------------------------------------------------


def _read_jsonl(
    spec: TableSpec, path: Path, compression: Compression, log: ErrorLog, tick: Progress
) -> Iterator[pa.Table]:
    """JSONL blocks: fast path first, unless the file's shape keeps sending blocks to the
    per-record path (both give the same table, so this only saves the failed attempts)."""
    line = 1
    try_fast_from = 0
    with open_binary(path, compression) as stream:
        for index, block in enumerate(line_blocks(stream)):
            n_lines = block.count(b"\n") + (not block.endswith(b"\n"))
            table = _fast_jsonl(spec, block) if index >= try_fast_from else None
            if table is None:
                bad_before = log.count
                table = _slow_jsonl(spec, block, str(path), line, log)
                if log.count == bad_before:  # no bad line: the shape is not canonical
                    try_fast_from = index + _SLOW_STREAK
            yield table
            line += n_lines
            tick(n_lines)


@functools.cache
def _json_parse_options(name: str) -> pa_json.ParseOptions:
    """``pyarrow.json`` options for the fast path: canonical types, times as text, and any
    other field inferred (nested ones are dropped by :func:`conform`, top-level ones go to
    ``extra``)."""
    spec = SPECS[name]
    fields = [
        pa.field(f.name, pa.string() if pa.types.is_timestamp(f.type) else f.type)
        for f in spec.schema
        if f.name != EXTRA
    ]
    return pa_json.ParseOptions(
        explicit_schema=pa.schema(fields), unexpected_field_behavior="infer"
    )


_JSON_READ: Final = pa_json.ReadOptions(block_size=4 << 20, use_threads=True)


def _fast_jsonl(spec: TableSpec, block: bytes) -> pa.Table | None:
    """The block as a canonical table if every line is canonical and valid, else None.

    The per-record path would give the same table; this one is just faster.
    """
    try:
        parsed = pa_json.read_json(
            pa.BufferReader(block),
            read_options=_JSON_READ,
            parse_options=_json_parse_options(spec.name),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    try:
        for fld in spec.schema:
            if pa.types.is_timestamp(fld.type):
                times = rfc3339_times(parsed.column(fld.name), fld.type)
                parsed = parsed.set_column(parsed.schema.get_field_index(fld.name), fld.name, times)
    except NotColumnar:
        return None
    known = _known_fields(spec.name)
    unknown = [name for name in parsed.column_names if name not in known]
    extra = None
    if unknown:
        parsed = parsed.drop_columns(unknown)
        if spec.keeps_extra:
            extra = _extra_texts(block, known, parsed.num_rows)
            if extra is None:
                return None
    try:
        table = conform(parsed, spec)
    except NotColumnar:
        return None
    if extra is not None:
        at = spec.schema.get_field_index(EXTRA)
        table = table.set_column(at, spec.schema.field(EXTRA), extra)
    return None if violations(table, spec) else table


@functools.cache
def _known_fields(name: str) -> frozenset[str]:
    """Top-level JSON keys the schema names (a key called ``extra`` is not one of them)."""
    return frozenset(SPECS[name].schema.names) - {EXTRA}


def _extra_texts(block: bytes, known: frozenset[str], n_rows: int) -> pa.Array | None:
    """The ``extra`` column for a block, from its lines (None if they do not line up)."""
    lines = [raw for raw in block.split(b"\n") if raw and not raw.isspace()]
    if len(lines) != n_rows:
        return None
    texts: list[str | None] = []
    with _gc_paused():
        for raw in lines:
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return None
            if type(record) is not dict:
                return None
            texts.append(extra_json(record, known))
    return pa.array(texts, pa.string())


def _slow_jsonl(
    spec: TableSpec, block: bytes, file: str, first_line: int, log: ErrorLog
) -> pa.Table:
    """The block one line at a time: bad lines go to ``log``, good ones into the table."""

    def decoded() -> Iterator[tuple[int, Any]]:
        for offset, raw in enumerate(block.split(b"\n")):
            if not raw or raw.isspace():
                continue
            try:
                yield first_line + offset, orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                log.add(file, first_line + offset, _RECORD, f"invalid JSON: {exc}")

    return _normalise_all(spec, decoded(), file, log)


# --- CSV --------------------------------------------------------------------------------------


def _read_csv(
    spec: TableSpec, path: Path, compression: Compression, log: ErrorLog, tick: Progress
) -> Iterator[pa.Table]:
    with (
        open_binary(path, compression) as raw,
        io.TextIOWrapper(cast(IO[bytes], raw), encoding="utf-8-sig", newline="") as text,
    ):
        reader = csv.DictReader(text)
        batch: list[tuple[int, Any]] = []
        for record in reader:
            if None in record:
                log.add(str(path), reader.line_num, _RECORD, "more cells than header columns")
            else:
                batch.append((reader.line_num, record))
            if len(batch) >= _ROWS_PER_TABLE:
                yield _csv_table(spec, batch, str(path), log)
                tick(len(batch))
                batch = []
        yield _csv_table(spec, batch, str(path), log)
        tick(len(batch))


def _csv_table(spec: TableSpec, batch: list[tuple[int, Any]], file: str, log: ErrorLog) -> pa.Table:
    unpacked = _with_extra_unpacked(spec, batch, file, log)
    return _normalise_all(spec, unpacked, file, log, from_text=True)


# --- Parquet ----------------------------------------------------------------------------------


def _read_parquet(
    spec: TableSpec, path: Path, log: ErrorLog, tick: Progress, skip: Collection[str] = ()
) -> Iterator[pa.Table]:
    first_row = 1
    file = pq.ParquetFile(path)
    columns = _leaf_paths(file.schema_arrow, frozenset(skip)) if skip else None
    for batch in file.iter_batches(batch_size=_ROWS_PER_TABLE, columns=columns):
        table = pa.Table.from_batches([batch])
        try:
            good = conform(table, spec)
        except NotColumnar:
            records = enumerate(table.to_pylist(), start=first_row)
            unpacked = _with_extra_unpacked(spec, records, str(path), log)
            good = _normalise_all(spec, unpacked, str(path), log)
        else:
            bad = violations(good, spec)
            if bad:
                for index in sorted(bad):
                    field, message = bad[index]
                    log.add(str(path), first_row + index, field, message)
                keep = np.ones(good.num_rows, dtype=bool)
                keep[list(bad)] = False
                good = good.filter(pa.array(keep))
        yield good
        first_row += batch.num_rows
        tick(batch.num_rows)


def _leaf_paths(schema: pa.Schema, skip: frozenset[str]) -> list[str]:
    """Dotted paths of the leaf fields of ``schema`` (lists count as leaves), less those in
    ``skip`` or under a path in it."""
    out: list[str] = []

    def walk(field: pa.Field, prefix: str) -> None:
        path = f"{prefix}{field.name}"
        if path in skip:
            return
        if pa.types.is_struct(field.type):
            for i in range(field.type.num_fields):
                walk(field.type.field(i), path + ".")
        else:
            out.append(path)

    for field in schema:
        walk(field, "")
    return out


def _with_extra_unpacked(
    spec: TableSpec, records: Iterable[tuple[int, Any]], file: str, log: ErrorLog
) -> Iterator[tuple[int, Any]]:
    """Parquet or CSV rows with their ``extra`` JSON text spread back into top-level fields
    (in these tabular formats a column called ``extra`` is the schema's own)."""
    for row, record in records:
        text = record.pop(EXTRA, None) if spec.keeps_extra else None
        if text not in (None, ""):
            try:
                fields = json_object(text)
            except BadValue as exc:
                log.add(file, row, EXTRA, exc.message)
                continue
            for key, value in fields.items():
                record.setdefault(key, value)
        yield row, record


# --- the per-record path ----------------------------------------------------------------------


@functools.cache
def _normaliser(name: str, from_text: bool) -> tuple[Callable[[Any], Row], Layout]:
    return record_normaliser(SPECS[name], from_text=from_text)


def _normalise_all(
    spec: TableSpec,
    records: Iterable[tuple[int, Any]],
    file: str,
    log: ErrorLog,
    *,
    from_text: bool = False,
) -> pa.Table:
    """Normalise ``(line, record)`` pairs into a table; bad records go to ``log``."""
    normalise, layout = _normaliser(spec.name, from_text)
    rows: list[Row] = []
    lines: list[int] = []
    with _gc_paused():
        for line, record in records:
            try:
                rows.append(normalise(record))
            except BadValue as exc:
                log.add(file, line, exc.field or _RECORD, exc.message)
                continue
            lines.append(line)
        try:
            return rows_to_table(rows, spec, layout)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            return _rows_one_by_one(spec, layout, rows, lines, file, log)


def _rows_one_by_one(
    spec: TableSpec, layout: Layout, rows: list[Row], lines: list[int], file: str, log: ErrorLog
) -> pa.Table:
    """Safety net when a block's rows do not convert together: find the ones that fail."""
    tables = []
    for row, line in zip(rows, lines, strict=True):
        try:
            tables.append(rows_to_table([row], spec, layout))
        except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
            log.add(file, line, _RECORD, f"cannot convert record: {exc}")
    return pa.concat_tables(tables) if tables else spec.schema.empty_table()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building many short-lived containers (no cycles are made)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
