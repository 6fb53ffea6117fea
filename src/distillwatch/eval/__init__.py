"""Evaluate a detector's verdicts against simulator ground truth: ranking, operating points at
target false-positive rates, per-persona false positives, per-campaign recall, tiers, clusters."""

from distillwatch.eval.inputs import parse_fprs, read_table, read_truth, read_verdicts
from distillwatch.eval.metrics import DEFAULT_FPRS, evaluate
from distillwatch.eval.page import render_html
from distillwatch.eval.report import rich_tables, text_tables, to_json
from distillwatch.eval.result import (
    ACTIONED_TIERS,
    ClusterRow,
    ClusterSummary,
    EvalResult,
    GroupRate,
    OperatingPoint,
    RocCurve,
    ScoreHistogram,
    TierCount,
    TierSummary,
)

__all__ = [
    "ACTIONED_TIERS",
    "DEFAULT_FPRS",
    "ClusterRow",
    "ClusterSummary",
    "EvalResult",
    "GroupRate",
    "OperatingPoint",
    "RocCurve",
    "ScoreHistogram",
    "TierCount",
    "TierSummary",
    "evaluate",
    "parse_fprs",
    "read_table",
    "read_truth",
    "read_verdicts",
    "render_html",
    "rich_tables",
    "text_tables",
    "to_json",
]
