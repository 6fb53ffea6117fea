"""Keyed hashing of (context, token) tuples: the pseudo-random function behind every scheme here.

numpy only, so detection runs on token ids from any tokenizer without torch. A tuple is the
``width`` tokens before a position plus the token at it; its keyed hash, mapped to [0, 1), is
``u``. KGW calls a tuple green when ``u < gamma``; the Gumbel (Aaronson) scheme uses ``u``
itself. Under the null (text written without the key) ``u`` is uniform and independent across
distinct tuples, which is what makes the p-values in :mod:`distillwatch.watermark.stats` exact.

The mixer is splitmix64's finaliser, keyed by a 64-bit secret derived with HMAC-SHA256
(:mod:`distillwatch.watermark.keys`): fast enough to score the whole vocabulary at every
generation step, not a cryptographic PRF (documented in docs/watermark.md).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_TOKEN_SALT = np.uint64(0xD6E8FEB86659FD93)
_DEDUP_SEED = 0x243F6A8885A308D3  # fixed, public: tuple identity for dedup, never for scoring
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_INV53 = 1.0 / float(1 << 53)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic, a bijection of 2**64)."""
    z = np.asarray(x, dtype=np.uint64)
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def context_hash(key: int, contexts: np.ndarray) -> np.ndarray:
    """Keyed hash of each row of ``contexts`` (shape (n, width), token ids) -> uint64 (n,).

    Width 0 gives one hash per row that depends on the key only (a fixed green list).
    """
    ctx = np.asarray(contexts, dtype=np.uint64)
    if ctx.ndim != 2:
        raise ValueError("contexts must be 2-D (n, width)")
    h = mix64(np.full(ctx.shape[0], np.uint64(key & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64))
    for j in range(ctx.shape[1]):
        h = mix64(h ^ ((ctx[:, j] + np.uint64(1)) * _GOLD))
    return h


def tuple_uniform(ctx_hashes: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Map (context hash, token) pairs to floats in [0, 1) (53-bit resolution); broadcasts."""
    tok = np.asarray(tokens, dtype=np.uint64)
    z = mix64(np.asarray(ctx_hashes, dtype=np.uint64) ^ mix64(tok ^ _TOKEN_SALT))
    return (z >> _S11).astype(np.float64) * _INV53


def exact_gamma(gamma: float) -> float:
    """The green probability the hash really gives for a nominal ``gamma`` (53-bit grid)."""
    if not 0.0 < gamma < 1.0:
        raise ValueError("gamma must be in (0, 1)")
    return float(np.ceil(gamma * (1 << 53))) * _INV53


def windows(ids: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Split a token sequence into (contexts (n, width), tokens (n,)) for every scorable position."""
    arr = np.asarray(ids, dtype=np.int64).ravel()
    n = arr.size - width
    if n <= 0:
        return np.zeros((0, width), dtype=np.int64), np.zeros(0, dtype=np.int64)
    win = sliding_window_view(arr, width + 1)
    return win[:, :width], win[:, width]


def tuple_ids(contexts: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Key-independent 64-bit identity of each (context, token) tuple, for dedup and lookups."""
    h = context_hash(_DEDUP_SEED, contexts)
    return mix64(h ^ mix64(np.asarray(tokens, dtype=np.uint64) ^ _TOKEN_SALT))


def context_ids(contexts: np.ndarray) -> np.ndarray:
    """Key-independent 64-bit identity of each context window."""
    return context_hash(_DEDUP_SEED, contexts)


def vocab_uniform(key: int, context: np.ndarray, vocab_size: int) -> np.ndarray:
    """``u`` for every token of the vocabulary after each context row -> (rows, vocab_size)."""
    ctx = np.asarray(context, dtype=np.int64)
    if ctx.ndim == 1:
        ctx = ctx[None, :]
    ch = context_hash(key, ctx)
    return tuple_uniform(ch[:, None], np.arange(vocab_size, dtype=np.uint64)[None, :])
