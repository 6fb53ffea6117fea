"""The scan pipeline: call frames -> account features -> detector -> account verdicts.

Training and scanning both build features through :meth:`ScanPipeline.features`, so a detector
always sees the columns it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import polars as pl

from distillwatch.core.errors import DistillwatchError
from distillwatch.detectors.gbm import GradientBoostedDetector
from distillwatch.features.benchmarks import BenchmarkIndex
from distillwatch.features.table import feature_table
from distillwatch.rules import RuleSet, load_rules
from distillwatch.scoring.accounts import ScanConfig, score_accounts

NON_FEATURES = ("account_id", "org_id", "allowlisted", "label")
VERDICT_COLUMNS = (
    "account_id",
    "org_id",
    "score",
    "tier",
    "cluster_id",
    "n_calls",
    "reasons",
    "evidence",
)


def default_detector_path() -> Path:
    return Path(str(resources.files("distillwatch") / "data" / "models" / "account-gbm.json"))


@dataclass
class ScanPipeline:
    """Feature building and scoring, with the detector and config injected."""

    detector: GradientBoostedDetector | None = None
    config: ScanConfig = field(default_factory=ScanConfig)
    rules: RuleSet = field(default_factory=load_rules)
    benchmarks: BenchmarkIndex | None = None  # None: the shipped benchmark index

    def features(
        self,
        calls: pl.LazyFrame,
        accounts: pl.LazyFrame | None = None,
        models: pl.LazyFrame | None = None,
    ) -> pl.DataFrame:
        """One row per account: every feature family, plus ``org_id`` and ``allowlisted``."""
        return feature_table(calls, accounts, models, rules=self.rules, benchmarks=self.benchmarks)

    @staticmethod
    def design(features: pl.DataFrame) -> pl.DataFrame:
        """The numeric columns a detector is fitted on."""
        return features.drop([c for c in NON_FEATURES if c in features.columns])

    def load_detector(self, path: Path | None = None) -> GradientBoostedDetector:
        path = path or default_detector_path()
        if not path.is_file():
            raise DistillwatchError(
                f"no detector at {path}: train one with `distillwatch train --out {path}`"
            )
        self.detector = GradientBoostedDetector.load(path)
        return self.detector

    def scan(
        self,
        calls: pl.LazyFrame,
        accounts: pl.LazyFrame | None = None,
        models: pl.LazyFrame | None = None,
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(verdicts, features): one verdict row per account with calls, best first."""
        detector = self.detector or self.load_detector()
        feats = self.features(calls, accounts, models)
        scored = score_accounts(feats, detector, self.config)
        verdicts = (
            scored.join(feats.select("account_id", "org_id", "n_calls"), on="account_id")
            .with_columns(pl.lit(None, pl.String).alias("cluster_id"))
            .select(VERDICT_COLUMNS)
            .sort(["score", "account_id"], descending=[True, False])
        )
        return verdicts, feats
