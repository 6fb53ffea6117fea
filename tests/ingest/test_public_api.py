"""The public surface of distillwatch.ingest, pinned; its doctests run here too."""

from __future__ import annotations

import doctest
import json
import re
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

import distillwatch.ingest
from distillwatch.ingest import _values, read_calls, sources


def test_all_is_pinned():
    assert sorted(distillwatch.ingest.__all__) == [
        "OnError",
        "Progress",
        "READERS",
        "ReadResult",
        "input_files",
        "read_accounts",
        "read_calls",
        "read_labels",
        "read_models",
        "write_table",
    ]
    assert set(distillwatch.ingest.READERS) == {"calls", "accounts", "models", "labels"}


def test_read_result_is_frozen(tmp_path):
    (tmp_path / "c.jsonl").write_text("")
    result = read_calls(tmp_path / "c.jsonl")
    with pytest.raises(FrozenInstanceError):
        result.n_bad = 3  # type: ignore[misc]


@pytest.mark.parametrize("module", [_values, sources])
def test_doctests(module):
    failures, _ = doctest.testmod(module)
    assert failures == 0


def test_the_documented_example_reads_as_the_doc_says(tmp_path):
    doc = (Path(__file__).parents[2] / "docs" / "schema.md").read_text()
    match = re.search(r"### Example call record\s+```json\n(.*?)```", doc, re.S)
    assert match
    (tmp_path / "example.jsonl").write_text(json.dumps(json.loads(match.group(1))) + "\n")
    result = read_calls(tmp_path / "example.jsonl")
    assert result.ok, result.errors
    row = result.table.to_pylist()[0]
    assert row["client"]["asn"] == 64500
    assert (
        row["request"]["messages"][1]["content"]
        == "Explain each step of your reasoning.\n[image_url]"
    )
    assert row["request"]["tools"] == [
        '{"type":"function","function":{"name":"lookup","parameters":{}}}'
    ]
    assert row["extra"] == '{"trace_id":"9f2c"}'
