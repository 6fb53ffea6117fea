"""SynthID-Text through transformers' own implementation, with keys from our master secret.

Generation uses ``SynthIDTextWatermarkingConfig`` unchanged. Detection here is a plain
statistical test instead of transformers' trained Bayesian detector: every distinct
sampling-table index hit by a (non-repeated-context n-gram, depth) pair is counted once, and
the number of g=1 entries among ``n`` distinct indices of a table with ``K`` ones out of ``T``
is Hypergeometric(T, K, n) under the null (keys independent of the text, ideal hash): an exact
tail. Needs torch and transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from distillwatch.watermark.keys import derive_int


@dataclass(frozen=True, slots=True)
class SynthIDSpec:
    """SynthID-Text parameters (transformers' defaults except where noted)."""

    ngram_len: int = 5
    depth: int = 20
    sampling_table_size: int = 2**16
    sampling_table_seed: int = 0
    context_history_size: int = 1024


@dataclass(frozen=True, slots=True)
class SynthIDResult:
    key_id: str
    p_value: float
    log10_p: float
    ones: int
    n_scored: int
    expected: float


def synthid_keys(master: bytes, account: str, depth: int) -> list[int]:
    """``depth`` per-account SynthID keys (31-bit ints) derived from the master secret."""
    return [derive_int(master, f"synthid/{account}/{i}") % (1 << 31) for i in range(depth)]


def synthid_config(keys: list[int], spec: SynthIDSpec = SynthIDSpec()) -> Any:
    """The transformers ``SynthIDTextWatermarkingConfig`` to pass to ``generate``."""
    from transformers import SynthIDTextWatermarkingConfig

    return SynthIDTextWatermarkingConfig(
        ngram_len=spec.ngram_len,
        keys=keys,
        sampling_table_size=spec.sampling_table_size,
        sampling_table_seed=spec.sampling_table_seed,
        context_history_size=spec.context_history_size,
    )


def synthid_detect(
    ids: list[int], keys: list[int], spec: SynthIDSpec = SynthIDSpec(), key_id: str = "synthid"
) -> SynthIDResult:
    """Exact hypergeometric test of one text's token ids for a SynthID watermark."""
    import torch

    cfg = synthid_config(keys, spec)
    proc = cfg.construct_processor(vocab_size=0, device="cpu")
    if len(ids) < spec.ngram_len:
        return SynthIDResult(key_id, 1.0, 0.0, 0, 0, 0.0)
    x = torch.tensor([ids], dtype=torch.long)
    ngrams = x.unfold(dimension=1, size=spec.ngram_len, step=1)
    keys_t = proc.compute_ngram_keys(ngrams)  # (1, n, depth)
    fresh = proc.compute_context_repetition_mask(x)[0].bool()  # (n,)
    idx = (keys_t[0][fresh] % spec.sampling_table_size).numpy().ravel()
    table = proc.sampling_table.numpy()
    uniq = np.unique(idx)
    ones = int(table[uniq].sum())
    total, k_ones, n = int(table.size), int(table.sum()), int(uniq.size)
    log_sf = float(sps.hypergeom.logsf(ones - 1, total, k_ones, n)) if n else 0.0
    log10_p = min(0.0, log_sf / np.log(10.0))
    return SynthIDResult(key_id, float(10.0**log10_p), log10_p, ones, n, n * k_ones / total)
