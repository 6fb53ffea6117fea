"""Watermark detection on token ids with exact p-values (numpy/scipy only).

Following "Three Bricks" (Fernandez et al., 2023): every distinct (context, token) tuple is
scored once, and tuples that also occur in the prompt are skipped, so repeated n-grams cannot
inflate significance and the Binomial / Gamma tails are exact under the null.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from distillwatch.core.values import Evidence
from distillwatch.watermark import stats
from distillwatch.watermark.hashing import (
    context_hash,
    exact_gamma,
    tuple_ids,
    tuple_uniform,
    windows,
)
from distillwatch.watermark.keys import WatermarkKey
from distillwatch.watermark.spec import WatermarkSpec


@dataclass(frozen=True, slots=True)
class DetectionResult:
    """The verdict of one key on one text (or one pooled corpus).

    ``score`` is the green count (KGW) or the sum of ``-log(1-u)`` (Gumbel) over the
    ``n_scored`` distinct tuples; ``expected`` is its mean under the null. ``log10_p`` stays
    finite where ``p_value`` underflows to 0.
    """

    scheme: str
    key_id: str
    p_value: float
    log10_p: float
    score: float
    expected: float
    n_tokens: int
    n_scored: int
    n_repeated: int
    n_in_prompt: int
    evidence: tuple[Evidence, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "scheme": self.scheme,
            "key_id": self.key_id,
            "p_value": self.p_value,
            "log10_p": self.log10_p,
            "score": self.score,
            "expected": self.expected,
            "n_tokens": self.n_tokens,
            "n_scored": self.n_scored,
            "n_repeated": self.n_repeated,
            "n_in_prompt": self.n_in_prompt,
            "evidence": [
                {
                    "signal": e.signal,
                    "value": e.value,
                    "baseline": e.baseline,
                    "weight": e.weight,
                    "source": e.source,
                }
                for e in self.evidence
            ],
        }


@dataclass(frozen=True, slots=True)
class Tuples:
    """Scorable (context, token) tuples of one or more texts, before deduplication."""

    contexts: np.ndarray  # (n, width) int64
    tokens: np.ndarray  # (n,) int64

    @property
    def size(self) -> int:
        return int(self.tokens.size)


def text_tuples(
    ids: Sequence[int] | np.ndarray, width: int, prompt_ids: Sequence[int] | None = None
) -> Tuples:
    """Tuples of an answer; with its prompt, the first tokens use the prompt's tail as context."""
    answer = np.asarray(ids, dtype=np.int64).ravel()
    if prompt_ids is not None and len(prompt_ids) and width:
        tail = np.asarray(prompt_ids, dtype=np.int64).ravel()[-width:]
        ctx, tok = windows(np.concatenate([tail, answer]), width)
    else:
        ctx, tok = windows(answer, width)
    return Tuples(ctx, tok)


def concat_tuples(parts: Iterable[Tuples], width: int) -> Tuples:
    parts = list(parts)
    if not parts:
        return Tuples(np.zeros((0, width), dtype=np.int64), np.zeros(0, dtype=np.int64))
    return Tuples(
        np.concatenate([p.contexts for p in parts]), np.concatenate([p.tokens for p in parts])
    )


def unique_mask(tuples: Tuples, exclude: np.ndarray | None = None) -> tuple[np.ndarray, int, int]:
    """Boolean mask keeping the first occurrence of each tuple not in ``exclude`` (tuple ids).

    Returns (mask, n_repeated, n_excluded).
    """
    if tuples.size == 0:
        return np.zeros(0, dtype=bool), 0, 0
    tid = tuple_ids(tuples.contexts, tuples.tokens)
    keep = np.ones(tid.size, dtype=bool)
    n_excluded = 0
    if exclude is not None and exclude.size:
        hit = np.isin(tid, exclude)
        n_excluded = int(hit.sum())
        keep &= ~hit
    _, first = np.unique(tid, return_index=True)
    is_first = np.zeros(tid.size, dtype=bool)
    is_first[first] = True
    n_repeated = int((keep & ~is_first).sum())
    return keep & is_first, n_repeated, n_excluded


def prompt_tuple_ids(prompt_ids: Sequence[int] | None, width: int) -> np.ndarray:
    """Ids of the tuples (windows of ``width + 1`` tokens) that occur in a prompt."""
    if prompt_ids is None or len(prompt_ids) <= width:
        return np.zeros(0, dtype=np.uint64)
    ctx, tok = windows(np.asarray(prompt_ids), width)
    return tuple_ids(ctx, tok)


def uniforms(key: WatermarkKey | int, tuples: Tuples) -> np.ndarray:
    """The keyed uniform ``u`` of every tuple (no dedup)."""
    value = key.value if isinstance(key, WatermarkKey) else int(key)
    return tuple_uniform(context_hash(value, tuples.contexts), tuples.tokens)


def score_tuples(
    tuples: Tuples,
    key: WatermarkKey,
    spec: WatermarkSpec,
    *,
    exclude: np.ndarray | None = None,
    n_tokens: int | None = None,
    dedup: bool = True,
    signal: str = "watermark",
) -> DetectionResult:
    """Score tuples with one key: dedup, drop excluded (prompt) tuples, exact tail p-value."""
    if dedup:
        mask, n_rep, n_exc = unique_mask(tuples, exclude)
    else:
        mask, n_rep, n_exc = np.ones(tuples.size, dtype=bool), 0, 0
    kept = Tuples(tuples.contexts[mask], tuples.tokens[mask])
    u = uniforms(key, kept)
    n = int(u.size)
    if spec.scheme == "kgw":
        g = exact_gamma(spec.gamma)
        score = float(np.count_nonzero(u < g))
        expected = g * n
        log10_p = stats.binomial_log10_sf(int(score), n, g)
        observed, baseline, name = (score / n if n else 0.0), g, f"{signal}/green-fraction"
    else:
        score = float(-np.log1p(-u).sum())
        expected = float(n)
        log10_p = stats.gamma_log10_sf(score, n)
        observed, baseline, name = (score / n if n else 0.0), 1.0, f"{signal}/mean-exp-score"
    evidence = (
        Evidence(
            signal=name, value=observed, baseline=baseline, weight=abs(log10_p), source=spec.source
        ),
        Evidence(
            signal=f"{signal}/tuples-scored",
            value=float(n),
            baseline=0.0,
            weight=0.0,
            source=spec.source,
        ),
    )
    return DetectionResult(
        scheme=spec.scheme,
        key_id=key.key_id,
        p_value=stats.to_p(log10_p),
        log10_p=log10_p,
        score=score,
        expected=expected,
        n_tokens=tuples.size if n_tokens is None else n_tokens,
        n_scored=n,
        n_repeated=n_rep,
        n_in_prompt=n_exc,
        evidence=evidence,
    )


def detect(
    ids: Sequence[int] | np.ndarray,
    key: WatermarkKey,
    spec: WatermarkSpec,
    *,
    prompt_ids: Sequence[int] | None = None,
    dedup: bool = True,
) -> DetectionResult:
    """Test one text (token ids) for the watermark of ``key``.

    With ``prompt_ids`` the answer's first tokens are scored in the prompt's context (as they
    were generated) and tuples occurring in the prompt are skipped.
    """
    tuples = text_tuples(ids, spec.width, prompt_ids)
    exclude = prompt_tuple_ids(prompt_ids, spec.width)
    return score_tuples(tuples, key, spec, exclude=exclude, n_tokens=len(ids), dedup=dedup)


def detect_corpus(
    texts: Sequence[Sequence[int]],
    key: WatermarkKey,
    spec: WatermarkSpec,
    *,
    prompts: Sequence[Sequence[int] | None] | None = None,
) -> DetectionResult:
    """Pool several texts into one test, deduplicating tuples across all of them."""
    prompts = prompts if prompts is not None else [None] * len(texts)
    tuples = concat_tuples(
        (text_tuples(t, spec.width, p) for t, p in zip(texts, prompts, strict=True)), spec.width
    )
    excl = [prompt_tuple_ids(p, spec.width) for p in prompts if p is not None]
    exclude = np.concatenate(excl) if excl else None
    return score_tuples(tuples, key, spec, exclude=exclude, n_tokens=sum(len(t) for t in texts))


@dataclass(frozen=True, slots=True)
class Attribution:
    """Which of several candidate keys (accounts) marked a text, corrected for the candidates."""

    best_key_id: str | None
    p_value: float  # Bonferroni-adjusted p of the best candidate
    log10_p: float
    n_candidates: int
    results: tuple[DetectionResult, ...]


def decode(
    ids_or_texts: Sequence[int] | Sequence[Sequence[int]],
    candidates: Sequence[WatermarkKey],
    spec: WatermarkSpec,
    *,
    alpha: float = 1e-3,
    prompt_ids: Sequence[int] | None = None,
) -> Attribution:
    """Decode the multi-bit payload: test every candidate key, Bonferroni over candidates.

    ``best_key_id`` is None when no candidate is significant at ``alpha`` after correction.
    """
    if not candidates:
        raise ValueError("no candidate keys")
    first = ids_or_texts[0] if len(ids_or_texts) else 0
    if isinstance(first, (list, tuple, np.ndarray)):
        results = [detect_corpus(ids_or_texts, k, spec) for k in candidates]  # type: ignore[arg-type]
    else:
        results = [detect(ids_or_texts, k, spec, prompt_ids=prompt_ids) for k in candidates]  # type: ignore[arg-type]
    m = len(candidates)
    best = min(results, key=lambda r: r.log10_p)
    log10_adj = min(0.0, best.log10_p + math.log10(m))
    p_adj = stats.to_p(log10_adj)
    return Attribution(
        best_key_id=best.key_id if p_adj <= alpha else None,
        p_value=p_adj,
        log10_p=log10_adj,
        n_candidates=m,
        results=tuple(results),
    )
