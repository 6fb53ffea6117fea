"""`distillwatch train`, `scan` and `demo` end to end on small simulated populations."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from distillwatch.cli.main import app
from distillwatch.ingest import read_calls
from distillwatch.scoring import VERDICT_COLUMNS
from distillwatch.scoring.pipeline import CLUSTER_COLUMNS
from distillwatch.sim import bundled_dir

CORPORA = str(bundled_dir())


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("det") / "det.json"
    args = ["train", "--accounts", "400", "--days", "2", "--seeds", "11,12"]
    args += ["--calibration-seed", "13", "--corpora", CORPORA, "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def cluster_detector(tmp_path_factory: pytest.TempPathFactory, detector: Path) -> Path:
    out = tmp_path_factory.mktemp("cdet") / "cdet.json"
    args = ["train", "--clusters", "--detector", str(detector), "--accounts", "400"]
    args += ["--days", "2", "--seeds", "14,15", "--calibration-seed", "16"]
    args += ["--corpora", CORPORA, "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["meta"]["kind"] == "cluster" and doc["meta"]["train_campaign_clusters"] > 0
    return out


def test_cluster_training_refuses_the_account_detectors_seeds(
    detector: Path, tmp_path: Path
) -> None:
    args = ["train", "--clusters", "--detector", str(detector), "--seeds", "11,14"]
    args += ["--corpora", CORPORA, "--out", str(tmp_path / "x.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "in-sample" in result.output


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    args = ["simulate", "--accounts", "400", "--days", "2", "--seed", "21", "--quiet"]
    args += ["--format", "jsonl", "--corpora", CORPORA, "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_scan_writes_ranked_verdicts_with_evidence_and_a_report(
    detector: Path, cluster_detector: Path, traffic: Path, tmp_path: Path
) -> None:
    args = [
        "scan",
        str(traffic / "calls.jsonl.gz"),
        "--accounts",
        str(traffic / "accounts.parquet"),
    ]
    args += ["--models", str(traffic / "models.parquet"), "--detector", str(detector)]
    args += ["--cluster-detector", str(cluster_detector), "--out", str(tmp_path), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    v = pl.read_parquet(tmp_path / "accounts.parquet")
    assert tuple(v.columns) == VERDICT_COLUMNS
    assert v["score"].is_sorted(descending=True)
    clustered = v.filter(pl.col("cluster_id").is_not_null())
    assert clustered.height > 0
    c = pl.read_parquet(tmp_path / "clusters.parquet")
    assert tuple(c.columns) == CLUSTER_COLUMNS
    assert set(c["cluster_id"]) == set(clustered["cluster_id"])
    assert (c["n_accounts"] >= 3).all() and c["score"].is_sorted(descending=True)
    sizes = dict(clustered.group_by("cluster_id").len().iter_rows())
    assert all(
        sizes[r["cluster_id"]] == r["n_accounts"] == len(r["members"])
        for r in c.iter_rows(named=True)
    )
    assert all("linked by" in r[0] for r in c["reasons"])
    # every member scores at least its cluster
    low = clustered.join(c.select("cluster_id", pl.col("score").alias("cs")), on="cluster_id")
    assert (low["score"] >= low["cs"] - 1e-12).all()
    assert set(v["tier"]) <= {"allow", "watch", "throttle", "block"}
    flagged = v.filter(pl.col("tier") != "allow")
    assert flagged.height > 0 and (flagged["evidence"].list.len() > 0).all()
    csv = pl.read_csv(tmp_path / "accounts.csv")
    assert csv.height == v.height
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") >= 4 and v["account_id"][0] in page and "<h2>Clusters</h2>" in page
    assert pl.read_csv(tmp_path / "clusters.csv").height == c.height
    # the detector separates this unseen seed far better than chance
    labels = pl.read_parquet(traffic / "labels.parquet")
    j = v.join(labels, on="account_id", maintain_order="left")
    top = j.head(j.filter(pl.col("label") == "distill").height)
    assert (top["label"] == "distill").mean() > 0.7


def test_since_until_and_allowlist_cap(detector: Path, traffic: Path, tmp_path: Path) -> None:
    acc = pl.read_parquet(traffic / "accounts.parquet").with_columns(
        pl.lit(True).alias("allowlisted")
    )
    acc.write_parquet(tmp_path / "acc.parquet")
    args = ["scan", str(traffic / "calls.jsonl.gz"), "--accounts", str(tmp_path / "acc.parquet")]
    args += ["--detector", str(detector), "--since", "2026-11-02T12:00:00Z"]
    args += ["--until", "2026-11-03T00:00:00Z", "--out", str(tmp_path / "o"), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    v = pl.read_parquet(tmp_path / "o" / "accounts.parquet")
    assert set(v["tier"]) <= {"allow", "watch"}  # allowlisted accounts are never actioned
    calls = pl.from_arrow(read_calls(traffic / "calls.jsonl.gz").table)
    assert isinstance(calls, pl.DataFrame)
    lo, hi = datetime(2026, 11, 2, 12, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)
    in_window = calls.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
    assert v["n_calls"].sum() == in_window.height


def test_scan_reports_bad_records_and_goes_on(
    detector: Path, traffic: Path, tmp_path: Path
) -> None:
    good = traffic / "calls.jsonl.gz"
    import gzip

    lines = gzip.decompress(good.read_bytes()).splitlines()[:200]
    lines.insert(
        5, b'{"ts": "yesterday", "account_id": "x", "model": "m", "request": {"messages": []}}'
    )
    lines.insert(9, b"{not json")
    (tmp_path / "calls.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = CliRunner().invoke(
        app,
        [
            "scan",
            str(tmp_path / "calls.jsonl"),
            "--detector",
            str(detector),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 malformed record(s) skipped" in result.output
    assert "calls.jsonl:6: field ts" in result.output
    assert pl.read_parquet(tmp_path / "o" / "accounts.parquet")["n_calls"].sum() == 200


def test_missing_detector_is_a_clear_error(traffic: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "scan",
            str(traffic / "calls.jsonl.gz"),
            "--detector",
            str(tmp_path / "none.json"),
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2
    assert "distillwatch train" in result.output


def test_demo_runs_end_to_end(
    detector: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("distillwatch.scoring.pipeline.default_detector_path", lambda: detector)
    result = CliRunner().invoke(
        app, ["demo", "--out", str(tmp_path), "--accounts", "300", "--days", "1"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "scan" / "eval.json").read_text())
    assert metrics["roc_auc"] > 0.8
    assert (tmp_path / "scan" / "report.html").is_file()


def test_no_clusters_leaves_cluster_ids_empty(
    detector: Path, traffic: Path, tmp_path: Path
) -> None:
    args = ["scan", str(traffic / "calls.jsonl.gz"), "--detector", str(detector)]
    args += ["--no-clusters", "--out", str(tmp_path), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    v = pl.read_parquet(tmp_path / "accounts.parquet")
    assert v["cluster_id"].null_count() == v.height
    assert pl.read_parquet(tmp_path / "clusters.parquet").height == 0


def test_previous_scan_keeps_cluster_ids_on_an_overlapping_window(
    detector: Path, cluster_detector: Path, traffic: Path, tmp_path: Path
) -> None:
    base = [
        "scan",
        str(traffic / "calls.jsonl.gz"),
        "--accounts",
        str(traffic / "accounts.parquet"),
    ]
    base += ["--detector", str(detector), "--cluster-detector", str(cluster_detector), "--quiet"]
    runner = CliRunner()
    first = runner.invoke(app, [*base, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    # the next window drops the first 12 hours and keeps the rest
    later = [*base, "--since", "2026-11-02T12:00:00Z"]
    fresh = runner.invoke(app, [*later, "--out", str(tmp_path / "b")])
    carried = runner.invoke(
        app, [*later, "--previous", str(tmp_path / "a"), "--out", str(tmp_path / "c")]
    )
    assert fresh.exit_code == 0 and carried.exit_code == 0, fresh.output + carried.output
    before = pl.read_parquet(tmp_path / "a" / "accounts.parquet").select(
        "account_id", pl.col("cluster_id").alias("prev")
    )

    def kept(folder: str) -> tuple[int, int]:
        """(clusters whose clustered members were mostly in one earlier cluster, of those the
        ones that carry its id)"""
        now = pl.read_parquet(tmp_path / folder / "accounts.parquet").drop_nulls("cluster_id")
        overlap = (
            now.join(before.drop_nulls(), on="account_id")
            .group_by("cluster_id", "prev")
            .len()
            .with_columns((pl.col("len") / pl.col("len").sum().over("cluster_id")).alias("share"))
            .filter(pl.col("share") > 0.5)
        )
        return overlap.height, overlap.filter(pl.col("cluster_id") == pl.col("prev")).height

    n, same = kept("c")
    assert n > 0 and same == n  # every cluster that is mostly an earlier one keeps its id
    assert kept("b")[1] <= same
    # a clusters.parquet works as well as the folder
    again = runner.invoke(
        app,
        [
            *later,
            "--previous",
            str(tmp_path / "a" / "clusters.parquet"),
            "--out",
            str(tmp_path / "d"),
        ],
    )
    assert again.exit_code == 0, again.output
    assert kept("d") == (n, same)
    bad = runner.invoke(
        app, [*later, "--previous", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "e")]
    )
    assert bad.exit_code == 2 and "nope.parquet" in bad.output
