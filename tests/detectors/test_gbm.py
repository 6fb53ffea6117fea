"""The gradient-boosted detector: learns, is deterministic, round-trips, explains itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from distillwatch.core.errors import DistillwatchError
from distillwatch.detectors import GradientBoostedDetector


def _data(seed: int, n: int = 600) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.2
    X = pl.DataFrame(
        {
            "signal": np.where(y, rng.normal(2.0, 1.0, n), rng.normal(0.0, 1.0, n)),
            "noise": rng.normal(0, 1, n),
            "rule:intent/x-y": rng.random(n) < 0.5,  # names LightGBM itself would refuse
        }
    )
    return X, y.astype(int)


def test_learns_a_signal_and_ignores_noise() -> None:
    X, y = _data(1)
    Xc, yc = _data(2)
    Xt, yt = _data(3)
    det = GradientBoostedDetector(n_estimators=80).fit(X, y, Xc, yc)
    p = det.score(Xt)
    assert roc_auc_score(yt, p) > 0.85
    assert ((p >= 0) & (p <= 1)).all()
    imp = det.feature_importance()
    assert imp["signal"] > 5 * imp["noise"]


def test_contributions_add_up_to_the_margin_and_favour_the_signal() -> None:
    X, y = _data(4)
    det = GradientBoostedDetector(n_estimators=50).fit(X, y)
    contrib = det.contributions(X)
    assert contrib.shape == (X.height, 3)
    bias = det.margin(X) - contrib.sum(axis=1)
    assert np.allclose(bias, bias[0])  # the rest is one constant: the bias term
    assert np.abs(contrib[:, 0]).mean() > np.abs(contrib[:, 1]).mean()


def test_same_seed_same_model_and_save_load_round_trip(tmp_path: Path) -> None:
    X, y = _data(5)
    Xc, yc = _data(6)
    a = GradientBoostedDetector(n_estimators=40, seed=3).fit(X, y, Xc, yc)
    b = GradientBoostedDetector(n_estimators=40, seed=3).fit(X, y, Xc, yc)
    assert np.array_equal(a.score(X), b.score(X))
    a.save(tmp_path / "d.json")
    c = GradientBoostedDetector.load(tmp_path / "d.json")
    assert np.allclose(a.score(X), c.score(X))
    assert c.feature_names_ == ["signal", "noise", "rule:intent/x-y"]


def test_calibration_is_monotone_in_the_margin() -> None:
    X, y = _data(7)
    Xc, yc = _data(8)
    det = GradientBoostedDetector(n_estimators=40).fit(X, y, Xc, yc)
    order = np.argsort(det.margin(X))
    assert (np.diff(det.score(X)[order]) >= -1e-12).all()


def test_missing_feature_and_bad_file_are_clear_errors(tmp_path: Path) -> None:
    X, y = _data(9)
    det = GradientBoostedDetector(n_estimators=10).fit(X, y)
    with pytest.raises(DistillwatchError, match="noise"):
        det.score(X.drop("noise"))
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(DistillwatchError, match=r"bad\.json"):
        GradientBoostedDetector.load(tmp_path / "bad.json")
