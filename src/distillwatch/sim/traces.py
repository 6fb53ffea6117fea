"""Volume and arrival-process parameters fitted to real serving traces.

ServeGen (Alibaba Bailian, per-client 600 s windows over 14 days) gives the heavy tail of per-client
volume, the share of windows a client is active in, the inter-arrival coefficient of variation and a
diurnal profile; the Azure 2023 traces give request-level input/output token lengths. The fit that
ships in the package (``data/trace_fit.json``) was made by :func:`fit_traces` from the staged
traces; ``scripts/fit_traces.py`` remakes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


@dataclass(frozen=True, slots=True)
class TraceFit:
    """What the simulator takes from real traces (all plain numbers, JSON round-trippable)."""

    source: str
    n_clients: int
    log_volume_sigma: float  # std of log mean request rate across clients
    volume_quantile_ratios: tuple[float, ...]  # client mean-rate quantiles / median, at QUANTILES
    active_share_quantiles: tuple[float, ...]  # share of windows with traffic, at QUANTILES
    iat_cv_values: tuple[float, ...]  # 101 quantiles (0..1) of per-window inter-arrival CV
    diurnal: tuple[float, ...]  # 24 hourly weights, mean 1 (trace clock, UTC assumed)
    input_tokens_quantiles: tuple[float, ...]  # Azure conv+code ContextTokens at 0..1 by 0.01
    output_tokens_quantiles: tuple[float, ...]  # Azure GeneratedTokens, same grid

    def sample_cv(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draw inter-arrival CVs from the fitted empirical distribution."""
        grid = np.linspace(0.0, 1.0, len(self.iat_cv_values))
        out: np.ndarray = np.interp(rng.random(size), grid, np.asarray(self.iat_cv_values))
        return out


def fit_traces(data_dir: Path) -> TraceFit:
    """Fit :class:`TraceFit` from a staged ``shared/data`` folder."""
    sg = pl.read_csv(
        data_dir / "servegen_clients" / "servegen_client_windows.csv.gz",
        infer_schema_length=100_000,
    ).filter(pl.col("category") == "language")
    per = sg.group_by("model", "client_id").agg(
        pl.col("rate_rps").mean().alias("rate"),
        (pl.col("rate_rps") > 0).mean().alias("active"),
    )
    rate = per["rate"].to_numpy()
    rate = rate[rate > 0]
    qs = np.quantile(rate, QUANTILES)
    cv = sg.filter((pl.col("rate_rps") > 0) & pl.col("iat_cv").is_finite())["iat_cv"].to_numpy()
    # per-client hourly shape, averaged so that the biggest clients do not dominate
    hourly = (
        sg.with_columns(((pl.col("window_start_s") // 3600) % 24).alias("hour"))
        .group_by("model", "client_id", "hour")
        .agg(pl.col("rate_rps").mean())
        .with_columns(pl.col("rate_rps") / pl.col("rate_rps").mean().over("model", "client_id"))
        .drop_nans()
        .group_by("hour")
        .agg(pl.col("rate_rps").mean())
        .sort("hour")["rate_rps"]
        .to_numpy()
    )
    hourly = hourly / hourly.mean()
    az = pl.concat(
        [
            pl.read_csv(data_dir / "azure_llm_trace_2023" / f"AzureLLMInferenceTrace_{k}.csv.gz")
            for k in ("conv", "code")
        ]
    )
    grid = np.linspace(0, 1, 101)
    return TraceFit(
        source="ServeGen language clients (14 days) + Azure LLM inference 2023 (conv, code)",
        n_clients=len(rate),
        log_volume_sigma=float(np.log(rate).std()),
        volume_quantile_ratios=tuple(float(x) for x in qs / np.median(rate)),
        active_share_quantiles=tuple(float(x) for x in np.quantile(per["active"], QUANTILES)),
        iat_cv_values=tuple(float(x) for x in np.quantile(np.clip(cv, 0.05, 20.0), grid)),
        diurnal=tuple(float(x) for x in hourly),
        input_tokens_quantiles=tuple(float(x) for x in np.quantile(az["ContextTokens"], grid)),
        output_tokens_quantiles=tuple(float(x) for x in np.quantile(az["GeneratedTokens"], grid)),
    )


def save_fit(fit: TraceFit, path: Path) -> None:
    """Write a fit as indented JSON (stable key order, so the file diffs cleanly)."""
    path.write_text(json.dumps(asdict(fit), indent=1) + "\n")


def shipped_fit() -> TraceFit:
    """The fit that ships in the package."""
    raw = json.loads((resources.files("distillwatch") / "data" / "trace_fit.json").read_text())
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    return TraceFit(**fields)
