"""Pure per-call and per-account feature functions: frames in, frames out, no I/O, no clock."""

from distillwatch.features.benchmarks import (
    BENCHMARKS,
    BenchmarkIndex,
    benchmark_matches,
    default_index,
)
from distillwatch.features.calls import CALL_FRAME_SCHEMA, call_frame, prompt_frame
from distillwatch.features.templates import (
    FAMILY_KINDS,
    account_template_features,
    family_stats,
    template_families,
)

__all__ = [
    "BENCHMARKS",
    "CALL_FRAME_SCHEMA",
    "FAMILY_KINDS",
    "BenchmarkIndex",
    "account_template_features",
    "benchmark_matches",
    "call_frame",
    "default_index",
    "family_stats",
    "prompt_frame",
    "template_families",
]
