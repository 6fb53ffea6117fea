"""Reproducible training of the account detector on simulated traffic.

Trees are fitted on some simulator seeds (and scenarios), the calibration on another seed;
results are reported on seeds used for neither (``distillwatch eval``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from distillwatch.detectors.gbm import GradientBoostedDetector
from distillwatch.scoring.pipeline import ScanPipeline
from distillwatch.sim import Corpora, Simulator, load_scenario, shipped_fit

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TrainSpec:
    """What to simulate for training; every field is recorded in the saved detector."""

    seeds: tuple[int, ...] = (101, 102)
    calibration_seed: int = 103
    accounts: int = 4000
    days: int = 7
    scenarios: tuple[str | None, ...] = (None,)  # None: the default scenario


def simulated_population(
    corpora: Corpora, seed: int, accounts: int, days: int, scenario: str | None = None
) -> tuple[pl.LazyFrame, pl.LazyFrame, pl.LazyFrame, pl.DataFrame]:
    """(calls, accounts, models, labels) of one simulated population."""
    sc = load_scenario(Path(scenario) if scenario else None)
    res = Simulator(sc, corpora, shipped_fit(), seed=seed).run(accounts, days)
    labels = pl.from_arrow(res.labels)
    assert isinstance(labels, pl.DataFrame)
    return (
        pl.from_arrow(res.calls).lazy(),  # type: ignore[union-attr]
        pl.from_arrow(res.accounts).lazy(),  # type: ignore[union-attr]
        pl.from_arrow(res.models).lazy(),  # type: ignore[union-attr]
        labels,
    )


def simulated_features(
    pipeline: ScanPipeline, corpora: Corpora, seed: int, accounts: int, days: int,
    scenario: str | None = None,
) -> pl.DataFrame:  # fmt: skip
    """Simulate one population and return its feature table with the ``label`` column."""
    calls, accs, models, labels = simulated_population(corpora, seed, accounts, days, scenario)
    feats = pipeline.features(calls, accs, models)
    return feats.join(labels.select("account_id", "label"), on="account_id", how="inner")


def _xy(pipeline: ScanPipeline, frames: Sequence[pl.DataFrame]) -> tuple[pl.DataFrame, np.ndarray]:
    data = pl.concat(frames, how="diagonal_relaxed")
    y = (data["label"] == "distill").to_numpy().astype(np.int32)
    return pipeline.design(data), y


def train_detector(
    spec: TrainSpec, corpora: Corpora, progress: Progress | None = None
) -> GradientBoostedDetector:
    """Simulate the training and calibration populations and fit the detector."""
    pipe = ScanPipeline()
    say = progress or (lambda _msg: None)
    train_frames = []
    for scenario in spec.scenarios:
        for seed in spec.seeds:
            say(f"simulating training seed {seed} ({scenario or 'default'})")
            train_frames.append(
                simulated_features(pipe, corpora, seed, spec.accounts, spec.days, scenario)
            )
    say(f"simulating calibration seed {spec.calibration_seed}")
    cal = simulated_features(pipe, corpora, spec.calibration_seed, spec.accounts, spec.days)
    X, y = _xy(pipe, train_frames)
    X_cal, y_cal = _xy(pipe, [cal])
    say(f"fitting on {len(y):,} accounts ({int(y.sum()):,} distill)")
    det = GradientBoostedDetector(seed=spec.seeds[0]).fit(X, y, X_cal.select(X.columns), y_cal)
    det.meta_ = {
        "train_seeds": list(spec.seeds),
        "calibration_seed": spec.calibration_seed,
        "accounts": spec.accounts,
        "days": spec.days,
        "scenarios": [s or "default" for s in spec.scenarios],
        "train_accounts": len(y),
        "train_distill": int(y.sum()),
    }
    return det


# --- the cluster detector -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClusterTrainSpec:
    """What to simulate for the cluster detector. Its seeds must differ from the account
    detector's: a cluster's features include its members' own scores, which have to be
    out-of-sample for the account detector, as they are in a real scan."""

    seeds: tuple[int, ...] = (104, 105)
    calibration_seed: int = 106
    accounts: int = 4000
    days: int = 7
    scenarios: tuple[str | None, ...] = (None,)


def simulated_clusters(
    pipeline: ScanPipeline, corpora: Corpora, seed: int, accounts: int, days: int,
    scenario: str | None = None,
) -> pl.DataFrame:  # fmt: skip
    """Simulate one population, scan it (accounts scored, graph clustered, clusters not
    scored) and return its cluster features with ``label``: ``distill`` when at least half of
    a cluster's members belong to campaigns."""
    from distillwatch.scoring.clusters import cluster_features

    calls, accs, models, labels = simulated_population(corpora, seed, accounts, days, scenario)
    saved, pipeline.cluster_detector = pipeline.cluster_detector, None
    try:
        result = pipeline.scan(calls, accs, models)
    finally:
        pipeline.cluster_detector = saved
    clusters = result.verdicts.select("account_id", "cluster_id")
    feats = cluster_features(
        result.features,
        result.verdicts.select("account_id", "score"),
        clusters,
        result.edges,
        strong_rules=pipeline.strong_rules,
    )
    truth = (
        clusters.drop_nulls("cluster_id")
        .join(labels.select("account_id", "label"), on="account_id")
        .group_by("cluster_id")
        .agg((pl.col("label") == "distill").mean().alias("distill_share"))
    )
    return feats.join(truth, on="cluster_id").with_columns(
        pl.when(pl.col("distill_share") >= 0.5)
        .then(pl.lit("distill"))
        .otherwise(pl.lit("legit"))
        .alias("label")
    )


def _cluster_xy(frames: Sequence[pl.DataFrame]) -> tuple[pl.DataFrame, np.ndarray]:
    data = pl.concat(frames, how="diagonal_relaxed")
    y = (data["label"] == "distill").to_numpy().astype(np.int32)
    return data.drop("cluster_id", "label", "distill_share", "n_calls"), y


def train_cluster_detector(
    spec: ClusterTrainSpec,
    corpora: Corpora,
    account_detector: GradientBoostedDetector,
    progress: Progress | None = None,
) -> GradientBoostedDetector:
    """Simulate, scan and cluster the training and calibration populations; fit the cluster
    detector (small trees: there are far fewer clusters than accounts)."""
    pipe = ScanPipeline(detector=account_detector)
    say = progress or (lambda _msg: None)
    train_frames = []
    for scenario in spec.scenarios:
        for seed in spec.seeds:
            say(f"simulating and clustering training seed {seed} ({scenario or 'default'})")
            train_frames.append(
                simulated_clusters(pipe, corpora, seed, spec.accounts, spec.days, scenario)
            )
    # calibrated on every training scenario (at the calibration seed): a scenario's clusters
    # come in other sizes and proportions, and a calibration on one would not carry over
    cal_frames = []
    for scenario in spec.scenarios:
        say(f"simulating and clustering calibration seed {spec.calibration_seed} "
            f"({scenario or 'default'})")  # fmt: skip
        cal_frames.append(
            simulated_clusters(
                pipe, corpora, spec.calibration_seed, spec.accounts, spec.days, scenario
            )
        )
    X, y = _cluster_xy(train_frames)
    X_cal, y_cal = _cluster_xy(cal_frames)
    say(f"fitting on {len(y):,} clusters ({int(y.sum()):,} campaign clusters)")
    det = GradientBoostedDetector(
        n_estimators=150, num_leaves=7, min_child_samples=5, seed=spec.seeds[0]
    ).fit(X, y, X_cal.select(X.columns), y_cal)
    det.meta_ = {
        "kind": "cluster",
        "train_seeds": list(spec.seeds),
        "calibration_seed": spec.calibration_seed,
        "accounts": spec.accounts,
        "days": spec.days,
        "scenarios": [s or "default" for s in spec.scenarios],
        "train_clusters": len(y),
        "train_campaign_clusters": int(y.sum()),
        "calibration_clusters": len(y_cal),
        "account_detector": account_detector.meta_,
    }
    return det
