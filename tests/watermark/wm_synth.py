"""Synthetic token streams for watermark tests: a fixed Zipf 'language model' over a small vocab."""

from __future__ import annotations

import numpy as np

from distillwatch.watermark.hashing import exact_gamma, vocab_uniform
from distillwatch.watermark.keys import WatermarkKey
from distillwatch.watermark.spec import WatermarkSpec

VOCAB = 1000


def base_logits(vocab: int = VOCAB) -> np.ndarray:
    return -1.1 * np.log(np.arange(1, vocab + 1, dtype=float))


def sample_text(
    rng: np.random.Generator,
    n: int,
    key: WatermarkKey | None = None,
    spec: WatermarkSpec | None = None,
    vocab: int = VOCAB,
) -> list[int]:
    """n tokens from the Zipf model, KGW-watermarked when a key is given."""
    logits = base_logits(vocab)
    perm = rng.permutation(vocab)
    seq: list[int] = list(rng.integers(0, vocab, 4))
    for _ in range(n):
        lg = logits[perm].copy()
        if key is not None and spec is not None:
            ctx = np.array(seq[len(seq) - spec.width :]) if spec.width else np.zeros(0, int)
            u = vocab_uniform(key.value, ctx[None, :], vocab)[0]
            lg = lg + spec.delta * (u < exact_gamma(spec.gamma))
        p = np.exp(lg - lg.max())
        p /= p.sum()
        seq.append(int(rng.choice(vocab, p=p)))
        if rng.random() < 0.05:
            perm = rng.permutation(vocab)
    return seq[4:]
