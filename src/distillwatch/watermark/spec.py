"""What a watermark is: scheme and parameters, stored beside every key so detection matches."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from distillwatch.core.errors import DistillwatchError

SCHEMES = ("kgw", "gumbel")


@dataclass(frozen=True, slots=True)
class WatermarkSpec:
    """A generation-time watermark's parameters.

    ``kgw``: keyed green list (Kirchenbauer et al.), self-hash form: the token at a position is
    green when the keyed hash of (previous ``width`` tokens, token) maps below ``gamma``; green
    logits get ``+delta``. ``gumbel``: Aaronson's exponential-minimum sampling over the same hash
    (distortion-free, deterministic given the context); ``gamma``/``delta`` are unused.
    """

    scheme: str = "kgw"
    gamma: float = 0.25
    delta: float = 2.0
    width: int = 2

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise DistillwatchError(f"unknown scheme {self.scheme!r}; one of {SCHEMES}")
        if not 0.0 < self.gamma < 1.0:
            raise DistillwatchError("gamma must be in (0, 1)")
        if self.delta < 0:
            raise DistillwatchError("delta must be >= 0")
        if not 0 <= self.width <= 16:
            raise DistillwatchError("width (context tokens) must be in 0..16")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WatermarkSpec:
        known = {k: data[k] for k in ("scheme", "gamma", "delta", "width") if k in data}
        return cls(**known)

    @property
    def source(self) -> str:
        """Provenance tag for evidence items."""
        return f"detector:watermark-{self.scheme}@1"
