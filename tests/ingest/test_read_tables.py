"""read_accounts / read_models / read_labels: JSONL, CSV and Parquet, with the same error rules."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillwatch.core.schema import ACCOUNT_SCHEMA, LABEL_SCHEMA, MODEL_SCHEMA
from distillwatch.ingest import read_accounts, read_labels, read_models, write_table

ACCOUNTS_CSV = """account_id,org_id,created_at,signup_channel,verified,allowlisted,region
a1,o1,2024-01-02T03:04:05Z,self_serve,true,false,eu
a2,,2024-01-02T04:00:00+01:00,,1,0,
a3,o3,,education,TRUE,False,us
a4,o4,,enterprise,yes,false,us
a5,o5,,moon_base,false,false,us
,o6,,,false,false,us
a7,o7,last week,,,,
a8,o8,,reseller,,,
"""


def test_accounts_csv_with_booleans_times_and_errors(tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text(ACCOUNTS_CSV)
    result = read_accounts(path)
    assert result.table.schema.equals(ACCOUNT_SCHEMA, check_metadata=True)
    assert [(e.line, e.field) for e in result.errors] == [
        (5, "verified"),
        (6, "signup_channel"),
        (7, "account_id"),
        (8, "created_at"),
    ]
    assert "expected true/false/1/0" in result.errors[0].message
    rows = result.table.to_pylist()
    assert [r["account_id"] for r in rows] == ["a1", "a2", "a3", "a8"]
    assert [(r["verified"], r["allowlisted"]) for r in rows] == [
        (True, False),
        (True, False),
        (True, False),
        (None, None),
    ]
    assert rows[1]["created_at"] == datetime(2024, 1, 2, 3, 0, tzinfo=UTC)
    assert rows[1]["org_id"] is None and rows[1]["signup_channel"] is None
    assert [r["extra"] for r in rows] == ['{"region":"eu"}', None, '{"region":"us"}', None]


def test_csv_row_with_too_many_cells(tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text("account_id,org_id\na1,o1\na2,o2,surplus\na3,o3\n")
    result = read_accounts(path)
    assert [(e.line, e.field) for e in result.errors] == [(3, "<record>")]
    assert result.n_good == 2


def test_accounts_jsonl_and_parquet_agree(tmp_path):
    records = [
        {"account_id": "a1", "created_at": "2024-01-02T03:04:05Z", "verified": True, "tier": 3},
        {"account_id": "a2", "signup_channel": "startup_program", "allowlisted": None},
    ]
    path = tmp_path / "accounts.jsonl.zst"
    write_table(read_accounts(_jsonl(tmp_path / "a.jsonl", records)).table, path)
    from_jsonl = read_accounts(path)
    from_parquet = read_accounts(write_table(from_jsonl.table, tmp_path / "a.parquet"))
    assert from_jsonl.ok and from_parquet.ok
    assert from_parquet.table.equals(from_jsonl.table)
    assert from_jsonl.table.column("extra").to_pylist() == ['{"tier":3}', None]


def test_models_require_a_release_time(tmp_path):
    path = _jsonl(
        tmp_path / "models.jsonl",
        [
            {"model": "frontier-1", "released_at": "2025-01-15T00:00:00Z"},
            {"model": "frontier-2"},
            {"model": "", "released_at": "2025-06-01T00:00:00Z"},
            {"model": "frontier-3", "released_at": 1_750_000_000, "notes": "dropped"},
        ],
    )
    result = read_models(path)
    assert result.table.schema.equals(MODEL_SCHEMA, check_metadata=True)
    assert [(e.line, e.field) for e in result.errors] == [(2, "released_at"), (3, "model")]
    assert result.table.column("model").to_pylist() == ["frontier-1", "frontier-3"]


def test_models_csv(tmp_path):
    path = tmp_path / "models.csv"
    path.write_text("model,released_at\nfrontier-1,2025-01-15T00:00:00Z\nfrontier-2,\n")
    result = read_models(path)
    assert [(e.line, e.field) for e in result.errors] == [(3, "released_at")]
    assert result.table.column("released_at").to_pylist() == [datetime(2025, 1, 15, tzinfo=UTC)]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_labels_must_be_known(tmp_path, suffix):
    rows = [
        {
            "account_id": "a1",
            "label": "distill",
            "persona": "cot_harvester",
            "campaign_id": "c1",
            "mundane_share": 0.1,
        },
        {
            "account_id": "a2",
            "label": "legit",
            "persona": "student",
            "campaign_id": None,
            "mundane_share": 1,
        },
        {
            "account_id": "a3",
            "label": "suspicious",
            "persona": "student",
            "campaign_id": None,
            "mundane_share": None,
        },
        {
            "account_id": "a4",
            "label": "legit",
            "persona": None,
            "campaign_id": None,
            "mundane_share": None,
        },
    ]
    if suffix == ".jsonl":
        path = _jsonl(tmp_path / "labels.jsonl", rows)
    elif suffix == ".csv":
        path = tmp_path / "labels.csv"
        lines = ["account_id,label,persona,campaign_id,mundane_share"] + [
            ",".join("" if r[k] is None else str(r[k]) for k in r) for r in rows
        ]
        path.write_text("\n".join(lines) + "\n")
    else:
        path = tmp_path / "labels.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
    result = read_labels(path)
    assert result.table.schema.equals(LABEL_SCHEMA, check_metadata=True)
    first_line = 2 if suffix == ".csv" else 1
    assert [(e.line - first_line, e.field) for e in result.errors] == [(2, "label"), (3, "persona")]
    assert result.table.column("mundane_share").to_pylist() == [0.1, 1.0]


def _jsonl(path, records):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path
