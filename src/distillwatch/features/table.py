"""The per-account feature table that detectors read: every feature family joined on account."""

from __future__ import annotations

import polars as pl

from distillwatch.core.schema import SIGNUP_CHANNELS
from distillwatch.features.account import account_features

ACCOUNT_COLUMNS = (
    "account_age_days",
    "verified",
    "payment_accounts",
    *(f"channel_{ch}" for ch in SIGNUP_CHANNELS),
)


def feature_table(
    calls: pl.LazyFrame,
    accounts: pl.LazyFrame | None = None,
    models: pl.LazyFrame | None = None,
) -> pl.DataFrame:
    """One row per account with calls: behavioural features plus account metadata, numeric
    (signup channel one-hot), ready for a detector. ``org_id`` and ``allowlisted`` ride along."""
    feats = account_features(calls, accounts, models)
    org = calls.group_by("account_id").agg(pl.col("org_id").drop_nulls().first())
    out = feats.join(org, on="account_id", how="left")
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
    return out.sort("account_id").collect()
