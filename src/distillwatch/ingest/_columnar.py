"""The fast path: whole Arrow tables conformed to a canonical schema and checked with kernels.

:func:`conform` matches columns and struct fields by name, fills missing ones with nulls and
widens compatible types (int32 -> int64, large_string -> string, naive timestamps -> UTC).
Anything it cannot do losslessly raises :class:`NotColumnar`; callers then fall back to the
per-record path, which knows the JSON rules (``"AS123"``, epoch numbers, content parts).
:func:`violations` applies a spec's required / non-empty / enum rules to a conformed table.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from distillwatch.ingest._specs import EXTRA, TableSpec
from distillwatch.ingest._values import BadValue, json_object

# Strict RFC 3339 date-time; the fast path only casts strings of this shape, so it agrees
# with the per-record parser on every value it accepts.
RFC3339: Final = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)$"


class NotColumnar(Exception):
    """This input needs the per-record path (a type Arrow cannot cast losslessly)."""


def conform(table: pa.Table, spec: TableSpec) -> pa.Table:
    """``table`` with exactly ``spec.schema``'s columns; unknown columns folded into ``extra``."""
    columns = []
    for fld in spec.schema:
        if fld.name == EXTRA:
            columns.append(_extra_column(table, spec))
        elif fld.name in table.column_names:
            columns.append(_conform_chunked(table.column(fld.name), fld.type))
        else:
            columns.append(pa.nulls(table.num_rows, fld.type))
    return pa.Table.from_arrays(columns, schema=spec.schema)


def _conform_chunked(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    return pa.chunked_array([conform_array(c, target) for c in column.chunks], type=target)


def conform_array(arr: pa.Array, target: pa.DataType) -> pa.Array:
    """One array as ``target``, by name for struct fields, or raise :class:`NotColumnar`."""
    source = arr.type
    if source == target:
        return arr
    if pa.types.is_dictionary(source):
        return conform_array(arr.dictionary_decode(), target)
    if pa.types.is_null(source):
        return pa.nulls(len(arr), target)
    if pa.types.is_struct(target) and pa.types.is_struct(source):
        names = {source.field(i).name for i in range(source.num_fields)}
        children = [
            conform_array(arr.field(f.name), f.type)
            if f.name in names
            else pa.nulls(len(arr), f.type)
            for f in target
        ]
        return pa.StructArray.from_arrays(children, fields=list(target), mask=arr.is_null())
    if pa.types.is_list(target) and (pa.types.is_list(source) or pa.types.is_large_list(source)):
        values = conform_array(arr.values, target.value_type)
        offsets = arr.offsets.cast(pa.int32()) if pa.types.is_large_list(source) else arr.offsets
        return pa.ListArray.from_arrays(offsets, values, type=target, mask=arr.is_null())
    is_time = pa.types.is_timestamp(source) or pa.types.is_date(source)
    if pa.types.is_timestamp(target) and is_time:
        return _cast(arr, target, safe=False)  # naive times are taken as UTC; ns truncated
    if _same_family(source, target):
        return _cast(arr, target, safe=True)
    raise NotColumnar(f"cannot read {source} as {target}")


def _cast(arr: pa.Array, target: pa.DataType, *, safe: bool) -> pa.Array:
    try:
        return pc.cast(arr, target, safe=safe)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise NotColumnar(str(exc)) from None


def _same_family(source: pa.DataType, target: pa.DataType) -> bool:
    """Casts that never reinterpret a value (no text -> number, no number -> time)."""
    t = pa.types
    if t.is_string(target):
        return bool(t.is_string(source) or t.is_large_string(source) or t.is_string_view(source))
    if t.is_integer(target):
        return bool(t.is_integer(source))
    if t.is_floating(target):
        return bool(t.is_floating(source) or t.is_integer(source))
    if t.is_boolean(target):
        return bool(t.is_boolean(source))
    return False


def _extra_column(table: pa.Table, spec: TableSpec) -> pa.ChunkedArray:
    """Unknown columns as JSON object text per row (nulls left out), merged with any ``extra``."""
    known = set(spec.schema.names)
    unknown = [name for name in table.column_names if name not in known]
    has_extra = EXTRA in table.column_names
    if not unknown:
        if has_extra:
            return _conform_chunked(table.column(EXTRA), pa.string())
        return pa.chunked_array([pa.nulls(table.num_rows, pa.string())])
    given = table.column(EXTRA).to_pylist() if has_extra else [None] * table.num_rows
    texts: list[str | None] = []
    for row, text in zip(table.select(unknown).to_pylist(), given, strict=True):
        fields = {key: value for key, value in row.items() if value is not None}
        if text is not None:
            try:
                fields.update(json_object(text))
            except BadValue as exc:
                raise NotColumnar(f"extra: {exc.message}") from None
        texts.append(orjson.dumps(fields, default=str).decode() if fields else None)
    return pa.chunked_array([pa.array(texts, pa.string())])


def rfc3339_times(strings: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    """Strict RFC 3339 strings cast to ``target``; :class:`NotColumnar` if any is not one
    (the per-record parser then decides, so both paths accept the same values)."""
    if pc.all(pc.match_substring_regex(strings, RFC3339)).as_py() is False:
        raise NotColumnar("times that are not strict RFC 3339")
    return _cast(strings, target, safe=True)


def violations(table: pa.Table, spec: TableSpec) -> dict[int, tuple[str, str]]:
    """Row index -> (field, message) for rows that break the spec's rules (first rule wins)."""
    found: dict[int, tuple[str, str]] = {}
    for path in sorted(spec.required, key=lambda p: (p.count(".") + p.count("["), p)):
        _flag(found, table, path, pc.is_null, "missing required field")
    for path in sorted(spec.nonempty):
        _flag(found, table, path, _empty_string, "must not be empty")
    for path, allowed in sorted(spec.enums.items()):
        message = f"is not one of {', '.join(allowed)}"
        _flag(found, table, path, functools.partial(_outside, allowed=allowed), message)
    return found


def _empty_string(values: pa.Array) -> pa.Array:
    return pc.equal(values, "")


def _outside(values: pa.Array, allowed: tuple[str, ...]) -> pa.Array:
    """True where a non-null value is not in ``allowed``."""
    return pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, pa.array(allowed))))


def _flag(
    found: dict[int, tuple[str, str]], table: pa.Table, path: str, test: Any, message: str
) -> None:
    """Record ``message`` for rows whose value at ``path`` passes ``test`` (null test -> False)."""
    values, rows, positions = _resolve(table, path)
    hits = pc.fill_null(test(values), False).to_numpy(zero_copy_only=False)
    if not hits.any():
        return
    for i in np.flatnonzero(hits):
        row = int(rows[i]) if rows is not None else int(i)
        field = path
        if positions is not None:
            field = path.replace("[]", f"[{int(positions[i])}]", 1)
        if message.startswith("is not one of"):
            detail = f"{values[int(i)].as_py()!r} {message}"
        elif path.endswith("[]"):
            detail = "null item"
        else:
            detail = message
        found.setdefault(row, (field, detail))


def _resolve(
    table: pa.Table, path: str
) -> tuple[pa.Array, np.ndarray[Any, Any] | None, np.ndarray[Any, Any] | None]:
    """Values at a dotted path, with their row index and list position when under ``[]``."""
    parts = path.replace("[]", ".[]").split(".")
    arr: pa.Array = table.column(parts[0]).combine_chunks()
    rows: np.ndarray[Any, Any] | None = None
    positions: np.ndarray[Any, Any] | None = None
    for part in parts[1:]:
        if part == "[]":
            if rows is not None:
                raise NotImplementedError(f"nested lists in {path}")
            parents = pc.list_parent_indices(arr).to_numpy()
            rows = parents
            positions = np.arange(len(parents)) - np.searchsorted(parents, parents)
            arr = pc.list_flatten(arr)
        else:
            arr = arr.field(part)
    return arr, rows, positions
