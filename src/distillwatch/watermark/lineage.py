"""Lineage without a watermark: is a suspect derived from our model rather than from references?

In the spirit of Model Provenance Testing (NeurIPS 2025) and LLMmap: query the suspect, our
model and each reference model with the same probe battery (greedy decoding), and ask, probe by
probe, whether the suspect's answer is closer to ours than to a reference's. An exact one-sided
sign test per reference gives p_j; the suspect is called derived from ours only if it is closer
to ours than to *every* reference (intersection-union: p = max_j p_j). Several suspects or
candidate parents are corrected with Holm. Only black-box text access is needed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from distillwatch.core.values import Evidence
from distillwatch.watermark.stats import holm

PROBES: tuple[str, ...] = (
    "Complete the sentence: The old lighthouse keeper looked at the sea and",
    "List four uses for a paperclip.",
    "Write one sentence about autumn.",
    "What is a good name for a grey cat?",
    "Explain what a prime number is in one sentence.",
    "Give a synonym for 'happy'.",
    "Translate 'good morning' into French.",
    "What should I pack for a day at the beach?",
    "Write a two-line poem about coffee.",
    "Describe the colour blue to someone who cannot see.",
    "What is 17 plus 25?",
    "Name three countries in South America.",
    "Why do leaves change colour?",
    "Suggest a title for a story about a lost robot.",
    "How do you make a cup of tea?",
    "What is the opposite of 'ancient'?",
    "Give me a fun fact about octopuses.",
    "Write a short slogan for a bakery.",
    "What does a compiler do?",
    "Continue: Once upon a time, in a village by the river,",
    "Summarise the plot of Cinderella in one sentence.",
    "What are the primary colours?",
    "Describe a thunderstorm in one sentence.",
    "How many legs does a spider have?",
    "Recommend a hobby for a rainy day.",
    "What is the capital of Australia?",
    "Write a polite email opening line.",
    "Explain gravity to a child.",
    "List three things found in a kitchen.",
    "What is the boiling point of water in Fahrenheit?",
    "Give a tip for learning a new language.",
    "Invent a name for a new planet.",
    "What is the plural of 'mouse'?",
    "Write a riddle about time.",
    "Describe the taste of a lemon.",
    "What is photosynthesis, briefly?",
    "Give an example of a renewable energy source.",
    "Write a haiku about snow.",
    "Why is exercise important?",
    "Finish the phrase: Actions speak louder than",
)

_WORD = re.compile(r"\w+|[^\w\s]")


def ngram_set(text: str, n_max: int = 3) -> set[tuple[str, ...]]:
    """Lower-cased word 1..n_max-grams of a text."""
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for n in range(1, n_max + 1) for i in range(len(words) - n + 1)}


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of word 1-3-gram sets (1.0 for two empty texts).

    >>> similarity("the cat sat", "the cat sat"), round(similarity("the cat", "a dog"), 2)
    (1.0, 0.0)
    """
    sa, sb = ngram_set(a), ngram_set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def sign_test(diffs: np.ndarray) -> float:
    """Exact one-sided sign test p-value for 'median difference > 0' (ties dropped)."""
    from scipy import stats as sps  # lazily: the package imports without scipy

    pos = int(np.sum(diffs > 0))
    n = pos + int(np.sum(diffs < 0))
    if n == 0:
        return 1.0
    return float(sps.binom.sf(pos - 1, n, 0.5))


@dataclass(frozen=True, slots=True)
class LineageResult:
    """Verdict on one suspect: is it closer to ours than to every reference?"""

    suspect: str
    p_value: float  # intersection-union over references
    p_per_reference: Mapping[str, float]
    n_probes: int
    probes_needed: int | None  # first n at which p <= alpha (probes in battery order)
    mean_sim_ours: float
    mean_sim_reference: Mapping[str, float]
    evidence: tuple[Evidence, ...]


def lineage_test(
    suspect: Sequence[str],
    ours: Sequence[str],
    references: Mapping[str, Sequence[str]],
    *,
    name: str = "suspect",
    alpha: float = 1e-3,
) -> LineageResult:
    """Test one suspect from its, our and the references' answers to the same probes."""
    n = len(suspect)
    if n == 0 or len(ours) != n or any(len(r) != n for r in references.values()):
        raise ValueError("every model must answer the same, non-empty probe battery")
    if not references:
        raise ValueError("at least one reference model is needed")
    s_ours = np.array([similarity(s, o) for s, o in zip(suspect, ours, strict=True)])
    per_ref: dict[str, float] = {}
    mean_ref: dict[str, float] = {}
    diffs: dict[str, np.ndarray] = {}
    for ref_name, answers in references.items():
        s_ref = np.array([similarity(s, r) for s, r in zip(suspect, answers, strict=True)])
        diffs[ref_name] = s_ours - s_ref
        per_ref[ref_name] = sign_test(diffs[ref_name])
        mean_ref[ref_name] = float(s_ref.mean())
    p = max(per_ref.values())
    needed = None
    for k in range(1, n + 1):
        if max(sign_test(d[:k]) for d in diffs.values()) <= alpha:
            needed = k
            break
    evidence = (
        Evidence(
            "lineage/similarity-to-ours",
            float(s_ours.mean()),
            max(mean_ref.values()),
            -math.log10(max(p, 1e-300)),
            "detector:lineage@1",
        ),
    )
    return LineageResult(name, p, per_ref, n, needed, float(s_ours.mean()), mean_ref, evidence)


def lineage_battery(
    suspects: Mapping[str, Sequence[str]],
    ours: Sequence[str],
    references: Mapping[str, Sequence[str]],
    *,
    alpha: float = 1e-3,
) -> list[tuple[LineageResult, float]]:
    """Test several suspects; each result comes with its Holm-adjusted p-value."""
    results = [lineage_test(a, ours, references, name=k, alpha=alpha) for k, a in suspects.items()]
    adjusted: list[float] = [float(x) for x in holm([r.p_value for r in results])]
    return list(zip(results, adjusted, strict=True))


def ask_all(ask: Callable[[str], str], probes: Sequence[str] = PROBES) -> list[str]:
    """One answer per probe from a black-box model."""
    return [ask(p) for p in probes]
