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
