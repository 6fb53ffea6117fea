"""Account findings: calibrated score, tier and evidence from a feature table and a detector."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from distillwatch.core.errors import DistillwatchError
from distillwatch.core.values import TIERS, Evidence
from distillwatch.detectors.gbm import GradientBoostedDetector
from distillwatch.scoring.explain import describe, render

EVIDENCE_STRUCT = pl.Struct(
    {
        "signal": pl.String,
        "value": pl.Float64,
        "baseline": pl.Float64,
        "weight": pl.Float64,
        "source": pl.String,
    }
)


@dataclass(frozen=True, slots=True)
class ScanConfig:
    """Tier thresholds on the calibrated score, and how much evidence to keep."""

    watch: float = 0.5
    throttle: float = 0.8
    block: float = 0.95
    allowlisted_max_tier: str = "watch"
    max_evidence: int = 6
    min_weight: float = 0.05  # evidence items smaller than this (|log-odds|) are dropped
    explain_min_score: float = 0.01
    """Accounts scored below this get no evidence items (TreeSHAP is most of the scoring cost,
    and the score of such an account explains itself); 0 explains every account."""
    attach_min_score: float = 0.8
    """An account in no flagged cluster that scores at least this on its own evidence joins the
    flagged cluster it is most linked to, when those links weigh ``attach_min_weight`` or more
    (see :func:`~distillwatch.scoring.clusters.attach_suspects`); above 1 turns attaching off."""
    attach_min_weight: float = 0.5
    """Fewest summed edge weight (every edge type, below the graph's threshold too) between an
    account and one flagged cluster's members for the account to be attached to it."""

    @classmethod
    def load(cls, path: Path | None) -> ScanConfig:
        if path is None:
            return cls()
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DistillwatchError(f"{path}: cannot read config: {exc}") from None
        tiers: dict[str, Any] = doc.get("tiers", {})
        unknown = set(tiers) - {"watch", "throttle", "block"}
        if unknown:
            raise DistillwatchError(f"{path}: tiers: unknown keys {sorted(unknown)}")
        d = cls()
        cfg = cls(
            watch=float(tiers.get("watch", d.watch)),
            throttle=float(tiers.get("throttle", d.throttle)),
            block=float(tiers.get("block", d.block)),
            allowlisted_max_tier=str(doc.get("allowlisted_max_tier", d.allowlisted_max_tier)),
            explain_min_score=float(doc.get("explain_min_score", d.explain_min_score)),
            max_evidence=int(doc.get("max_evidence", d.max_evidence)),
            attach_min_score=float(doc.get("attach_min_score", d.attach_min_score)),
            attach_min_weight=float(doc.get("attach_min_weight", d.attach_min_weight)),
        )
        if not 0 <= cfg.watch <= cfg.throttle <= cfg.block <= 1:
            raise DistillwatchError(
                f"{path}: tiers must satisfy 0 <= watch <= throttle <= block <= 1"
            )
        if cfg.allowlisted_max_tier not in TIERS:
            raise DistillwatchError(f"{path}: allowlisted_max_tier must be one of {TIERS}")
        return cfg


def tiers(score: np.ndarray, allowlisted: np.ndarray, cfg: ScanConfig) -> list[str]:
    """Tier per account; allowlisted accounts are capped at ``cfg.allowlisted_max_tier``."""
    level = (
        (score >= cfg.watch).astype(int) + (score >= cfg.throttle) + (score >= cfg.block)
    ).astype(int)
    cap = TIERS.index(cfg.allowlisted_max_tier)
    level = np.where(allowlisted, np.minimum(level, cap), level)
    return [TIERS[i] for i in level]


def score_accounts(
    features: pl.DataFrame,
    detector: GradientBoostedDetector,
    cfg: ScanConfig,
    explain: np.ndarray | None = None,
) -> pl.DataFrame:
    """Score every account: ``account_id``, ``score``, ``tier``, ``reasons``, ``evidence``.

    Evidence (TreeSHAP contributions) is computed for the rows where ``explain`` is true;
    by default those scored at least ``cfg.explain_min_score``. Others get empty lists."""
    score = detector.score(features)
    if explain is None:
        explain = score >= cfg.explain_min_score
    reasons, evidence = explain_accounts(features, detector, cfg, explain)
    allow = (
        features["allowlisted"].fill_null(False).cast(pl.Boolean).to_numpy()
        if "allowlisted" in features.columns
        else np.zeros(len(features), dtype=bool)
    )
    return pl.DataFrame(
        {
            "account_id": features["account_id"],
            "score": score,
            "tier": tiers(score, allow, cfg),
            "reasons": pl.Series("reasons", reasons, dtype=pl.List(pl.String)),
            "evidence": pl.Series("evidence", evidence, dtype=pl.List(EVIDENCE_STRUCT)),
        }
    )


def explain_accounts(
    features: pl.DataFrame,
    detector: GradientBoostedDetector,
    cfg: ScanConfig,
    rows: np.ndarray,
) -> tuple[list[list[str]], list[list[dict[str, Any]]]]:
    """Per account of ``features``: reasons and evidence items for the rows where ``rows`` is
    true (empty lists elsewhere). Baselines are medians over all of ``features``."""
    names = detector.feature_names_
    values = features.select([pl.col(n).cast(pl.Float64) for n in names]).to_numpy()
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no baseline
        baseline = np.nanmedian(values, axis=0) if len(values) else np.zeros(len(names))
    sources = [describe(n)[1] for n in names]
    picked = np.flatnonzero(rows)
    reasons: list[list[str]] = [[] for _ in range(len(features))]
    evidence: list[list[dict[str, Any]]] = [[] for _ in range(len(features))]
    if picked.size == 0:
        return reasons, evidence
    contrib = detector.contributions(features[picked])
    order = np.argsort(-np.abs(contrib), axis=1)[:, : cfg.max_evidence]
    for k, (i, cols) in enumerate(zip(picked, order, strict=True)):
        items = [
            Evidence(
                names[j], float(values[i, j]), float(baseline[j]), float(contrib[k, j]), sources[j]
            )
            for j in cols
            if abs(contrib[k, j]) >= cfg.min_weight and np.isfinite(values[i, j])
        ]
        items.sort(key=lambda e: -e.weight)
        evidence[i] = [
            {"signal": e.signal, "value": e.value, "baseline": e.baseline, "weight": e.weight, "source": e.source}
            for e in items
        ]  # fmt: skip
        reasons[i] = [render(e) for e in items if e.weight > 0]
    return reasons, evidence
