"""Detection: valid p-values under the null, power on watermarked text, no repeat inflation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from wm_synth import sample_text

from distillwatch.watermark.detect import decode, detect, detect_corpus
from distillwatch.watermark.hashing import exact_gamma, vocab_uniform
from distillwatch.watermark.keys import derive_key, raw_key
from distillwatch.watermark.spec import WatermarkSpec

MASTER = b"test-master-secret-0123456789"


@pytest.mark.parametrize("width", [0, 1, 2, 4])
def test_kgw_null_p_values_are_valid_over_many_random_keys(width: int) -> None:
    rng = np.random.default_rng(width)
    spec = WatermarkSpec(gamma=0.25, width=width)
    text = sample_text(rng, 300)  # one fixed unwatermarked text, many keys
    ps = np.array(
        [detect(text, raw_key(int(k)), spec).p_value for k in rng.integers(0, 2**63, 3000)]
    )
    for alpha in (0.01, 0.05, 0.1, 0.25, 0.5):
        # discrete tail: P[p <= alpha] <= alpha, up to Monte-Carlo error (4 sigma)
        assert np.mean(ps <= alpha) <= alpha + 4 * np.sqrt(alpha * (1 - alpha) / ps.size)
    assert np.mean(ps <= 0.5) > 0.3  # and not degenerate (all ones)


def test_gumbel_null_p_values_are_uniform() -> None:
    rng = np.random.default_rng(7)
    spec = WatermarkSpec(scheme="gumbel", width=2)
    text = sample_text(rng, 200)
    ps = np.array(
        [detect(text, raw_key(int(k)), spec).p_value for k in rng.integers(0, 2**63, 2000)]
    )
    assert sps.kstest(ps, "uniform").pvalue > 1e-3


def test_null_valid_over_many_texts_with_one_key() -> None:
    rng = np.random.default_rng(3)
    spec = WatermarkSpec(width=2)
    key = raw_key(12345)
    ps = np.array([detect(sample_text(rng, 80), key, spec).p_value for _ in range(800)])
    assert np.mean(ps <= 0.05) <= 0.05 + 4 * np.sqrt(0.05 * 0.95 / ps.size)


def test_watermarked_text_is_detected_and_other_keys_are_not() -> None:
    rng = np.random.default_rng(1)
    spec = WatermarkSpec(gamma=0.25, delta=2.0, width=2)
    key = raw_key(0xABCDEF)
    text = sample_text(rng, 200, key, spec)
    r = detect(text, key, spec)
    assert r.p_value < 1e-8 and r.score > r.expected
    assert r.evidence and r.evidence[0].source == "detector:watermark-kgw@1"
    assert detect(text, raw_key(0xABCDEE), spec).p_value > 1e-3


def test_repeated_ngrams_do_not_inflate_significance() -> None:
    spec = WatermarkSpec(gamma=0.25, width=2)
    key = raw_key(99)
    # find a cycle a b c whose three tuples are all green, and repeat it 200 times
    g = exact_gamma(spec.gamma)

    def green(x: int, y: int, z: int) -> bool:
        return bool(vocab_uniform(key.value, np.array([[x, y]]), 1000)[0][z] < g)

    a, b, c = next(
        (a, b, c)
        for a in range(100)
        for b in range(100)
        for c in range(100)
        if len({a, b, c}) == 3 and green(a, b, c) and green(b, c, a) and green(c, a, b)
    )
    text = [a, b, c] * 200
    naive = detect(text, key, spec, dedup=False)
    fair = detect(text, key, spec)
    assert naive.p_value < 1e-20  # what scoring every position would claim
    assert fair.n_scored <= 3 and fair.n_repeated >= 590
    assert fair.p_value > 1e-3


def test_prompt_tuples_are_skipped() -> None:
    rng = np.random.default_rng(5)
    spec = WatermarkSpec(width=2)
    key = raw_key(7)
    prompt = sample_text(rng, 100, key, spec)  # a watermarked text pasted into the prompt
    r_copy = detect(prompt, key, spec, prompt_ids=prompt)
    assert r_copy.n_in_prompt >= len(prompt) - 5
    assert r_copy.p_value > 1e-3
    assert detect(prompt, key, spec).p_value < 1e-6


def test_corpus_dedups_across_texts() -> None:
    rng = np.random.default_rng(11)
    spec = WatermarkSpec(width=1)
    key = raw_key(8)
    text = sample_text(rng, 60)
    one = detect(text, key, spec)
    many = detect_corpus([text] * 50, key, spec)
    assert many.n_scored == one.n_scored and many.p_value == pytest.approx(one.p_value)


def test_decode_points_to_the_account_with_bonferroni() -> None:
    rng = np.random.default_rng(2)
    spec = WatermarkSpec(width=2)
    accounts = [f"acct-{i}" for i in range(20)]
    keys = [derive_key(MASTER, a, "2026-11") for a in accounts]
    text = sample_text(rng, 150, keys[13], spec)
    res = decode(text, keys, spec)
    assert res.best_key_id == "acct:acct-13@2026-11"
    best = min(r.p_value for r in res.results)
    assert res.p_value == pytest.approx(min(1.0, 20 * best), rel=1e-6)
    plain = decode(sample_text(rng, 150), keys, spec)
    assert plain.best_key_id is None


def test_empty_and_short_texts() -> None:
    spec = WatermarkSpec(width=2)
    r = detect([], raw_key(1), spec)
    assert r.p_value == 1.0 and r.n_scored == 0
    assert detect([1, 2], raw_key(1), spec).p_value == 1.0


def test_log10_p_stays_finite_in_the_deep_tail() -> None:
    from distillwatch.watermark.stats import binomial_log10_sf, gamma_log10_sf

    lp = binomial_log10_sf(3291, 6125, 0.25)
    assert np.isfinite(lp) and lp < -300
    assert binomial_log10_sf(3, 10, 0.25) == pytest.approx(np.log10(sps.binom.sf(2, 10, 0.25)))
    lg = gamma_log10_sf(5000.0, 1000)
    assert np.isfinite(lg) and lg < -300
    assert gamma_log10_sf(12.0, 10) == pytest.approx(np.log10(sps.gamma.sf(12.0, 10)))
