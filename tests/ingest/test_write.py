"""write_table: formats by suffix, round trips, extra merged back, deterministic bytes."""

from __future__ import annotations

import gzip

import orjson
import pyarrow as pa
import pytest
import zstandard

from distillwatch.core.errors import DistillwatchError
from distillwatch.ingest import read_accounts, read_calls, write_table


@pytest.fixture
def calls(tmp_path, make_call, jsonl):
    """A varied call table: content parts, tool objects, unknown fields, nulls, offsets."""
    records = [make_call(i) for i in range(6)]
    records[1]["request"]["messages"][1]["content"] = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "u"}},
    ]
    records[2]["request"]["tools"] = [{"type": "function", "function": {"name": "g"}}]
    records[3].update(trace_id="t3", tags=["a", "b"], score=0.5)
    records[4]["response"] = None
    records[4]["client"] = None
    records[5]["ts"] = "2025-03-01T23:30:00.000001-02:00"
    result = read_calls(jsonl(tmp_path / "source.jsonl", records))
    assert result.ok
    return result.table


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet"])
def test_round_trip_gives_an_equal_table(tmp_path, calls, suffix):
    path = write_table(calls, tmp_path / f"out{suffix}")
    assert path == tmp_path / f"out{suffix}"
    back = read_calls(path)
    assert back.ok, back.errors
    assert back.table.equals(calls)
    assert back.table.schema.equals(calls.schema, check_metadata=True)


def test_jsonl_times_are_rfc3339_z_and_extra_is_top_level(tmp_path, calls):
    lines = write_table(calls, tmp_path / "out.jsonl").read_bytes().splitlines()
    assert len(lines) == calls.num_rows
    first, with_extra, shifted = (orjson.loads(lines[i]) for i in (0, 3, 5))
    assert first["ts"] == "2025-03-01T12:00:00.250000Z"
    assert shifted["ts"] == "2025-03-02T01:30:00.000001Z"
    assert "extra" not in with_extra and "extra" not in first
    assert (with_extra["trace_id"], with_extra["tags"], with_extra["score"]) == (
        "t3",
        ["a", "b"],
        0.5,
    )
    assert list(with_extra)[-3:] == ["trace_id", "tags", "score"]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet"])
def test_writing_is_deterministic(tmp_path, calls, suffix):
    first = write_table(calls, tmp_path / f"one{suffix}").read_bytes()
    second = write_table(calls, tmp_path / f"two{suffix}").read_bytes()
    assert first == second


def test_gzip_header_has_no_name_and_no_time(tmp_path, calls):
    data = write_table(calls, tmp_path / "out.jsonl.gz").read_bytes()
    flags, mtime = data[3], data[4:8]
    assert flags & 0x08 == 0  # FNAME
    assert mtime == b"\0\0\0\0"
    assert gzip.decompress(data) == write_table(calls, tmp_path / "plain.jsonl").read_bytes()


def test_zstd_output_is_plain_zstd(tmp_path, calls):
    data = write_table(calls, tmp_path / "out.jsonl.zst").read_bytes()
    plain = write_table(calls, tmp_path / "plain.jsonl").read_bytes()
    assert zstandard.ZstdDecompressor().decompressobj().decompress(data) == plain


def test_csv_refuses_nested_tables(tmp_path, calls):
    with pytest.raises(DistillwatchError, match="flat tables only"):
        write_table(calls, tmp_path / "calls.csv")
    assert not (tmp_path / "calls.csv").exists()


def test_unknown_suffix_is_refused(tmp_path, calls):
    with pytest.raises(DistillwatchError, match="unsupported file type"):
        write_table(calls, tmp_path / "calls.json")


def test_extra_that_repeats_a_column_is_refused(tmp_path, calls):
    extra = pa.array(['{"model":"shadow"}'] + [None] * (calls.num_rows - 1), pa.string())
    clashing = calls.set_column(
        calls.schema.get_field_index("extra"), calls.schema.field("extra"), extra
    )
    with pytest.raises(DistillwatchError, match=r"row 0: extra repeats column\(s\) \['model'\]"):
        write_table(clashing, tmp_path / "out.jsonl")
    assert list(tmp_path.glob("out.jsonl*")) == []


def test_empty_tables_round_trip(tmp_path, calls):
    empty = calls.slice(0, 0)
    for suffix in (".jsonl", ".jsonl.gz", ".parquet"):
        back = read_calls(write_table(empty, tmp_path / f"empty{suffix}"))
        assert back.ok and back.table.equals(empty)


def test_large_tables_are_written_in_slices(tmp_path, calls, monkeypatch):
    import distillwatch.ingest.writers as writers

    many = pa.concat_tables([calls] * 40)
    whole = write_table(many, tmp_path / "whole.jsonl").read_bytes()
    monkeypatch.setattr(writers, "_ROWS_PER_SLICE", 7)  # slices cut across extra rows
    sliced = write_table(many, tmp_path / "sliced.jsonl")
    assert sliced.read_bytes() == whole
    assert read_calls(sliced).table.equals(many)


def test_accounts_csv_round_trip(tmp_path):
    source = tmp_path / "accounts.jsonl"
    source.write_text(
        '{"account_id":"a1","created_at":"2024-01-02T03:04:05Z","verified":true,'
        '"signup_channel":"education","allowlisted":false,"region":"eu"}\n'
        '{"account_id":"a2","org_id":"o","verified":null}\n'
    )
    accounts = read_accounts(source).table
    back = read_accounts(write_table(accounts, tmp_path / "accounts.csv"))
    assert back.ok, back.errors
    assert back.table.equals(accounts)
