"""Radioactivity (Sander et al., NeurIPS 2024): was a suspect model trained on our watermarked text?

Two tests, both reducing to :func:`distillwatch.watermark.detect.score_tuples` on deduplicated
(context, token) tuples so the Binomial / Gamma tails stay exact:

- closed mode: text sampled from the suspect (an API); keep tuples whose *context* window was
  frequent in what we served (the student learnt the green lists of those contexts), dedup.
  Filtering on the context only, never on the scored token, keeps the null exact: which
  contexts we served does not depend on the green status of what follows them.
- open mode: the suspect's top-1 next-token predictions under teacher forcing. Read them on
  *key-independent* text (our unwatermarked answers, public text): then (context, prediction)
  is independent of the key under the null and the test is exact, for any suspect, including
  one that shares our base model; the same served-context filter applies. Read on our
  *watermarked* texts, the positions where the prediction equals the served token ("echo") must
  be dropped, or a model that merely shares our base model reproduces our green choices and
  looks radioactive; dropping them is valid but strongly conservative (the served token was
  often chosen *because* it was green, so the remaining predictions lean red): measured in
  bench/exp_radioactivity.py, kept for suspects that do not share our base.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from distillwatch.core.values import Evidence
from distillwatch.watermark.detect import (
    DetectionResult,
    Tuples,
    concat_tuples,
    prompt_tuple_ids,
    score_tuples,
    text_tuples,
)
from distillwatch.watermark.hashing import context_ids
from distillwatch.watermark.keys import WatermarkKey
from distillwatch.watermark.spec import WatermarkSpec


@dataclass(frozen=True, slots=True)
class RadioactivityResult:
    """The radioactivity test of one suspect under one key, with how the tuples were chosen."""

    mode: str  # "closed" | "open"
    detection: DetectionResult
    n_candidate_tuples: int  # before filtering
    n_filtered_out: int
    filter: str
    evidence: tuple[Evidence, ...]

    @property
    def p_value(self) -> float:
        return self.detection.p_value

    @property
    def log10_p(self) -> float:
        return self.detection.log10_p


def served_context_counts(
    served: Sequence[Sequence[int]],
    spec: WatermarkSpec,
    prompts: Sequence[Sequence[int] | None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Context-window ids seen in what we served (watermarked answers) and how often."""
    prompts = prompts if prompts is not None else [None] * len(served)
    tuples = concat_tuples(
        (text_tuples(t, spec.width, p) for t, p in zip(served, prompts, strict=True)), spec.width
    )
    if tuples.size == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    ids, counts = np.unique(context_ids(tuples.contexts), return_counts=True)
    return ids, counts


def closed_mode(
    suspect_texts: Sequence[Sequence[int]],
    key: WatermarkKey,
    spec: WatermarkSpec,
    *,
    served_contexts: tuple[np.ndarray, np.ndarray] | None = None,
    min_count: int = 1,
    suspect_prompts: Sequence[Sequence[int] | None] | None = None,
) -> RadioactivityResult:
    """Score text sampled from the suspect; optionally keep only contexts we served >= min_count.

    ``suspect_texts`` are token ids under *our* tokenizer (re-tokenise API answers first).
    """
    prompts = suspect_prompts if suspect_prompts is not None else [None] * len(suspect_texts)
    tuples = concat_tuples((text_tuples(t, spec.width, None) for t in suspect_texts), spec.width)
    n_all = tuples.size
    label = "none"
    if served_contexts is not None:
        ids, counts = served_contexts
        frequent = ids[counts >= min_count]
        keep = np.isin(context_ids(tuples.contexts), frequent)
        tuples = Tuples(tuples.contexts[keep], tuples.tokens[keep])
        label = f"served-context>={min_count}"
    excl = [prompt_tuple_ids(p, spec.width) for p in prompts if p is not None]
    exclude = np.concatenate(excl) if excl else None
    det = score_tuples(tuples, key, spec, exclude=exclude, signal="radioactivity/closed")
    return _result("closed", det, n_all, n_all - tuples.size, label, spec)


def open_mode_tuples(
    texts: Sequence[Sequence[int]],
    predictions: Sequence[Sequence[int]],
    spec: WatermarkSpec,
    *,
    prompts: Sequence[Sequence[int] | None] | None = None,
    drop_echo: bool = True,
) -> tuple[Tuples, int]:
    """(context, predicted token) tuples from a suspect's top-1 predictions on our texts.

    ``predictions[i][j]`` is the suspect's argmax for position j of answer i given everything
    before it; returns the tuples and how many echo positions were dropped.
    """
    prompts = prompts if prompts is not None else [None] * len(texts)
    parts: list[Tuples] = []
    n_echo = 0
    for answer, pred, prompt in zip(texts, predictions, prompts, strict=True):
        actual = text_tuples(answer, spec.width, prompt)
        n = actual.size
        pred_arr = np.asarray(pred, dtype=np.int64)[-n:] if n else np.zeros(0, dtype=np.int64)
        if pred_arr.size != n:
            raise ValueError("one prediction per scorable answer position is needed")
        keep = pred_arr != actual.tokens if drop_echo else np.ones(n, dtype=bool)
        n_echo += int(n - keep.sum())
        parts.append(Tuples(actual.contexts[keep], pred_arr[keep]))
    return concat_tuples(parts, spec.width), n_echo


def open_mode(
    texts: Sequence[Sequence[int]],
    predictions: Sequence[Sequence[int]],
    key: WatermarkKey,
    spec: WatermarkSpec,
    *,
    prompts: Sequence[Sequence[int] | None] | None = None,
    drop_echo: bool = True,
    served_contexts: tuple[np.ndarray, np.ndarray] | None = None,
    min_count: int = 1,
) -> RadioactivityResult:
    """Score a suspect's top-1 predictions on ``texts`` (white-box access).

    ``texts`` should be key-independent (unwatermarked) for an exact, powerful test; on our
    watermarked texts keep ``drop_echo`` (see the module docstring).
    """
    tuples, n_echo = open_mode_tuples(
        texts, predictions, spec, prompts=prompts, drop_echo=drop_echo
    )
    n_all = tuples.size + n_echo
    label = "drop-echo" if drop_echo else "keep-echo"
    if served_contexts is not None:
        ids, counts = served_contexts
        keep = np.isin(context_ids(tuples.contexts), ids[counts >= min_count])
        tuples = Tuples(tuples.contexts[keep], tuples.tokens[keep])
        label += f",served-context>={min_count}"
    det = score_tuples(tuples, key, spec, signal="radioactivity/open")
    return _result("open", det, n_all, n_all - tuples.size, label, spec)


def _result(
    mode: str, det: DetectionResult, n_all: int, n_out: int, label: str, spec: WatermarkSpec
) -> RadioactivityResult:
    evidence = (
        *det.evidence,
        Evidence(
            signal=f"radioactivity/{mode}/filtered-out",
            value=float(n_out),
            baseline=float(n_all),
            weight=0.0,
            source=spec.source,
        ),
    )
    return RadioactivityResult(mode, det, n_all, n_out, label, evidence)


def top1_predictions(
    model: Any,
    prompts: Sequence[Sequence[int]],
    answers: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    pad_id: int = 0,
) -> tuple[list[list[int]], list[float]]:
    """Teacher-forced top-1 predictions for every answer position, and each answer's mean NLL.

    Needs torch; the NLL is the perplexity numerator used by the quality benchmark.
    """
    import torch

    preds: list[list[int]] = []
    nlls: list[float] = []
    for start in range(0, len(answers), batch_size):
        rows = [
            list(p) + list(a)
            for p, a in zip(
                prompts[start : start + batch_size],
                answers[start : start + batch_size],
                strict=True,
            )
        ]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits, dim=-1)
        top = logits.argmax(dim=-1)
        for i, (p, a) in enumerate(
            zip(
                prompts[start : start + batch_size],
                answers[start : start + batch_size],
                strict=True,
            )
        ):
            lp, la = len(p), len(a)
            positions = torch.arange(lp - 1, lp + la - 1)
            preds.append(top[i, positions].tolist())
            if la:
                target = torch.tensor(list(a))
                nlls.append(float(-logp[i, positions, target].mean()))
            else:
                nlls.append(float("nan"))
    return preds, nlls
