"""The learned account detector: gradient-boosted trees over account features, calibrated.

Follows the scikit-learn estimator contract: hyper-parameters are constructor arguments kept
verbatim, learned state ends in ``_``, ``fit`` returns self and ``score`` is pure. LightGBM's
``pred_contrib`` gives each feature's additive contribution to the log-odds, which is what the
evidence items carry as their weight.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.isotonic import IsotonicRegression

from distillwatch.core.errors import DistillwatchError

FORMAT = "distillwatch.detector.gbm/1"


def _matrix(X: pl.DataFrame, names: list[str]) -> np.ndarray:
    missing = [n for n in names if n not in X.columns]
    if missing:
        raise DistillwatchError(f"feature table lacks columns the detector needs: {missing}")
    return X.select([pl.col(n).cast(pl.Float64) for n in names]).to_numpy()


@dataclass
class GradientBoostedDetector:
    """Binary classifier (distill = 1) with isotonic calibration of its margin."""

    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 20
    feature_fraction: float = 0.8
    seed: int = 0
    feature_names_: list[str] = field(default_factory=list)
    booster_: lgb.Booster | None = None
    calibration_: tuple[list[float], list[float]] | None = None
    meta_: dict[str, Any] = field(default_factory=dict)

    def fit(
        self,
        X: pl.DataFrame,
        y: np.ndarray,
        X_cal: pl.DataFrame | None = None,
        y_cal: np.ndarray | None = None,
    ) -> GradientBoostedDetector:
        """Fit the trees on (X, y) and the calibration on (X_cal, y_cal) — a separate split."""
        self.feature_names_ = [
            c for c in X.columns if X[c].dtype.is_numeric() or X[c].dtype == pl.Boolean
        ]
        params = {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "seed": self.seed,
            "deterministic": True,
            "num_threads": 2,
            "verbose": -1,
        }
        # LightGBM refuses some characters in names (``rule:intent/...``): it sees positions
        names = [f"f{i}" for i in range(len(self.feature_names_))]
        data = lgb.Dataset(_matrix(X, self.feature_names_), label=y, feature_name=names)
        self.booster_ = lgb.train(params, data, num_boost_round=self.n_estimators)
        if X_cal is not None and y_cal is not None:
            margin = self.margin(X_cal)
            iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4)
            iso.fit(margin, y_cal)
            self.calibration_ = (
                [float(x) for x in iso.X_thresholds_],
                [float(v) for v in iso.y_thresholds_],
            )
        return self

    def _booster(self) -> lgb.Booster:
        if self.booster_ is None:
            raise DistillwatchError("detector is not fitted")
        return self.booster_

    def margin(self, X: pl.DataFrame) -> np.ndarray:
        """Raw log-odds."""
        raw = self._booster().predict(_matrix(X, self.feature_names_), raw_score=True)
        return np.asarray(raw, dtype=np.float64)

    def score(self, X: pl.DataFrame) -> np.ndarray:
        """Calibrated probability that each account is distilling."""
        m = self.margin(X)
        if self.calibration_ is None:
            p: np.ndarray = 1.0 / (1.0 + np.exp(-m))
            return p
        xs, ys = self.calibration_
        cal: np.ndarray = np.interp(m, xs, ys)
        return cal

    def contributions(self, X: pl.DataFrame) -> np.ndarray:
        """Per-feature log-odds contributions (n, n_features); the bias term is dropped."""
        c = self._booster().predict(_matrix(X, self.feature_names_), pred_contrib=True)
        out: np.ndarray = np.asarray(c)[:, :-1]
        return out

    def feature_importance(self) -> dict[str, float]:
        gain = self._booster().feature_importance(importance_type="gain")
        return dict(zip(self.feature_names_, (float(g) for g in gain), strict=True))

    # --- persistence ----------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        doc = {
            "format": FORMAT,
            "params": {
                k: getattr(self, k)
                for k in (
                    "n_estimators",
                    "learning_rate",
                    "num_leaves",
                    "min_child_samples",
                    "feature_fraction",
                    "seed",
                )
            },
            "feature_names": self.feature_names_,
            "calibration": self.calibration_,
            "meta": self.meta_,
            "booster": self._booster().model_to_string(),
        }
        path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> GradientBoostedDetector:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DistillwatchError(f"{path}: cannot read detector: {exc}") from None
        if doc.get("format") != FORMAT:
            raise DistillwatchError(f"{path}: not a {FORMAT} file")
        det = cls(**doc["params"])
        det.feature_names_ = list(doc["feature_names"])
        cal = doc.get("calibration")
        det.calibration_ = (list(cal[0]), list(cal[1])) if cal else None
        det.meta_ = dict(doc.get("meta") or {})
        det.booster_ = lgb.Booster(model_str=doc["booster"])
        return det
