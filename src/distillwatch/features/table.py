"""The per-account feature table that detectors read: every feature family joined on account."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from distillwatch.core.schema import SIGNUP_CHANNELS
from distillwatch.features.account import account_features
from distillwatch.features.benchmarks import BenchmarkIndex, benchmark_matches, default_index
from distillwatch.features.calls import call_frame, is_call_frame
from distillwatch.features.templates import account_template_features, template_families

if TYPE_CHECKING:
    from distillwatch.rules import RuleSet

ACCOUNT_COLUMNS = (
    "account_age_days",
    "verified",
    "payment_accounts",
    *(f"channel_{ch}" for ch in SIGNUP_CHANNELS),
)
TEMPLATE_COLUMNS = (
    "family_share",
    "top_family_share",
    "n_families",
    "shared_template_share",
    "shared_duplicate_share",
    "max_family_accounts",
)


def text_features(
    prompts: pl.DataFrame,
    rules: RuleSet | None,
    index: BenchmarkIndex | None,
    families: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per account: share of calls firing each rule, template-family use, benchmark sweeps.
    ``families`` is :func:`template_families` of ``prompts`` when the caller already has it."""
    out = prompts.select("account_id").unique()
    if rules is not None and len(rules):
        # rules run once per distinct (prompt, system): logs repeat prompts (about 2.5 calls
        # per distinct text in the default scenario), and the regexes are the costly part
        keyed = prompts.select(
            "account_id", "prompt", "system", pl.struct("prompt", "system").hash(7).alias("key")
        )
        distinct = keyed.unique(subset="key", keep="any").select("key", "prompt", "system")
        fired = rules.signals(distinct).select("key", *rules.columns)
        shares = (
            keyed.select("account_id", "key")
            .join(fired, on="key", how="left")
            .group_by("account_id")
            .agg([pl.col(c).cast(pl.Float64).mean() for c in rules.columns])
        )
        out = out.join(shares, on="account_id", how="left")
    if families is None:
        families = template_families(prompts.select("account_id", "prompt"))
    fam = account_template_features(families)
    out = out.join(fam.select("account_id", *TEMPLATE_COLUMNS), on="account_id", how="left")
    bench = benchmark_matches(prompts.select("account_id", "prompt"), index or default_index())
    sweeps = bench.group_by("account_id").agg(
        pl.col("benchmark").is_not_null().cast(pl.Float64).mean().alias("benchmark_share"),
        pl.col("benchmark_item").n_unique().alias("benchmark_items"),
        pl.col("benchmark").drop_nulls().n_unique().alias("benchmarks_swept"),
    )
    return out.join(sweeps, on="account_id", how="left")


def feature_table(
    calls: pl.LazyFrame | pl.DataFrame,
    accounts: pl.LazyFrame | None = None,
    models: pl.LazyFrame | None = None,
    *,
    rules: RuleSet | None = None,
    benchmarks: BenchmarkIndex | None = None,
    text: bool = True,
    families: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per account with calls: behavioural, text and metadata features, numeric
    (signup channel one-hot), ready for a detector. ``org_id`` and ``allowlisted`` ride along.

    ``calls`` is a call frame (:func:`~distillwatch.features.calls.call_frame`) or canonical
    calls, which are turned into one first. ``text=False`` skips the text features (rules,
    templates, benchmarks); ``families`` is :func:`template_families` of the calls' prompts when
    the caller already has it."""
    if isinstance(calls, pl.DataFrame):
        calls = calls.lazy()
    cf = (calls if is_call_frame(calls) else call_frame(calls)).collect().lazy()
    out = account_features(cf, accounts, models).join(
        cf.group_by("account_id").agg(pl.col("org_id").drop_nulls().first()),
        on="account_id",
        how="left",
    )
    if accounts is not None:
        out = out.with_columns(
            [
                (pl.col("signup_channel") == ch).cast(pl.Float64).alias(f"channel_{ch}")
                for ch in SIGNUP_CHANNELS
            ]
        ).drop("signup_channel")
    else:  # no accounts table: metadata features are missing (NaN), not zero
        out = out.with_columns(
            pl.lit(False).alias("allowlisted"),
            *[pl.lit(None, pl.Float64).alias(c) for c in ACCOUNT_COLUMNS],
        )
    if models is None:  # no release table: the pivot is unknown
        out = out.with_columns(pl.lit(None, pl.Float64).alias("new_model_24h_share"))
    table = out.collect()
    if text:
        prompts = cf.select("account_id", "prompt", "system").collect()
        table = table.join(
            text_features(prompts, rules, benchmarks, families), on="account_id", how="left"
        )
    return table.sort("account_id")
