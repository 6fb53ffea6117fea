"""Per-call and per-account behavioural features: harvesting parameters, conversation shape,
task mix, timing, the release pivot and account metadata. Pure Polars expressions.

Each per-account column is named after what it measures; every one is a share, a rate or a
count that can be compared with the population (the scorer does that, not this module).
"""

from __future__ import annotations

import polars as pl

from distillwatch.features.calls import TASK_TYPES

HIGH_MAX_TOKENS = 8192
NIGHT_HOURS = (0, 1, 2, 3, 4, 5)


def _share(cond: pl.Expr) -> pl.Expr:
    return cond.fill_null(False).cast(pl.Float64).mean()


def account_features(
    cf: pl.LazyFrame,
    accounts: pl.LazyFrame | None = None,
    models: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """One row per account seen in the call frame ``cf`` (:func:`~distillwatch.features.calls.call_frame`)
    with every behavioural feature.

    ``accounts`` adds metadata (age, channel, verification, allowlist, shared payment);
    ``models`` adds the release pivot (share of calls on a model in its first 24 h).
    """
    per_prompt_seeds = (
        cf.filter(pl.col("seed").is_not_null())
        .group_by("account_id", "prompt")
        .agg(pl.col("seed").n_unique().alias("seeds"))
        .group_by("account_id")
        .agg((pl.col("seeds") > 1).cast(pl.Float64).mean().alias("seed_sweep_share"))
    )
    timing = _timing(cf)
    types = [name for name, _ in TASK_TYPES] + ["tool", "chat"]
    mix = [_share(pl.col("task_type") == t).alias(f"task_{t}_share") for t in types]
    base = cf.group_by("account_id").agg(
        pl.len().alias("n_calls"),
        pl.col("ts").dt.date().n_unique().alias("active_days"),
        _share(pl.col("n_messages") <= 1).alias("single_turn_share"),
        pl.col("n_messages").mean().alias("mean_messages"),
        _share(pl.col("n_tools") > 0).alias("tools_share"),
        _share(pl.col("has_system")).alias("system_share"),
        _share(pl.col("max_tokens") >= HIGH_MAX_TOKENS).alias("high_max_tokens_share"),
        _share(pl.col("max_tokens").is_null()).alias("default_max_tokens_share"),
        _share(pl.col("n") > 1).alias("multi_sample_share"),
        _share(pl.col("logprobs") | (pl.col("top_logprobs") > 0)).alias("logprobs_share"),
        _share(pl.col("seed").is_not_null()).alias("seed_share"),
        _share(pl.col("reasoning_effort") == "high").alias("high_effort_share"),
        _share(pl.col("finish_reason") == "length").alias("length_stop_share"),
        (pl.col("output_tokens").sum() / pl.col("input_tokens").sum().clip(1)).alias(
            "output_input_ratio"
        ),
        pl.col("prompt").str.len_chars().mean().alias("mean_prompt_chars"),
        (pl.col("prompt").n_unique() / pl.len()).alias("distinct_prompt_share"),
        (pl.col("ip").n_unique() / pl.len()).alias("ip_per_call"),
        pl.col("ip").n_unique().alias("n_ips"),
        pl.col("temperature").std().fill_null(0.0).alias("temperature_std"),
        *mix,
    )
    entropy = (
        cf.group_by("account_id", "task_type")
        .len()
        .with_columns((pl.col("len") / pl.col("len").sum().over("account_id")).alias("p"))
        .group_by("account_id")
        .agg((-(pl.col("p") * pl.col("p").log(2))).sum().alias("task_entropy"))
    )
    out = (
        base.join(entropy, on="account_id", how="left")
        .join(per_prompt_seeds, on="account_id", how="left")
        .join(timing, on="account_id", how="left")
        .with_columns(
            pl.col("seed_sweep_share").fill_null(0.0),
            (pl.col("n_calls") / pl.col("active_days")).alias("calls_per_active_day"),
        )
    )
    if models is not None:
        out = out.join(_release_pivot(cf, models), on="account_id", how="left").with_columns(
            pl.col("new_model_24h_share").fill_null(0.0)
        )
    if accounts is not None:
        out = out.join(_metadata(cf, accounts), on="account_id", how="left")
    return out


def _timing(cf: pl.LazyFrame) -> pl.LazyFrame:
    """Inter-arrival regularity, hour-of-day spread, night share, duty cycle and bursts."""
    gaps = (
        cf.select("account_id", "ts")
        .sort("account_id", "ts")
        .with_columns(
            (pl.col("ts").diff().over("account_id").dt.total_milliseconds() / 1000.0).alias("gap")
        )
    )
    by_gap = gaps.group_by("account_id").agg(
        (pl.col("gap").std() / pl.col("gap").mean().clip(1e-3)).fill_null(0.0).alias("gap_cv"),
        _share(pl.col("gap") < 2.0).alias("burst_share"),
        pl.col("gap").median().fill_null(0.0).alias("median_gap_s"),
    )
    hours = (
        cf.group_by("account_id", pl.col("ts").dt.hour().alias("hour"))
        .len()
        .with_columns((pl.col("len") / pl.col("len").sum().over("account_id")).alias("p"))
        .group_by("account_id")
        .agg(
            (-(pl.col("p") * pl.col("p").log(2))).sum().alias("hour_entropy"),
            pl.col("p").filter(pl.col("hour").is_in(NIGHT_HOURS)).sum().alias("utc_night_share"),
        )
    )
    duty = (
        cf.group_by("account_id")
        .agg(
            pl.col("ts").dt.truncate("10m").n_unique().alias("busy_buckets"),
            ((pl.col("ts").max() - pl.col("ts").min()).dt.total_seconds() / 600.0 + 1).alias(
                "span"
            ),
        )
        .select("account_id", (pl.col("busy_buckets") / pl.col("span")).alias("duty_cycle"))
    )
    return by_gap.join(hours, on="account_id").join(duty, on="account_id")


def _release_pivot(cf: pl.LazyFrame, models: pl.LazyFrame) -> pl.LazyFrame:
    """Share of an account's calls in the window that went to a model in its first 24 h."""
    m = models.select("model", "released_at")
    return (
        cf.select("account_id", "ts", "model")
        .join(m, on="model", how="left")
        .group_by("account_id")
        .agg(
            _share(
                (pl.col("ts") >= pl.col("released_at"))
                & (pl.col("ts") < pl.col("released_at") + pl.duration(hours=24))
            ).alias("new_model_24h_share")
        )
    )


def _metadata(cf: pl.LazyFrame, accounts: pl.LazyFrame) -> pl.LazyFrame:
    first = cf.group_by("account_id").agg(pl.col("ts").min().alias("first_call"))
    acc = accounts.with_columns(
        pl.len().over("payment_fingerprint").alias("payment_accounts")
    ).with_columns(
        pl.when(pl.col("payment_fingerprint").is_null())
        .then(1)
        .otherwise(pl.col("payment_accounts"))
        .alias("payment_accounts")
    )
    return acc.join(first, on="account_id", how="right").select(
        "account_id",
        ((pl.col("first_call") - pl.col("created_at")).dt.total_hours() / 24.0).alias(
            "account_age_days"
        ),
        pl.col("signup_channel").fill_null("unknown"),
        pl.col("verified").fill_null(False).cast(pl.Float64).alias("verified"),
        pl.col("allowlisted").fill_null(False).alias("allowlisted"),
        pl.col("payment_accounts").fill_null(1).cast(pl.Float64),
    )
