"""Radioactivity tests on synthetic students: power, valid nulls, filters, echo handling."""

from __future__ import annotations

import numpy as np
from wm_synth import VOCAB, base_logits, sample_text

from distillwatch.watermark import radioactivity as ra
from distillwatch.watermark.hashing import exact_gamma, vocab_uniform
from distillwatch.watermark.keys import raw_key
from distillwatch.watermark.spec import WatermarkSpec

SPEC = WatermarkSpec(gamma=0.25, delta=2.0, width=1)
KEY = raw_key(0x5EED)


def student_text(rng: np.random.Generator, n: int, learnt: float) -> list[int]:
    """A student that learnt a weak green bias (``learnt`` logits) for every context."""
    return sample_text(
        rng, n, KEY if learnt else None, WatermarkSpec(gamma=0.25, delta=learnt, width=1)
    )


def test_closed_mode_finds_a_weakly_radioactive_student() -> None:
    rng = np.random.default_rng(0)
    served = [sample_text(rng, 100, KEY, SPEC) for _ in range(40)]
    ctx = ra.served_context_counts(served, SPEC)
    suspect = [student_text(rng, 100, 0.5) for _ in range(40)]
    res = ra.closed_mode(suspect, KEY, SPEC, served_contexts=ctx)
    assert res.p_value < 1e-5 and res.mode == "closed"
    assert res.filter == "served-context>=1"


def test_closed_mode_null_is_valid_with_the_served_filter() -> None:
    rng = np.random.default_rng(1)
    suspect = [student_text(rng, 60, 0.0) for _ in range(10)]
    ps = []
    for k in rng.integers(0, 2**63, 300):
        key = raw_key(int(k))
        served = [
            sample_text(np.random.default_rng(int(k) % 1000), 60, key, SPEC) for _ in range(3)
        ]
        ps.append(
            ra.closed_mode(
                suspect, key, SPEC, served_contexts=ra.served_context_counts(served, SPEC)
            ).p_value
        )
    ps_arr = np.array(ps)
    assert np.mean(ps_arr <= 0.05) <= 0.05 + 4 * np.sqrt(0.05 * 0.95 / ps_arr.size)


def test_min_count_filters_rare_contexts() -> None:
    rng = np.random.default_rng(2)
    served = [sample_text(rng, 80, KEY, SPEC) for _ in range(5)]
    ctx = ra.served_context_counts(served, SPEC)
    suspect = [sample_text(rng, 80) for _ in range(5)]
    loose = ra.closed_mode(suspect, KEY, SPEC, served_contexts=ctx, min_count=1)
    strict = ra.closed_mode(suspect, KEY, SPEC, served_contexts=ctx, min_count=5)
    assert strict.n_filtered_out > loose.n_filtered_out


def test_open_mode_drops_echo_so_a_same_base_model_is_not_radioactive() -> None:
    rng = np.random.default_rng(3)
    texts = [sample_text(rng, 100, KEY, SPEC) for _ in range(20)]
    echo = [list(t) for t in texts]  # a suspect that predicts exactly our served tokens
    kept = ra.open_mode(texts, [t for t in echo], KEY, SPEC, drop_echo=False)
    dropped = ra.open_mode(texts, echo, KEY, SPEC)
    assert kept.p_value < 1e-10  # the naive test would convict an innocent same-base model
    assert dropped.p_value == 1.0 and dropped.n_filtered_out > 1500


def test_open_mode_finds_green_predictions() -> None:
    rng = np.random.default_rng(4)
    texts = [sample_text(rng, 100, KEY, SPEC) for _ in range(20)]
    g = exact_gamma(SPEC.gamma)
    logits = base_logits()
    preds = []
    for t in texts:
        ctx = np.array(t[:-1])[:, None]
        u = vocab_uniform(KEY.value, ctx, VOCAB)
        # a student that learnt the green lists picks its most likely green token
        choice = np.argmax(logits[None, :] + 5.0 * (u < g) + rng.normal(0, 0.5, u.shape), axis=1)
        preds.append(choice.tolist())
    res = ra.open_mode([t[1:] for t in texts], preds, KEY, SPEC)
    assert res.p_value < 1e-10
    null = ra.open_mode([t[1:] for t in texts], preds, raw_key(1), SPEC)
    assert null.p_value > 1e-4


def _top1(texts: list[list[int]], boost: float, rng: np.random.Generator) -> list[list[int]]:
    """Top-1 predictions of a Zipf student that learnt a ``boost`` on key's green lists."""
    g = exact_gamma(SPEC.gamma)
    logits = base_logits()
    preds = []
    for t in texts:
        u = vocab_uniform(KEY.value, np.array(t[:-1])[:, None], VOCAB)
        noise = rng.gumbel(size=u.shape)
        preds.append(np.argmax(logits[None, :] + boost * (u < g) + noise, axis=1).tolist())
    return preds


def test_open_mode_on_unwatermarked_text_is_exact_and_powerful() -> None:
    rng = np.random.default_rng(6)
    plain = [sample_text(rng, 100) for _ in range(20)]
    served = ra.served_context_counts([sample_text(rng, 100, KEY, SPEC) for _ in range(20)], SPEC)
    student = _top1(plain, 1.0, rng)
    res = ra.open_mode([t[1:] for t in plain], student, KEY, SPEC, drop_echo=False)
    assert res.p_value < 1e-6
    filt = ra.open_mode(
        [t[1:] for t in plain], student, KEY, SPEC, drop_echo=False, served_contexts=served
    )
    assert filt.n_filtered_out > 0 and "served-context" in filt.filter
    innocent = _top1(plain, 0.0, rng)  # same base model, never saw the watermark
    ps = np.array(
        [
            ra.open_mode(
                [t[1:] for t in plain], innocent, raw_key(int(k)), SPEC, drop_echo=False
            ).p_value
            for k in rng.integers(0, 2**63, 300)
        ]
    )
    assert np.mean(ps <= 0.05) <= 0.05 + 4 * np.sqrt(0.05 * 0.95 / ps.size)
    assert ra.open_mode([t[1:] for t in plain], innocent, KEY, SPEC).p_value > 1e-3
