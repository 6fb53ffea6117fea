"""Generation-time watermarks as transformers ``LogitsProcessor`` s (torch imported lazily).

The green list / uniforms come from :mod:`distillwatch.watermark.hashing` (numpy), so what the
processor embeds is exactly what :func:`distillwatch.watermark.detect.detect` scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from distillwatch.watermark.hashing import exact_gamma, vocab_uniform
from distillwatch.watermark.keys import WatermarkKey
from distillwatch.watermark.spec import WatermarkSpec


def _torch() -> Any:
    import torch

    return torch


class KGWLogitsProcessor:
    """Add ``delta`` to the logits of green tokens (self-hash over the last ``width`` tokens).

    Rows whose sequence is still shorter than ``width`` are left untouched (detection cannot
    score them either). Callable like a transformers ``LogitsProcessor``.
    """

    def __init__(self, key: WatermarkKey, spec: WatermarkSpec) -> None:
        if spec.scheme != "kgw":
            raise ValueError("KGWLogitsProcessor needs a kgw spec")
        self.key = key
        self.spec = spec
        self._gamma = exact_gamma(spec.gamma)

    def green_mask(self, input_ids: Any, vocab_size: int) -> np.ndarray:
        """(batch, vocab) boolean green mask for the next token of each row."""
        ids = input_ids.detach().cpu().numpy()
        w = self.spec.width
        ctx = ids[:, ids.shape[1] - w :] if w else np.zeros((ids.shape[0], 0), dtype=np.int64)
        return vocab_uniform(self.key.value, ctx, vocab_size) < self._gamma

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = _torch()
        if input_ids.shape[1] < self.spec.width:
            return scores
        mask = torch.from_numpy(self.green_mask(input_ids, scores.shape[-1])).to(scores.device)
        return scores + self.spec.delta * mask.to(scores.dtype)


class GumbelLogitsProcessor:
    """Aaronson's exponential-minimum sampling: pick argmax ``log(u_t) / p_t``; mask the rest.

    Put it last (after temperature / top-p), since it turns the distribution into a choice.
    """

    def __init__(self, key: WatermarkKey, spec: WatermarkSpec) -> None:
        if spec.scheme != "gumbel":
            raise ValueError("GumbelLogitsProcessor needs a gumbel spec")
        self.key = key
        self.spec = spec

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = _torch()
        if input_ids.shape[1] < self.spec.width:
            return scores
        ids = input_ids.detach().cpu().numpy()
        w = self.spec.width
        ctx = ids[:, ids.shape[1] - w :] if w else np.zeros((ids.shape[0], 0), dtype=np.int64)
        u = vocab_uniform(self.key.value, ctx, scores.shape[-1])
        probs = torch.softmax(scores.float(), dim=-1).cpu().numpy()
        with np.errstate(divide="ignore"):
            rank = np.log(np.maximum(u, 1e-300)) / probs
        choice = torch.from_numpy(np.argmax(rank, axis=-1)).to(scores.device)
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(scores.shape[0], device=scores.device), choice] = 0.0
        return out


def processor_for(key: WatermarkKey, spec: WatermarkSpec) -> Any:
    """The logits processor that embeds ``spec`` under ``key``."""
    if spec.scheme == "kgw":
        return KGWLogitsProcessor(key, spec)
    return GumbelLogitsProcessor(key, spec)
