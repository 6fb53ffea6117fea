"""Values that cross package boundaries: evidence and findings. Frozen and slotted."""

from __future__ import annotations

from dataclasses import dataclass

TIERS = ("allow", "watch", "throttle", "block")


@dataclass(frozen=True, slots=True)
class Evidence:
    """One reason behind a score: what was seen, what is normal, how much it moved the score.

    ``weight`` is the signal's additive contribution to the log-odds of distillation;
    ``source`` names what produced it (``rule:intent/cot-elicitation@1``,
    ``detector:account-gbm@1``).
    """

    signal: str
    value: float
    baseline: float
    weight: float
    source: str


@dataclass(frozen=True, slots=True)
class Finding:
    """The verdict on one account (or, later, one cluster)."""

    subject: str
    score: float
    tier: str
    evidence: tuple[Evidence, ...]
