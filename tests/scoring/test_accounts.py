"""Tiers, allowlist cap, config validation and evidence rendering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from distillwatch.core.errors import DistillwatchError
from distillwatch.core.values import Evidence
from distillwatch.detectors import GradientBoostedDetector
from distillwatch.scoring import ScanConfig, render, score_accounts, tiers


def test_tiers_follow_thresholds_and_allowlist_caps() -> None:
    cfg = ScanConfig(watch=0.5, throttle=0.8, block=0.95)
    score = np.array([0.1, 0.5, 0.85, 0.99, 0.99])
    allow = np.array([False, False, False, False, True])
    assert tiers(score, allow, cfg) == ["allow", "watch", "throttle", "block", "watch"]


def test_config_file_is_validated(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("tiers: {watch: 0.3, throttle: 0.6, block: 0.9}\n")
    assert ScanConfig.load(f).throttle == 0.6
    f.write_text("tiers: {watch: 0.9, throttle: 0.6}\n")
    with pytest.raises(DistillwatchError, match=r"c\.yaml"):
        ScanConfig.load(f)
    f.write_text("tiers: {severe: 0.9}\n")
    with pytest.raises(DistillwatchError, match="severe"):
        ScanConfig.load(f)


def test_every_raised_account_carries_evidence_and_reasons() -> None:
    rng = np.random.default_rng(0)
    n = 400
    y = rng.random(n) < 0.25
    feats = pl.DataFrame(
        {
            "account_id": [f"a{i:03d}" for i in range(n)],
            "high_max_tokens_share": np.where(y, rng.uniform(0.6, 1, n), rng.uniform(0, 0.3, n)),
            "n_calls": rng.integers(1, 500, n).astype(float),
            "allowlisted": np.zeros(n, dtype=bool),
        }
    )
    det = GradientBoostedDetector(n_estimators=40).fit(
        feats.drop("account_id", "allowlisted"), y.astype(int)
    )
    out = score_accounts(feats, det, ScanConfig())
    assert out.columns == ["account_id", "score", "tier", "reasons", "evidence"]
    flagged = out.filter(pl.col("tier") != "allow")
    assert flagged.height > 0
    assert (flagged["evidence"].list.len() > 0).all()
    assert (flagged["reasons"].list.len() > 0).all()
    top = flagged.sort("score", descending=True).row(0, named=True)
    assert top["evidence"][0]["signal"] == "high_max_tokens_share"
    assert top["evidence"][0]["source"] == "feature:harvest-params@1"
    assert "raises the score" in top["reasons"][0]


def test_reason_text_names_value_baseline_weight_and_source() -> None:
    text = render(
        Evidence("rule:intent/cot-elicitation", 0.9, 0.0, 2.5, "rule:intent/cot-elicitation@1")
    )
    assert "0.9" in text and "median 0" in text and "2.50 log-odds" in text
    assert text.endswith("[rule:intent/cot-elicitation@1]")
    assert "lowers" in render(Evidence("n_calls", 3, 10, -0.4, "feature:volume@1"))


def _one_signal(n: int, seed: int) -> tuple[pl.DataFrame, GradientBoostedDetector]:
    """Accounts told apart by one feature, and a detector fitted on them."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    feats = pl.DataFrame(
        {
            "account_id": [f"a{i:03d}" for i in range(n)],
            "high_max_tokens_share": np.where(y, rng.uniform(0.6, 1, n), rng.uniform(0, 0.3, n)),
            "allowlisted": np.zeros(n, dtype=bool),
        }
    )
    det = GradientBoostedDetector(n_estimators=30).fit(
        feats.drop("account_id", "allowlisted"), y.astype(int)
    )
    return feats, det


def test_low_scores_get_no_evidence_unless_asked() -> None:
    n = 300
    feats, det = _one_signal(n, seed=1)
    cfg = ScanConfig(explain_min_score=0.5)
    out = score_accounts(feats, det, cfg)
    low = out.filter(pl.col("score") < 0.5)
    assert low.height > 0 and (low["evidence"].list.len() == 0).all()
    assert (out.filter(pl.col("score") >= 0.5)["evidence"].list.len() > 0).all()
    everything = score_accounts(feats, det, cfg, explain=np.ones(n, dtype=bool))
    assert (everything["evidence"].list.len() > 0).sum() > (out["evidence"].list.len() > 0).sum()
    # the scores themselves never depend on what is explained
    assert everything["score"].equals(out["score"])


def test_an_account_lifted_by_its_cluster_gets_its_own_evidence_after_the_cluster_item() -> None:
    from distillwatch.scoring.clusters import combine_scores
    from distillwatch.scoring.pipeline import ScanPipeline

    feats, det = _one_signal(200, seed=2)
    cfg = ScanConfig(explain_min_score=0.5)
    own = score_accounts(feats, det, cfg)
    quiet = own.filter(pl.col("score") < 0.1)["account_id"][:3].to_list()
    clusters = feats.select(
        "account_id",
        pl.when(pl.col("account_id").is_in(quiet)).then(pl.lit("k")).alias("cluster_id"),
    )
    cver = pl.DataFrame({"cluster_id": ["k"], "score": [0.9]})
    scored = combine_scores(own, clusters, cver, feats, cfg)
    before = {r["account_id"]: r for r in scored.iter_rows(named=True)}
    assert all(len(before[a]["evidence"]) == 1 for a in quiet)  # the cluster item only
    out = ScanPipeline(config=cfg)._explain_lifted(scored, feats, det)
    rows = {r["account_id"]: r for r in out.iter_rows(named=True)}
    median = float(feats["high_max_tokens_share"].median())  # of the whole population
    for a in quiet:
        ev = rows[a]["evidence"]
        assert ev[0]["signal"] == "cluster_score"
        assert len(ev) > 1 and ev[1]["signal"] == "high_max_tokens_share"
        assert ev[1]["baseline"] == pytest.approx(median)
    assert out.height == scored.height
    assert out.select("account_id", "score").equals(scored.select("account_id", "score"))
