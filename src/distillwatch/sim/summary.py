"""Numbers that describe a simulated population, next to the real traces it was fitted to."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from distillwatch.sim.traces import QUANTILES, TraceFit


def summarize(
    calls: pa.Table, labels: pa.Table, models: pa.Table, fit: TraceFit, days: int
) -> dict[str, Any]:
    """Persona/campaign mix, volume quantiles beside ServeGen's, and the release pivot.

    Deterministic for a given input (no wall-clock numbers), so it can sit beside the data.
    """
    c = pl.from_arrow(calls.select(["ts", "account_id", "model"]))
    lab = pl.from_arrow(labels)
    assert isinstance(c, pl.DataFrame) and isinstance(lab, pl.DataFrame)
    per = (
        lab.join(c.group_by("account_id").agg(pl.len().alias("calls")), on="account_id", how="left")
        .with_columns(pl.col("calls").fill_null(0))
        .with_columns((pl.col("calls") / days).alias("per_day"))
    )
    mix = (
        per.group_by("label", "persona")
        .agg(
            pl.len().alias("accounts"),
            pl.col("calls").sum().alias("calls"),
            pl.col("per_day").median().alias("median_calls_per_day"),
            pl.col("per_day").quantile(0.9).alias("p90_calls_per_day"),
            pl.col("org_id").n_unique().alias("orgs"),
        )
        .sort("label", "persona", descending=[True, False])
    )
    campaigns = (
        per.filter(pl.col("campaign_id").is_not_null())
        .group_by("campaign_id", "persona")
        .agg(
            pl.len().alias("accounts"),
            pl.col("calls").sum().alias("calls"),
            pl.col("mundane_share").mean().alias("mean_mundane_share"),
        )
        .sort("campaign_id")
    )
    legit = per.filter((pl.col("label") == "legit") & (pl.col("calls") > 0))["per_day"].to_numpy()
    sim_q = np.quantile(legit, QUANTILES) if len(legit) else np.full(len(QUANTILES), np.nan)
    med = float(np.median(legit)) if len(legit) else float("nan")
    volume = [
        {
            "quantile": q,
            "sim_calls_per_day": float(s),
            "sim_ratio_to_median": float(s / med) if med else None,
            "servegen_ratio_to_median": float(g),
        }
        for q, s, g in zip(QUANTILES, sim_q, fit.volume_quantile_ratios, strict=True)
    ]
    out: dict[str, Any] = _rounded(
        {
            "days": days,
            "n_accounts": labels.num_rows,
            "n_calls": calls.num_rows,
            "n_distill_accounts": int((lab["label"] == "distill").sum()),
            "mix": mix.to_dicts(),
            "campaigns": campaigns.to_dicts(),
            "volume_quantiles": volume,
            "release_pivot": _pivot(c, lab, models),
        }
    )
    return out


def _rounded(value: Any) -> Any:
    """Floats to 9 significant digits: parallel group-bys sum in varying order, and the last
    bits of a mean must not make two runs of the same seed differ."""
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _pivot(c: pl.DataFrame, lab: pl.DataFrame, models: pa.Table) -> list[dict[str, Any]]:
    """Per group, share of calls in the 24 h after the newest release that went to that model."""
    m = pl.from_arrow(models)
    assert isinstance(m, pl.DataFrame)
    newest = m.sort("released_at").tail(1)
    model, released = newest["model"][0], newest["released_at"][0]
    window = c.filter(
        (pl.col("ts") >= released) & (pl.col("ts") < released + pl.duration(hours=24))
    ).join(lab.select("account_id", "label", "persona"), on="account_id")
    return (
        window.group_by("label", "persona")
        .agg(
            (pl.col("model") == model).mean().alias("share_on_new_model_24h"),
            pl.len().alias("calls"),
        )
        .sort("label", "persona", descending=[True, False])
        .to_dicts()
    )
