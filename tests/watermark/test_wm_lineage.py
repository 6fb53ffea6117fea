"""Lineage test: derived suspects are found, unrelated ones are not; multiple testing."""

from __future__ import annotations

import random

from distillwatch.watermark.lineage import PROBES, lineage_battery, lineage_test, sign_test

WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "runs",
    "fast",
    "slow",
    "bright",
    "dark",
    "river",
    "mountain",
    "blue",
    "green",
    "seven",
    "apples",
    "because",
    "whenever",
    "quietly",
    "loudly",
    "music",
    "paper",
    "stone",
    "window",
    "garden",
]


def model(seed: int, n: int = len(PROBES)) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(20)) for _ in range(n)]


def perturb(texts: list[str], rate: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(w if rng.random() > rate else rng.choice(WORDS) for w in t.split()) for t in texts
    ]


def test_derived_suspect_is_detected_with_few_probes() -> None:
    ours = model(1)
    refs = {"ref-a": model(2), "ref-b": model(3)}
    res = lineage_test(perturb(ours, 0.3, 9), ours, refs)
    assert res.p_value < 1e-6 and res.probes_needed is not None and res.probes_needed <= 15
    assert res.mean_sim_ours > max(res.mean_sim_reference.values())


def test_suspect_derived_from_a_reference_is_not_attributed_to_us() -> None:
    ours = model(1)
    refs = {"ref-a": model(2), "ref-b": model(3)}
    res = lineage_test(perturb(refs["ref-a"], 0.3, 4), ours, refs)
    assert res.p_value > 0.5 and res.probes_needed is None


def test_battery_holm_adjusts() -> None:
    ours = model(1)
    refs = {"ref": model(2)}
    out = lineage_battery({"derived": perturb(ours, 0.2, 1), "other": model(5)}, ours, refs)
    (d, d_adj), (o, o_adj) = out
    assert d_adj >= d.p_value and d_adj < 1e-6 and o_adj >= o.p_value


def test_sign_test_is_exact() -> None:
    import numpy as np

    assert sign_test(np.array([1.0] * 10)) == 0.5**10
    assert sign_test(np.zeros(5)) == 1.0
