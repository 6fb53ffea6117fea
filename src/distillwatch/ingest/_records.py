"""The tolerant path: one decoded record at a time -> a flat row, then rows -> Arrow columns.

:func:`record_normaliser` compiles a :class:`TableSpec` once into closures that append every
leaf value of a record to one flat list (a struct adds a validity flag before its fields), so
the per-record work is dict look-ups and ``type(x) is kind`` checks, not object building. A
bad value raises :class:`BadValue` with the dotted path of the field
(``request.messages[0].content``). :func:`rows_to_table` transposes the rows and rebuilds
the nested Arrow arrays from the flat columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from distillwatch.ingest._specs import EXTRA, TableSpec
from distillwatch.ingest._values import (
    INT64_MAX,
    INT64_MIN,
    BadValue,
    coerce_scalar,
    json_type,
    text_scalar,
    timestamp_us,
)

Convert = Callable[[Any], Any]
Fill = Callable[[Any, list[Any]], None]
Row = list[Any]

_SCALAR_KINDS: Final[dict[pa.DataType, type]] = {
    pa.string(): str,
    pa.int64(): int,
    pa.float64(): float,
    pa.bool_(): bool,
}
_MISSING: Final = "missing required field"


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a (nested) field's values sit in a flat row, to rebuild its Arrow array.

    A leaf or list owns one slot (``slot``); a struct owns a validity slot (``slot``, or -1
    for the always-valid record itself) followed by its children's slots.
    """

    dtype: pa.DataType
    slot: int
    children: tuple[Layout, ...] = ()
    item: Layout | None = None
    width: int = 1


def record_normaliser(
    spec: TableSpec, *, from_text: bool = False
) -> tuple[Callable[[Any], Row], Layout]:
    """A function from one decoded record (a dict) to a flat row, or raising :class:`BadValue`,
    and the layout :func:`rows_to_table` needs to turn those rows into ``spec.schema``.

    ``from_text`` is for CSV: every cell is a string and the empty string is null.
    """
    known = frozenset(name for name in spec.schema.names if name != EXTRA)
    fields = [f for f in spec.schema if f.name != EXTRA]
    fill, layout = _struct(fields, "", spec, from_text, first_slot=0, with_validity=False)
    keeps_extra = spec.keeps_extra
    if keeps_extra:  # extra is the last slot, whatever its place in the schema
        extra = Layout(pa.string(), layout.width)
        layout = Layout(layout.dtype, -1, (*layout.children, extra), width=layout.width + 1)

    def normalise(record: Any) -> Row:
        if type(record) is not dict:
            raise BadValue("<record>", f"expected a JSON object, got {json_type(record)}")
        row: Row = []
        fill(record, row)
        if keeps_extra:
            row.append(extra_json(record, known, from_text=from_text))
        return row

    return normalise, layout


def extra_json(
    record: dict[str, Any], known: frozenset[str], *, from_text: bool = False
) -> str | None:
    """The record's unknown top-level fields as JSON object text, in record order, or None.

    From CSV, empty cells are left out. The fast path calls this too, so both agree.
    """
    unknown = [key for key in record if key not in known]
    if not unknown:
        return None
    if from_text:
        unknown = [key for key in unknown if record[key] not in ("", None)]
        if not unknown:
            return None
    return orjson.dumps({key: record[key] for key in unknown}).decode()


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _struct(
    fields: Sequence[pa.Field],
    prefix: str,
    spec: TableSpec,
    from_text: bool,
    *,
    first_slot: int,
    with_validity: bool = True,
) -> tuple[Fill, Layout]:
    """Filler for a JSON object with ``fields``, appending their leaves to a flat row.

    Plain scalars come first in the row, then converted values, then nested structs: three
    tight loops instead of one loop that branches on every field.
    """
    plain: list[tuple[str, Any, bool]] = []  # Any: keeps mypy from narrowing on `kind`
    converted: list[tuple[str, Convert, bool]] = []
    nested: list[tuple[str, Fill, bool, int]] = []
    by_name: dict[str, Layout] = {}
    slot = first_slot + with_validity
    groups: list[list[pa.Field]] = [[], [], []]
    for fld in fields:
        path = _join(prefix, fld.name)
        if pa.types.is_struct(fld.type) and not from_text:
            groups[2].append(fld)
        elif _converter(fld.type, path, spec, from_text, 0)[0] is None:
            groups[0].append(fld)
        else:
            groups[1].append(fld)
    for fld in chain.from_iterable(groups):
        path = _join(prefix, fld.name)
        required = path in spec.required
        if pa.types.is_struct(fld.type) and not from_text:
            sub, by_name[fld.name] = _struct(list(fld.type), path, spec, from_text, first_slot=slot)
            nested.append((fld.name, sub, required, by_name[fld.name].width))
        else:
            conv, item = _converter(fld.type, path, spec, from_text, slot)
            if conv is None:
                plain.append((fld.name, _SCALAR_KINDS[fld.type], required))
            else:
                converted.append((fld.name, conv, required))
            by_name[fld.name] = Layout(fld.type, slot, item=item)
        slot += by_name[fld.name].width
    layout = Layout(
        pa.struct(list(fields)),
        first_slot if with_validity else -1,
        tuple(by_name[f.name] for f in fields),
        width=slot - first_slot,
    )
    plain_steps, converted_steps, nested_steps = tuple(plain), tuple(converted), tuple(nested)

    def fill(obj: Any, out: list[Any]) -> None:
        if type(obj) is not dict:
            raise BadValue("", f"expected an object, got {json_type(obj)}")
        get = obj.get
        append = out.append
        for name, kind, required in plain_steps:
            value = get(name)
            if value is None:
                if required:
                    raise BadValue(name, _MISSING)
            elif type(value) is not kind or (
                kind is int and (value > INT64_MAX or value < INT64_MIN)
            ):
                try:
                    value = coerce_scalar(value, kind)
                except BadValue as exc:
                    raise exc.under(name) from None
            append(value)
        for name, conv, required in converted_steps:
            value = get(name)
            if value is not None:
                try:
                    value = conv(value)
                except BadValue as exc:
                    raise exc.under(name) from None
            if value is None and required:
                raise BadValue(name, _MISSING)
            append(value)
        for name, sub, required, width in nested_steps:
            value = get(name)
            if value is None:
                if required:
                    raise BadValue(name, _MISSING)
                append(False)
                out.extend([None] * (width - 1))
                continue
            append(True)
            try:
                sub(value, out)
            except BadValue as exc:
                raise exc.under(name) from None

    return fill, layout


def _converter(
    dtype: pa.DataType, path: str, spec: TableSpec, from_text: bool, slot: int
) -> tuple[Convert | None, Layout | None]:
    """The converter for a value of ``dtype`` at ``path`` (None: a plain inline type check),
    and for a list, the layout of its items."""
    if path in spec.special:
        return spec.special[path], None
    if from_text:
        return _text_converter(dtype, path, spec), None
    if pa.types.is_timestamp(dtype):
        return timestamp_us, None
    if path in spec.enums or path in spec.nonempty:
        return _checked_string(path, spec), None
    if dtype in _SCALAR_KINDS:
        return None, None
    if pa.types.is_list(dtype):
        return _list(dtype.value_type, path + "[]", spec)
    raise TypeError(f"no normaliser for {dtype} at {path}")


def _list(item_type: pa.DataType, path: str, spec: TableSpec) -> tuple[Convert, Layout]:
    """Converter for a JSON array: each item becomes a scalar, or a flat list for a struct."""
    item_required = path in spec.required
    item: Convert
    null_item: list[Any] | None
    if pa.types.is_struct(item_type):
        fill, layout = _struct(list(item_type), path, spec, False, first_slot=0)
        null_item = [False] + [None] * (layout.width - 1)

        def item(value: Any) -> list[Any]:
            out: list[Any] = [True]
            fill(value, out)
            return out

    else:
        conv, _ = _converter(item_type, path, spec, False, 0)
        item = conv or _scalar(item_type)
        layout = Layout(item_type, 0)
        null_item = None

    def convert(value: Any) -> list[Any]:
        if type(value) is not list:
            raise BadValue("", f"expected an array, got {json_type(value)}")
        out: list[Any] = []
        for i, element in enumerate(value):
            if element is None:
                if item_required:
                    raise BadValue(f"[{i}]", "null item")
                out.append(null_item)
                continue
            try:
                out.append(item(element))
            except BadValue as exc:
                raise exc.under(f"[{i}]") from None
        return out

    return convert, layout


def _scalar(dtype: pa.DataType) -> Convert:
    kind = _SCALAR_KINDS[dtype]

    def convert(value: Any) -> Any:
        return value if type(value) is kind else coerce_scalar(value, kind)

    return convert


def _checked_string(path: str, spec: TableSpec) -> Convert:
    """A string that must be non-empty and/or one of an enumeration."""
    allowed = spec.enums.get(path)
    nonempty = path in spec.nonempty

    def convert(value: Any) -> str:
        if type(value) is not str:
            raise BadValue("", f"expected a string, got {json_type(value)}")
        if nonempty and not value:
            raise BadValue("", "must not be empty")
        if allowed is not None and value not in allowed:
            raise BadValue("", f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return convert


def _text_converter(dtype: pa.DataType, path: str, spec: TableSpec) -> Convert:
    """Converter for one CSV cell (flat tables only)."""
    if pa.types.is_timestamp(dtype):
        return lambda text: None if text == "" else timestamp_us(text)
    kind = _SCALAR_KINDS.get(dtype)
    if kind is None:
        raise TypeError(f"CSV cannot hold {dtype} at {path}; use JSONL or Parquet")
    check = _checked_string(path, spec) if path in spec.enums or path in spec.nonempty else None

    def convert(text: Any) -> Any:
        value = text_scalar(text, kind)
        return value if check is None or value is None else check(value)

    return convert


# --- rows -> Arrow ----------------------------------------------------------------------------


def rows_to_table(rows: list[Row], spec: TableSpec, layout: Layout) -> pa.Table:
    """Arrow table in ``spec.schema`` from the normaliser's flat rows."""
    columns: Sequence[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else _empty(layout)
    arrays = {
        fld.name: _assemble(child, columns)
        for fld, child in zip(_ordered_fields(spec), layout.children, strict=True)
    }
    return pa.Table.from_arrays([arrays[name] for name in spec.schema.names], schema=spec.schema)


def _ordered_fields(spec: TableSpec) -> list[pa.Field]:
    """Schema fields in row order: ``extra`` last."""
    fields = [f for f in spec.schema if f.name != EXTRA]
    return [*fields, spec.schema.field(EXTRA)] if spec.keeps_extra else fields


def _empty(layout: Layout) -> list[list[Any]]:
    return [[] for _ in range(layout.width)]


def _assemble(layout: Layout, columns: Sequence[Sequence[Any]]) -> pa.Array:
    """The Arrow array for ``layout`` from flat columns."""
    dtype = layout.dtype
    if pa.types.is_struct(dtype):
        children = [_assemble(child, columns) for child in layout.children]
        # A struct inside a null struct has None, not False, in its validity slot.
        valid = pc.fill_null(pa.array(columns[layout.slot], pa.bool_()), False)
        return pa.StructArray.from_arrays(children, fields=list(dtype), mask=pc.invert(valid))
    values = columns[layout.slot]
    if layout.item is None:
        return pa.array(values, type=dtype)
    lengths = np.fromiter((0 if v is None else len(v) for v in values), np.int32, len(values))
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    items = list(chain.from_iterable(v for v in values if v))
    if layout.item.children:
        item_columns = list(zip(*items, strict=True)) if items else _empty(layout.item)
        flat = _assemble(layout.item, item_columns)
    else:
        flat = pa.array(items, type=layout.item.dtype)
    nulls = pa.array([v is None for v in values], pa.bool_())
    return pa.ListArray.from_arrays(pa.array(offsets), flat, type=dtype, mask=nulls)
