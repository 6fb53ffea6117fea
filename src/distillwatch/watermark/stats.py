"""Exact, non-asymptotic tail probabilities for watermark scores, and multiple-testing control.

Under the null every distinct scored tuple is green with probability ``gamma`` (KGW) or carries
an Exp(1) score ``-log(1-u)`` (Gumbel), independently; so the green count is Binomial and the
score sum is Gamma(n, 1). No z-score approximation: these are the tails themselves.
"""

from __future__ import annotations

import math

import numpy as np

_LN10 = math.log(10.0)


def binomial_log10_sf(k: int, n: int, p: float) -> float:
    """log10 P[Binomial(n, p) >= k], finite even where the p-value underflows."""
    from scipy import special, stats  # lazily: the package imports without scipy (gateway)

    if n <= 0 or k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    log_sf = float(stats.binom.logsf(k - 1, n, p))
    if not math.isfinite(log_sf) or log_sf < -600:  # deep tail: sum the pmf in log space
        log_sf = float(special.logsumexp(stats.binom.logpmf(np.arange(k, n + 1), n, p)))
    return log_sf / _LN10


def gamma_log10_sf(score: float, n: int) -> float:
    """log10 P[Gamma(n, 1) >= score]: the sum of n Exp(1) scores."""
    from scipy import special, stats

    if n <= 0 or score <= 0:
        return 0.0
    p = float(special.gammaincc(n, score))
    if p > 1e-300:
        return math.log10(p)
    log_sf = float(stats.gamma.logsf(score, n))
    if not math.isfinite(log_sf):  # far tail: the leading term of the upper incomplete gamma
        log_sf = (n - 1) * math.log(score) - score - float(special.gammaln(n))
    return log_sf / _LN10


def to_p(log10_p: float) -> float:
    """A p-value from its log10 (0.0 where it underflows a float)."""
    return 10.0**log10_p if log10_p > -323 else 0.0


def bonferroni(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Bonferroni-adjusted p-values (family-wise error control, any dependence)."""
    p = np.asarray(p_values, dtype=float)
    out: np.ndarray = np.minimum(1.0, p * p.size)
    return out


def holm(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (FWER, any dependence; uniformly beats Bonferroni)."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p)
    adj = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adj[idx] = running
    return adj


def benjamini_hochberg(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate, independent or PRDS tests)."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    adj_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    adj = np.empty(m)
    adj[order] = np.minimum(1.0, adj_sorted)
    return adj
