"""Evidence -> calibrated account findings, tiers and plain-English reasons."""

from distillwatch.scoring.accounts import ScanConfig, score_accounts, tiers
from distillwatch.scoring.explain import describe, render
from distillwatch.scoring.pipeline import VERDICT_COLUMNS, ScanPipeline, default_detector_path

__all__ = [
    "VERDICT_COLUMNS",
    "ScanConfig",
    "ScanPipeline",
    "default_detector_path",
    "describe",
    "render",
    "score_accounts",
    "tiers",
]
