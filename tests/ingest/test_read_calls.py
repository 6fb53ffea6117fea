"""read_calls: every format, the normalisation rules, directories, fast and tolerant paths."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillwatch.core.errors import DistillwatchError
from distillwatch.core.schema import CALL_SCHEMA
from distillwatch.ingest import read_calls, write_table


def _records(make_call, n=5):
    return [make_call(i) for i in range(n)]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_jsonl_formats_read_to_the_canonical_schema(tmp_path, make_call, jsonl, suffix):
    path = jsonl(tmp_path / f"calls{suffix}", _records(make_call))
    result = read_calls(path)
    assert result.ok and result.n_good == 5 and result.n_bad == 0
    assert result.files == (str(path),)
    assert result.table.schema.equals(CALL_SCHEMA, check_metadata=True)
    assert result.table.column("account_id").to_pylist() == [f"acct_{i}" for i in range(5)]
    first = result.table.to_pylist()[0]
    assert first["ts"] == datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert first["request"]["messages"][1] == {"role": "user", "content": "Explain step by step."}
    assert first["response"]["usage"]["output_tokens"] == 3
    assert first["extra"] is None


def test_all_formats_give_the_same_table(tmp_path, make_call, jsonl):
    records = _records(make_call)
    plain = read_calls(jsonl(tmp_path / "a.jsonl", records)).table
    for suffix in (".jsonl.gz", ".jsonl.zst"):
        assert read_calls(jsonl(tmp_path / f"a{suffix}", records)).table.equals(plain)
    parquet = write_table(plain, tmp_path / "a.parquet")
    assert read_calls(parquet).table.equals(plain)


def test_tolerant_path_gives_the_same_rows_as_the_fast_path(tmp_path, make_call, jsonl):
    records = _records(make_call, 20)
    fast = read_calls(jsonl(tmp_path / "fast.jsonl", records))
    # One bad line sends the whole block down the per-record path.
    slow = read_calls(jsonl(tmp_path / "slow.jsonl", [*records, b"{not json"]))
    assert slow.n_bad == 1
    assert slow.table.equals(fast.table)


def test_content_parts_become_one_string(tmp_path, make_call, jsonl):
    record = make_call()
    record["request"]["messages"] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in"},
                {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}},
                {"type": "input_text", "text": "this picture?"},
                {"type": "input_audio", "input_audio": {}},
            ],
        },
        {"role": "assistant", "content": None},
    ]
    record["request"]["system"] = [{"type": "text", "text": "Be brief."}]
    result = read_calls(jsonl(tmp_path / "c.jsonl", [record]))
    request = result.table.column("request").to_pylist()[0]
    assert request["messages"][0]["content"] == (
        "What is in\n[image_url]\nthis picture?\n[input_audio]"
    )
    assert request["messages"][1]["content"] is None
    assert request["system"] == "Be brief."


def test_tools_become_json_text_and_asn_strings_numbers(tmp_path, make_call, jsonl):
    record = make_call()
    record["request"]["tools"] = [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
        '{"type":"function","function":{"name":"already_text"}}',
    ]
    record["client"]["asn"] = "AS13335"
    row = read_calls(jsonl(tmp_path / "t.jsonl", [record])).table.to_pylist()[0]
    assert row["request"]["tools"] == [
        '{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}',
        '{"type":"function","function":{"name":"already_text"}}',
    ]
    assert row["client"]["asn"] == 13335


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2025-03-01T13:00:00+01:00", datetime(2025, 3, 1, 12, 0, tzinfo=UTC)),
        ("2025-03-01T12:00:00.123456789Z", datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        (1_740_830_400, datetime(2025, 3, 1, 12, 0, tzinfo=UTC)),
        (1_740_830_400_500, datetime(2025, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        (1_740_830_400.25, datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_timestamps_normalise_to_utc_microseconds(tmp_path, make_call, jsonl, ts, expected):
    result = read_calls(jsonl(tmp_path / "ts.jsonl", [make_call(ts=ts)]))
    assert result.ok, result.errors
    assert result.table.column("ts").to_pylist() == [expected]


def test_missing_optional_fields_are_null(tmp_path, jsonl):
    minimal = {
        "ts": "2025-03-01T12:00:00Z",
        "account_id": "a",
        "model": "m",
        "request": {"messages": []},
    }
    row = read_calls(jsonl(tmp_path / "m.jsonl", [minimal])).table.to_pylist()[0]
    assert row["client"] is None and row["response"] is None and row["endpoint"] is None
    assert row["request"]["messages"] == [] and row["request"]["temperature"] is None


def test_unknown_fields_top_level_kept_nested_dropped(tmp_path, make_call, jsonl):
    record = make_call(trace_id="9f2c", region={"name": "eu", "zone": 2})
    record["request"]["messages"][1]["name"] = "dropped"
    record["client"]["unknown_nested"] = True
    row = read_calls(jsonl(tmp_path / "x.jsonl", [record, make_call(1)])).table.to_pylist()
    assert orjson.loads(row[0]["extra"]) == {
        "trace_id": "9f2c",
        "region": {"name": "eu", "zone": 2},
    }
    assert row[0]["request"]["messages"][1] == {"role": "user", "content": "Explain step by step."}
    assert row[1]["extra"] is None


def test_unknown_fields_agree_between_fast_and_tolerant_path(tmp_path, make_call, jsonl):
    records = [make_call(0, trace_id="a"), make_call(1), make_call(2, trace_id="c", n=3)]
    fast = read_calls(jsonl(tmp_path / "fast.jsonl", records))
    slow = read_calls(jsonl(tmp_path / "slow.jsonl", [*records, "[]"]))
    assert slow.n_bad == 1
    assert fast.table.equals(slow.table)
    assert fast.table.column("extra").to_pylist() == [
        '{"trace_id":"a"}',
        None,
        '{"trace_id":"c","n":3}',
    ]


def test_a_key_named_extra_is_an_unknown_field(tmp_path, make_call, jsonl):
    row = read_calls(jsonl(tmp_path / "e.jsonl", [make_call(extra={"k": 1})])).table
    assert row.column("extra").to_pylist() == ['{"extra":{"k":1}}']


def test_directory_reads_matching_files_in_name_order(tmp_path, make_call, jsonl):
    shards = tmp_path / "calls"
    shards.mkdir()
    jsonl(shards / "b.jsonl.gz", [make_call(2), make_call(3)])
    jsonl(shards / "a.jsonl", [make_call(0), make_call(1)])
    write_table(read_calls(jsonl(tmp_path / "c.jsonl", [make_call(4)])).table, shards / "c.parquet")
    (shards / "notes.txt").write_text("not a log")
    (shards / "accounts.csv").write_text("account_id\nacct_0\n")
    (shards / "nested").mkdir()
    jsonl(shards / "nested" / "d.jsonl", [make_call(9)])
    result = read_calls(shards)
    assert [Path(f).name for f in result.files] == ["a.jsonl", "b.jsonl.gz", "c.parquet"]
    assert result.table.column("account_id").to_pylist() == [f"acct_{i}" for i in range(5)]


def test_several_paths_are_read_in_the_order_given(tmp_path, make_call, jsonl):
    second = jsonl(tmp_path / "2.jsonl", [make_call(2)])
    first = jsonl(tmp_path / "1.jsonl", [make_call(1)])
    result = read_calls([second, first])
    assert result.table.column("account_id").to_pylist() == ["acct_2", "acct_1"]


def test_progress_counts_every_line(tmp_path, make_call, jsonl):
    seen: list[int] = []
    path = jsonl(tmp_path / "p.jsonl", [*_records(make_call, 7), b"bad"])
    read_calls(path, progress=seen.append)
    assert sum(seen) == 8


def test_parquet_with_other_types_and_missing_columns(tmp_path):
    table = pa.table(
        {
            "ts": pa.array([1_740_830_400_000_001_999], pa.timestamp("ns")),  # naive, ns
            "account_id": pa.array(["a"], pa.large_string()),
            "model": pa.array(["m"]).dictionary_encode(),
            "request": pa.array(
                [{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}],
                pa.struct(
                    [
                        ("max_tokens", pa.int32()),
                        (
                            "messages",
                            pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
                        ),
                    ]
                ),
            ),
            "trace_id": ["t1"],
        }
    )
    pq.write_table(table, tmp_path / "other.parquet")
    result = read_calls(tmp_path / "other.parquet")
    assert result.ok, result.errors
    assert result.table.schema.equals(CALL_SCHEMA, check_metadata=True)
    row = result.table.to_pylist()[0]
    assert row["ts"] == datetime(2025, 3, 1, 12, 0, 0, 1, tzinfo=UTC)
    assert row["request"]["max_tokens"] == 5 and row["request"]["temperature"] is None
    assert row["client"] is None
    assert row["extra"] == '{"trace_id":"t1"}'


def test_parquet_that_needs_the_record_path(tmp_path):
    # ts as epoch seconds and asn as "AS.." text cannot be cast column-wise.
    table = pa.table(
        {
            "ts": [1_740_830_400, 1_740_830_401],
            "account_id": ["a", "b"],
            "model": ["m", "m"],
            "client": [{"asn": "AS7"}, {"asn": "eight"}],
            "request": [{"messages": []}, {"messages": []}],
        }
    )
    pq.write_table(table, tmp_path / "raw.parquet")
    result = read_calls(tmp_path / "raw.parquet")
    assert result.n_good == 1 and result.n_bad == 1
    assert result.table.column("client").to_pylist()[0]["asn"] == 7
    error = result.errors[0]
    assert (error.line, error.field) == (2, "client.asn")


def test_unsupported_or_missing_paths_are_user_errors(tmp_path):
    (tmp_path / "calls.txt").write_text("{}")
    with pytest.raises(DistillwatchError, match="unsupported file type"):
        read_calls(tmp_path / "calls.txt")
    with pytest.raises(DistillwatchError, match="no such file"):
        read_calls(tmp_path / "absent.jsonl")
    (tmp_path / "accounts.csv").write_text("account_id\n")
    with pytest.raises(DistillwatchError, match="not accepted"):
        read_calls(tmp_path / "accounts.csv")


def test_empty_inputs_give_an_empty_canonical_table(tmp_path, jsonl):
    result = read_calls(jsonl(tmp_path / "empty.jsonl.gz", []))
    assert result.ok and result.n_good == 0
    assert result.table.schema.equals(CALL_SCHEMA, check_metadata=True)
    empty_dir = tmp_path / "none"
    empty_dir.mkdir()
    assert read_calls(empty_dir).files == ()


def test_byte_order_mark_and_crlf_are_tolerated(tmp_path, make_call):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + orjson.dumps(make_call(0))
        + b"\r\n"
        + orjson.dumps(make_call(1))
        + b"\r\n"
    )
    result = read_calls(path)
    assert result.ok, result.errors
    assert result.n_good == 2


def test_gzip_written_elsewhere_with_many_members(tmp_path, make_call):
    path = tmp_path / "multi.jsonl.gz"
    path.write_bytes(
        gzip.compress(orjson.dumps(make_call(0)) + b"\n")
        + gzip.compress(orjson.dumps(make_call(1)) + b"\n")
    )
    assert read_calls(path).n_good == 2


def test_varied_canonical_records_take_the_fast_path_and_match_the_tolerant_one(
    tmp_path, make_call, jsonl
):
    from distillwatch.ingest._specs import CALLS
    from distillwatch.ingest.readers import _fast_jsonl

    records = [make_call(i) for i in range(8)]
    records[0]["client"] = {}
    records[1]["client"] = None
    records[2]["response"] = {"usage": None, "status": 500}
    records[3]["request"]["messages"] = []
    records[4]["request"]["messages"][0]["name"] = "nested unknown, dropped"
    records[5]["ts"] = "2025-03-01T12:00:00.5-07:30"
    records[6].update(endpoint=None, org_id=None, note="ünïcode ✓", flags=[1, 2])
    records[7]["request"] = {"messages": [{"role": "user"}], "temperature": 1}
    path = jsonl(tmp_path / "varied.jsonl", records)
    assert _fast_jsonl(CALLS, path.read_bytes()) is not None
    fast = read_calls(path)
    slow = read_calls(jsonl(tmp_path / "slow.jsonl", [*records, b"{"]))
    assert fast.ok and slow.n_bad == 1
    assert slow.table.equals(fast.table)


def test_a_simulator_folder_reads_each_table_from_its_own_file(tmp_path, make_call, jsonl):
    from distillwatch.ingest import input_files, read_accounts

    calls = read_calls(jsonl(tmp_path / "source.jsonl", [make_call(0)])).table
    out = tmp_path / "sim"
    out.mkdir()
    write_table(calls, out / "calls.parquet")
    (out / "accounts.jsonl").write_text('{"account_id": "acct_0"}\n')
    (out / "labels.csv").write_text("account_id,label,persona\nacct_0,legit,student\n")
    (out / "models.parquet").write_bytes((out / "calls.parquet").read_bytes())
    assert [p.name for p in input_files(out)] == ["calls.parquet"]
    assert [p.name for p in input_files(out, "accounts")] == ["accounts.jsonl"]
    assert [p.name for p in input_files(out, "labels")] == ["labels.csv"]
    assert read_calls(out).table.equals(calls)
    assert read_accounts(out).n_good == 1
    # A file named explicitly is read whatever its name.
    assert read_calls(out / "models.parquet").table.equals(calls)


def test_transform_maps_each_batch_and_counts_records_read(tmp_path, make_call, jsonl):
    records = _records(make_call, 6)
    path = jsonl(tmp_path / "calls.jsonl", [*records[:3], b"{not json", *records[3:]])
    seen = []

    def keep_even(batch: pa.Table) -> pa.Table:
        seen.append(batch.num_rows)
        ids = batch.column("account_id").to_pylist()
        keep = [int(a.split("_")[1]) % 2 == 0 for a in ids]
        return batch.select(["account_id"]).filter(pa.array(keep))

    result = read_calls(path, transform=keep_even)
    assert sum(seen) == 6  # the transform saw every good record, in batches
    assert result.n_good == 6 and result.n_bad == 1  # counts are of records read
    assert result.table.column_names == ["account_id"]
    assert sorted(result.table.column("account_id").to_pylist()) == ["acct_0", "acct_2", "acct_4"]


def test_transform_of_no_records_still_gives_its_columns(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    result = read_calls(path, transform=lambda t: t.select(["ts", "account_id"]))
    assert result.table.column_names == ["ts", "account_id"] and result.n_good == 0


def test_parquet_skip_leaves_named_fields_undecoded_and_the_rest_as_is(tmp_path, make_call, jsonl):
    table = read_calls(jsonl(tmp_path / "a.jsonl", _records(make_call))).table
    path = tmp_path / "calls.parquet"
    write_table(table, path)
    skip = {"response.output_text", "extra", "client"}
    got = read_calls(path, skip=skip).table
    assert got.schema.equals(CALL_SCHEMA, check_metadata=True)
    assert got.column("response").combine_chunks().field("output_text").null_count == 5
    assert table.column("response").combine_chunks().field("output_text").null_count == 0
    assert got.column("client").null_count == 5  # a whole struct skipped
    for name in ("ts", "account_id", "request"):
        assert got.column(name).equals(table.column(name))
    usage = got.column("response").combine_chunks().field("usage")
    assert usage.equals(table.column("response").combine_chunks().field("usage"))
