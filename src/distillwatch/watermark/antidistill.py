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
    student: Any, batches: Iterable[dict[str, Any]], eps: float = 1e-4
) -> tuple[Any, Any]:
    """(theta + eps g, theta - eps g) copies of ``student``; ``g`` = unit gradient of its mean
    loss on ``batches`` (dicts of model inputs with ``labels``: the downstream task)."""
    import torch

    student.zero_grad(set_to_none=True)
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

    The students must share the teacher's vocabulary (extra teacher logits get no bias). Each
    step runs both students on the whole sequence (no cache): meant for short answers.
    """

    def __init__(self, plus: Any, minus: Any, lam: float = 1.0, eps: float = 1e-4) -> None:
        self.plus, self.minus, self.lam, self.eps = plus, minus, lam, eps

    def delta(self, input_ids: Any) -> Any:
        import torch

        with torch.no_grad():
            lp = torch.log_softmax(self.plus(input_ids=input_ids).logits[:, -1].float(), -1)
            lm = torch.log_softmax(self.minus(input_ids=input_ids).logits[:, -1].float(), -1)
        return (lp - lm) / (2 * self.eps)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        d = self.delta(input_ids).to(scores.dtype)
        v = min(d.shape[-1], scores.shape[-1])
        out = scores.clone()
        out[:, :v] = out[:, :v] + self.lam * d[:, :v]
        return out
