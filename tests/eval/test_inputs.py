"""Reading truth and verdict files: formats, normalisation, and errors that name what is wrong."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from distillwatch.core.errors import DistillwatchError
from distillwatch.eval import parse_fprs, read_table, read_truth, read_verdicts


def test_csv_keeps_ids_as_text_and_parses_scores(tmp_path: Path) -> None:
    path = tmp_path / "verdicts.csv"
    path.write_text("account_id,score,tier,cluster_id\n007,0.5, Block ,12\n010,,allow,\n")
    v = read_verdicts(path)
    assert v["account_id"].to_list() == ["007", "010"]
    assert v["score"].to_list() == [0.5, None]
    assert v["tier"].to_list() == ["block", "allow"]
    assert v["cluster_id"].to_list() == ["12", None]


def test_parquet_ids_and_clusters_of_any_type_become_text(tmp_path: Path) -> None:
    path = tmp_path / "verdicts.parquet"
    pl.DataFrame({"account_id": [1, 2], "score": [1, 0], "cluster_id": [5, None]}).write_parquet(
        path
    )
    v = read_verdicts(path)
    assert v.schema == pl.Schema(
        {"account_id": pl.String, "score": pl.Float64, "cluster_id": pl.String}
    )


def test_truth_without_campaign_column_gets_nulls(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("account_id,label,persona\na,legit,casual_chat\nb,distill,cot_coercion\n")
    t = read_truth(path)
    assert t["campaign_id"].to_list() == [None, None]


@pytest.mark.parametrize(
    ("reader", "text", "message"),
    [
        (read_verdicts, "account_id,risk\na,1\n", "missing column score (has: account_id, risk)"),
        (read_verdicts, "id,risk\na,1\n", "missing columns account_id, score"),
        (read_truth, "account_id,persona\na,p\n", "missing column label"),
        (read_truth, "account_id,label,persona\na,bad,p\n", "label must be one of legit, distill"),
        (read_truth, "account_id,label,persona\na,legit,p\na,legit,p\n", "must be unique"),
        (
            read_verdicts,
            "account_id,score\na,high\n",
            "score must be numeric; 1 value(s) are not, e.g. 'high'",
        ),
        (read_verdicts, "account_id,score\n,1\n", "account_id has 1 null"),
    ],
)
def test_bad_input_names_the_file_and_the_problem(
    tmp_path: Path, reader: object, text: str, message: str
) -> None:
    path = tmp_path / "input.csv"
    path.write_text(text)
    with pytest.raises(DistillwatchError) as err:
        reader(path)  # type: ignore[operator]
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DistillwatchError, match=r"expected \.parquet or \.csv"):
        read_table(tmp_path / "x.json")
    with pytest.raises(DistillwatchError, match="no such file"):
        read_table(tmp_path / "nope.parquet")


def test_parse_fprs() -> None:
    assert parse_fprs("0.001,0.01") == (0.001, 0.01)
    assert parse_fprs("0.1%, 1 %, 0.05") == (0.001, 0.01, 0.05)
    for bad in ("", "0", "1", "150%", "abc", "1/0"):
        with pytest.raises(DistillwatchError, match="--fpr"):
            parse_fprs(bad)
