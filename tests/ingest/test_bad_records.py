"""Malformed input: every bad record is skipped, counted and located; good ones are kept."""

from __future__ import annotations

import gzip

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillwatch.core.errors import RecordError
from distillwatch.core.schema import CALL_SCHEMA
from distillwatch.ingest import read_calls, write_table


def _without(record, *path):
    *parents, last = path
    target = record
    for key in parents:
        target = target[key]
    del target[last]
    return record


def _with(record, value, *path):
    *parents, last = path
    target = record
    for key in parents:
        target = target[key]
    target[last] = value
    return record


# (how to break a record, field reported, words in the message)
CASES = [
    (lambda r: b'{"ts": "2025-03-01T12:00:00Z", "account_id":', "<record>", "invalid JSON"),
    (lambda r: b"[1, 2, 3]", "<record>", "expected a JSON object"),
    (lambda r: _without(r, "ts"), "ts", "missing required field"),
    (lambda r: _with(r, None, "ts"), "ts", "missing required field"),
    (lambda r: _with(r, "yesterday", "ts"), "ts", "not an RFC 3339 timestamp"),
    (lambda r: _with(r, "2025-03-01T12:00:00", "ts"), "ts", "no UTC offset"),
    (lambda r: _with(r, "2025-13-01T12:00:00Z", "ts"), "ts", "not an RFC 3339 timestamp"),
    (lambda r: _with(r, True, "ts"), "ts", "expected an RFC 3339 string or epoch number"),
    (lambda r: _without(r, "account_id"), "account_id", "missing required field"),
    (lambda r: _with(r, "", "account_id"), "account_id", "must not be empty"),
    (lambda r: _with(r, 7, "model"), "model", "expected a string, got integer"),
    (lambda r: _without(r, "request"), "request", "missing required field"),
    (lambda r: _without(r, "request", "messages"), "request.messages", "missing required"),
    (lambda r: _with(r, "hi", "request", "messages"), "request.messages", "expected an array"),
    (
        lambda r: _with(r, "512", "request", "max_tokens"),
        "request.max_tokens",
        "expected an integer, got string",
    ),
    (
        lambda r: _with(r, 1.5, "request", "max_tokens"),
        "request.max_tokens",
        "expected an integer, got number",
    ),
    (lambda r: _with(r, True, "request", "max_tokens"), "request.max_tokens", "got boolean"),
    (lambda r: _with(r, 2**63, "request", "seed"), "request.seed", "out of int64 range"),
    (lambda r: _with(r, 1, "request", "stream"), "request.stream", "expected a boolean"),
    (
        lambda r: _with(r, "hot", "request", "temperature"),
        "request.temperature",
        "expected a number",
    ),
    (lambda r: _with(r, "embeddings", "endpoint"), "endpoint", "is not one of chat.completions"),
    (
        lambda r: _with(r, 42, "request", "messages", 1, "content"),
        "request.messages[1].content",
        "expected a string or a list of parts",
    ),
    (
        lambda r: _with(r, [{"text": "no type"}], "request", "messages", 0, "content"),
        "request.messages[0].content[0].type",
        "part type",
    ),
    (
        lambda r: _with(r, ["ok", 3], "request", "messages", 0, "content"),
        "request.messages[0].content[1]",
        "content part object",
    ),
    (
        lambda r: _without(r, "request", "messages", 1, "role"),
        "request.messages[1].role",
        "missing required field",
    ),
    (lambda r: _with(r, None, "request", "messages", 0), "request.messages[0]", "null item"),
    (
        lambda r: _with(r, "x", "request", "messages", 0),
        "request.messages[0]",
        "expected an object",
    ),
    (
        lambda r: _with(r, {"type": "function"}, "request", "tools"),
        "request.tools",
        "expected an array",
    ),
    (lambda r: _with(r, "AS-one", "client", "asn"), "client.asn", "not an AS number"),
    (lambda r: _with(r, [], "client"), "client", "expected an object, got array"),
    (lambda r: _with(r, "200", "response", "status"), "response.status", "expected an integer"),
    (
        lambda r: _with(r, {"input_tokens": -1.5}, "response", "usage"),
        "response.usage.input_tokens",
        "expected an integer",
    ),
]


@pytest.mark.parametrize(("breaker", "field", "words"), CASES)
@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_bad_line_is_reported_and_neighbours_kept(
    tmp_path, make_call, jsonl, breaker, field, words, suffix
):
    lines = [make_call(0), make_call(1), breaker(make_call(2)), make_call(3)]
    path = jsonl(tmp_path / f"calls{suffix}", lines)
    result = read_calls(path)
    assert (result.n_good, result.n_bad) == (3, 1)
    assert result.table.column("account_id").to_pylist() == ["acct_0", "acct_1", "acct_3"]
    (error,) = result.errors
    assert (error.file, error.line, error.field) == (str(path), 3, field)
    assert words in error.message


def test_line_numbers_count_blank_lines_and_every_bad_line(tmp_path, make_call, jsonl):
    lines = [
        make_call(0),
        b"",
        b"{oops",
        make_call(1),
        b"   ",
        make_call(2, ts="never"),
        make_call(3),
    ]
    result = read_calls(jsonl(tmp_path / "c.jsonl", lines))
    assert [(e.line, e.field) for e in result.errors] == [(3, "<record>"), (6, "ts")]
    assert result.n_good == 3


def test_errors_are_capped_but_all_counted_and_all_reported(tmp_path, make_call, jsonl):
    lines = [make_call(i) if i % 2 else b"nope" for i in range(50)]
    seen: list[RecordError] = []
    result = read_calls(jsonl(tmp_path / "c.jsonl", lines), max_errors=10, on_error=seen.append)
    assert result.n_bad == 25 and len(result.errors) == 10 and len(seen) == 25
    assert [e.line for e in result.errors] == list(range(1, 20, 2))
    assert result.n_good == 25


def test_errors_in_later_blocks_keep_file_line_numbers(tmp_path, make_call, monkeypatch):
    # Small blocks make the reader cross many block boundaries.
    import distillwatch.ingest.sources as sources

    monkeypatch.setattr(sources, "_BLOCK_BYTES", 3000)
    lines = [orjson.dumps(make_call(i)) for i in range(40)]
    lines[33] = b"{broken"
    path = tmp_path / "many.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = read_calls(path)
    assert [(e.line, e.field) for e in result.errors] == [(34, "<record>")]
    assert result.n_good == 39


def test_bad_record_in_second_file_names_that_file(tmp_path, make_call, jsonl):
    good = jsonl(tmp_path / "a.jsonl", [make_call(0)])
    bad = jsonl(tmp_path / "b.jsonl", [make_call(1), make_call(2, endpoint="grpc")])
    result = read_calls([good, bad])
    assert [str(e) for e in result.errors] == [
        f"{bad}:2: field endpoint: 'grpc' is not one of chat.completions, responses, messages, completions"
    ]


def test_unreadable_file_is_one_error_and_the_read_goes_on(tmp_path, make_call, jsonl):
    broken = tmp_path / "a.jsonl.gz"
    whole = gzip.compress(b"\n".join(orjson.dumps(make_call(i)) for i in range(100)) + b"\n")
    broken.write_bytes(whole[: len(whole) // 2])
    fine = jsonl(tmp_path / "b.jsonl", [make_call(7)])
    result = read_calls([broken, fine])
    assert result.n_bad == 1
    (error,) = result.errors
    assert (error.file, error.line, error.field) == (str(broken), 0, "<file>")
    assert "acct_7" in result.table.column("account_id").to_pylist()


def test_parquet_rows_with_null_required_fields_are_reported_by_row(tmp_path, make_call, jsonl):
    table = read_calls(jsonl(tmp_path / "c.jsonl", [make_call(i) for i in range(4)])).table
    account = table.column("account_id").to_pylist()
    account[1] = None
    endpoint = table.column("endpoint").to_pylist()
    endpoint[3] = "grpc"
    request = table.column("request").to_pylist()
    request[2]["messages"][1]["role"] = None
    loose = pa.table(
        {
            **{name: table.column(name) for name in table.column_names},
            "account_id": pa.array(account, pa.string()),
            "endpoint": pa.array(endpoint, pa.string()),
            "request": pa.array(request, table.schema.field("request").type),
        }
    )
    pq.write_table(loose, tmp_path / "loose.parquet")
    result = read_calls(tmp_path / "loose.parquet")
    assert [(e.line, e.field) for e in result.errors] == [
        (2, "account_id"),
        (3, "request.messages[1].role"),
        (4, "endpoint"),
    ]
    assert result.table.column("account_id").to_pylist() == ["acct_0"]


def test_parquet_rows_that_need_the_record_path_report_their_row(tmp_path):
    table = pa.table(
        {
            "ts": ["2025-03-01T12:00:00Z", "soon", "2025-03-01T12:00:02Z"],
            "account_id": ["a", "b", "c"],
            "model": ["m", "m", "m"],
            "request": [{"messages": []}] * 3,
        }
    )
    pq.write_table(table, tmp_path / "text_ts.parquet")
    result = read_calls(tmp_path / "text_ts.parquet")
    assert [(e.line, e.field) for e in result.errors] == [(2, "ts")]
    assert result.table.column("account_id").to_pylist() == ["a", "c"]


def test_round_trip_keeps_good_rows_of_a_file_with_bad_ones(tmp_path, make_call, jsonl):
    result = read_calls(jsonl(tmp_path / "c.jsonl", [make_call(0), b"{", make_call(1)]))
    written = write_table(result.table, tmp_path / "clean.jsonl")
    again = read_calls(written)
    assert again.ok and again.table.equals(result.table)


def test_a_file_with_no_good_record_gives_an_empty_table_and_every_error(tmp_path, jsonl):
    path = jsonl(tmp_path / "bad.jsonl", [{"bad": 1}, "not json"])
    result = read_calls(path)
    assert result.n_good == 0 and result.n_bad == 2 and result.table.num_rows == 0
    assert result.table.schema.equals(CALL_SCHEMA)
    assert [(e.line, e.field) for e in result.errors] == [(1, "ts"), (2, "<record>")]
