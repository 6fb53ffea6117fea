"""Antidistillation sampling (Savani et al., NeurIPS 2025) for self-served models (torch).

Where a proxy student is available, bias the teacher's next-token logits by ``lam * Delta(x)``,
where ``Delta(x)`` is the finite-difference directional derivative of the proxy student's
log-probability of ``x`` along the gradient ``g`` of the student's downstream loss:

    Delta(x) = [log p_S(x; theta + eps g) - log p_S(x; theta - eps g)] / (2 eps)

A student that takes a gradient step towards a sampled token ``x`` changes its downstream loss by
about ``eta * <g, grad log p_S(x)>`` = ``eta * Delta(x)``: favouring large ``Delta`` makes the
harvested text poison the distillation while the teacher's own distribution moves by ``lam``.
``g`` is normalised to unit length, so ``eps`` is a step length in parameter space.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any


def perturbed_pair(
    student: Any,
    batches: Iterable[dict[str, Any]],
    eps: float = 1e-4,
    *,
    random_seed: int | None = None,
) -> tuple[Any, Any]:
    """(theta + eps g, theta - eps g) copies of ``student``; ``g`` = unit gradient of its mean
    loss on ``batches`` (dicts of model inputs with ``labels``: the downstream task).

    ``random_seed`` set: ``g`` is instead a random unit direction (Gaussian, over the trainable
    parameters; ``batches`` are not read) — the control that perturbs the teacher as much but
    not towards the student's loss.
    """
    import torch

    student.zero_grad(set_to_none=True)
    if random_seed is not None:
        gen = torch.Generator().manual_seed(random_seed)
        for p in student.parameters():
            if p.requires_grad:
                p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
    else:
        n = 0
        for batch in batches:
            loss = student(**batch).loss
            loss.backward()
            n += 1
        if n == 0:
            raise ValueError("no downstream batches")
    grads = [p.grad for p in student.parameters() if p.grad is not None]
    norm = torch.sqrt(sum((g.float() ** 2).sum() for g in grads)) + 1e-12
    plus, minus = copy.deepcopy(student), copy.deepcopy(student)
    with torch.no_grad():
        for p_src, p_plus, p_minus in zip(
            student.parameters(), plus.parameters(), minus.parameters(), strict=True
        ):
            if p_src.grad is None:
                continue
            step = eps * p_src.grad / norm
            p_plus.add_(step)
            p_minus.sub_(step)
    student.zero_grad(set_to_none=True)
    plus.eval()
    minus.eval()
    return plus, minus


class AntidistillationProcessor:
    """Logits processor adding ``lam * Delta`` from a perturbed proxy-student pair.

    The students must share the teacher's vocabulary (extra teacher logits get no bias). With
    ``cache`` (default) the students keep their key/value caches between generation steps and
    read only the new token when ``input_ids`` extends the previous call's by one; anything else
    (a new batch) runs them on the whole sequence.
    """

    def __init__(
        self, plus: Any, minus: Any, lam: float = 1.0, eps: float = 1e-4, cache: bool = True
    ) -> None:
        self.plus, self.minus, self.lam, self.eps, self.cache = plus, minus, lam, eps, cache
        self._seen: Any = None
        self._past: tuple[Any, Any] | None = None

    def _logits(self, input_ids: Any) -> tuple[Any, Any]:
        import torch

        seen, past = self._seen, self._past
        step = (
            self.cache
            and past is not None
            and seen.shape[0] == input_ids.shape[0]
            and seen.shape[1] + 1 == input_ids.shape[1]
            and torch.equal(seen, input_ids[:, :-1])
        )
        with torch.no_grad():
            if step:
                assert past is not None
                new = input_ids[:, -1:]
                p = self.plus(input_ids=new, past_key_values=past[0], use_cache=True)
                m = self.minus(input_ids=new, past_key_values=past[1], use_cache=True)
            else:
                p = self.plus(input_ids=input_ids, use_cache=self.cache)
                m = self.minus(input_ids=input_ids, use_cache=self.cache)
        if self.cache:
            self._seen, self._past = input_ids.clone(), (p.past_key_values, m.past_key_values)
        return p.logits[:, -1].float(), m.logits[:, -1].float()

    def delta(self, input_ids: Any) -> Any:
        import torch

        lp_logits, lm_logits = self._logits(input_ids)
        lp = torch.log_softmax(lp_logits, -1)
        lm = torch.log_softmax(lm_logits, -1)
        return (lp - lm) / (2 * self.eps)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        d = self.delta(input_ids).to(scores.dtype)
        v = min(d.shape[-1], scores.shape[-1])
        out = scores.clone()
        out[:, :v] = out[:, :v] + self.lam * d[:, :v]
        return out
