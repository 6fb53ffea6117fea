"""docs/schema.md and distillwatch.core.schema describe the same tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pyarrow as pa
import pytest

from distillwatch.core.schema import (
    ACCOUNT_SCHEMA,
    CALL_SCHEMA,
    ENDPOINTS,
    LABEL_SCHEMA,
    LABELS,
    MODEL_SCHEMA,
    SCHEMA_VERSION,
    SIGNUP_CHANNELS,
    json_schema,
)

DOC = Path(__file__).parents[2] / "docs" / "schema.md"
TABLES = [
    ("calls", CALL_SCHEMA),
    ("accounts", ACCOUNT_SCHEMA),
    ("models", MODEL_SCHEMA),
    ("labels", LABEL_SCHEMA),
]


def _paths(fields, prefix=""):
    """Every field as a dotted path, ``[]`` marking list items, as the doc writes them."""
    for field in fields:
        path = f"{prefix}{field.name}"
        yield path
        dtype = field.type
        if pa.types.is_list(dtype):
            dtype = dtype.value_type
            path += "[]"
        if pa.types.is_struct(dtype):
            yield from _paths(list(dtype), path + ".")


def _section(title: str) -> str:
    text = DOC.read_text()
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"no section '## {title}' in {DOC}"
    return match.group(1)


def example_call() -> dict:
    match = re.search(r"### Example call record\s+```json\n(.*?)```", DOC.read_text(), re.S)
    assert match, "no example call record in the doc"
    return json.loads(match.group(1))


@pytest.mark.parametrize(("title", "schema"), TABLES)
def test_every_field_is_documented_in_its_section(title, schema):
    section = _section(title)
    missing = [p for p in _paths(schema) if f"| `{p}` |" not in section]
    assert not missing, f"fields of {title} missing from docs/schema.md: {missing}"


@pytest.mark.parametrize(("title", "schema"), TABLES)
def test_documented_fields_exist_and_required_ones_are_marked(title, schema):
    rows = re.findall(r"^\| `([^`]+)` \|([^|]+)\|([^|]*)\|", _section(title), re.M)
    documented = {path: required.strip() for path, _, required in rows}
    assert set(documented) == set(_paths(schema))
    for field in schema:
        assert documented[field.name].startswith("yes") == (not field.nullable), field.name


def test_doc_names_the_schema_version_and_every_enumerated_value():
    text = DOC.read_text()
    assert f"v{SCHEMA_VERSION}" in text.splitlines()[0]
    for value in (*ENDPOINTS, *SIGNUP_CHANNELS, *LABELS):
        assert f"`{value}`" in text, value


def test_example_call_record_is_valid_against_the_json_schema():
    schema = json_schema("calls")
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(example_call())


def test_json_schema_rejects_what_readers_reject():
    validator = jsonschema.Draft202012Validator(json_schema("calls"))
    record = example_call()
    for field in ("ts", "account_id", "model", "request"):
        broken = {k: v for k, v in record.items() if k != field}
        assert not validator.is_valid(broken), field
    assert not validator.is_valid({**record, "endpoint": "grpc"})
