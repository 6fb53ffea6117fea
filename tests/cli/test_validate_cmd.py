"""`distillwatch validate`: counts, error lines and exit codes."""

from __future__ import annotations

import orjson
from typer.testing import CliRunner

from distillwatch.cli.main import app

runner = CliRunner()

GOOD = {
    "ts": "2025-03-01T12:00:00Z",
    "account_id": "a",
    "model": "m",
    "request": {"messages": [{"role": "user", "content": "hi"}]},
}


def _write(path, *lines):
    path.write_bytes(
        b"".join((orjson.dumps(x) if isinstance(x, dict) else x) + b"\n" for x in lines)
    )
    return path


def test_clean_file_exits_zero(tmp_path):
    path = _write(tmp_path / "calls.jsonl", GOOD, GOOD)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "calls.jsonl" in result.output
    assert "field" not in result.output


def test_bad_records_exit_one_and_are_listed(tmp_path):
    path = _write(tmp_path / "calls.jsonl", GOOD, b"{nope", {**GOOD, "endpoint": "grpc"}, GOOD)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    assert f"{path}:2: field <record>: invalid JSON" in result.output
    assert f"{path}:3: field endpoint: 'grpc' is not one of" in result.output


def test_max_errors_limits_the_listing_not_the_count(tmp_path):
    path = _write(tmp_path / "calls.jsonl", *([b"[]"] * 5), GOOD)
    result = runner.invoke(app, ["validate", str(path), "--max-errors", "2"])
    assert result.exit_code == 1
    assert result.output.count("field <record>") == 2
    assert "and 3 more bad record(s)" in result.output


def test_directory_and_kind(tmp_path):
    folder = tmp_path / "accounts"
    folder.mkdir()
    (folder / "a.csv").write_text("account_id,verified\na1,true\na2,maybe\n")
    _write(folder / "b.jsonl", {"account_id": "b1"})
    result = runner.invoke(app, ["validate", str(folder), "--kind", "accounts"])
    assert result.exit_code == 1, result.output
    assert f"{folder / 'a.csv'}:3: field verified: expected true/false/1/0" in result.output
    assert "total" in result.output


def test_unusable_path_exits_two(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "absent.jsonl")])
    assert result.exit_code == 2
    assert "no such file or directory" in result.output


def test_folder_without_matching_files_exits_two(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing to read")
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 2
    assert "no calls files" in result.output
