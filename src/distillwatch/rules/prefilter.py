"""Literal prefilters for rule patterns: which texts a regex could possibly match.

A pattern such as ``\\b(?:show|print)\\b[^.]{0,40}?\\byour\\s+(?:reasoning|thoughts?)\\b`` can only
match a text that contains ``show`` or ``print``, *and* ``your``, *and* ``reasoning`` or
``thought``. Searching a column for a handful of literals (Aho-Corasick) is many times faster
than running the regex over it, and most texts contain none of a rule's rarer words, so
:class:`~distillwatch.rules.model.RuleSet` runs each regex only on the texts that pass its
prefilter. The same idea as RE2's ``FilteredRE2`` and Hyperscan's literal decomposition.

:func:`required_literals` reads a pattern with Python's regex parser (the rule dialect is the
common subset of Rust's and Python's syntax, after the rewrites in :data:`_PORTABLE`) and returns
*factors*: sets of lowercase literals such that every match of the pattern contains at least one
literal of each factor. A pattern it cannot read gets no factors, which only costs speed.

Prefilters search the *lowercased* text for plain lowercase literals: a case-sensitive literal
alternation runs on SIMD literal scanners, several times faster than the same one with ``(?i)``.
For almost every character, a case-insensitive match of a literal implies a match in the
lowercased text; the exceptions are the few characters Unicode case-folds beyond plain
lowercasing (``ſ`` matches ``s``, ``ᲀ`` matches ``в``, Greek symbol variants and final sigma),
listed in :data:`FOLD_EXCEPTIONS`. A text that contains one of them skips the prefilters and
always goes to the regex.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from re import _casefix, _parser  # type: ignore[attr-defined]
from re import _constants as C  # type: ignore[attr-defined]
from typing import Any, Final

MAX_SET: Final = 64
"""Largest set of exact strings tracked for a piece of a pattern (cross products grow fast)."""
MAX_FACTOR: Final = 512
"""Most literals in one factor: one Aho-Corasick pass checks them all, so a long alternation
(every marker of a task-generation prompt) still filters well."""
MIN_LITERAL: Final = 3
"""Literals shorter than this (``a``, ``of``) occur in nearly every text: not used as factors."""
MAX_FACTORS: Final = 4
"""Factors checked per pattern, the most selective first."""

FOLD_EXCEPTIONS: Final[frozenset[str]] = frozenset(
    ch
    for key, others in _casefix._EXTRA_CASES.items()
    for ch in (chr(key), *map(chr, others))
    if not ch.isascii()
) | frozenset("\u0130\u03a3")
"""Non-ASCII characters that case-insensitive matching equates with something other than their
lowercase (CPython's table of Unicode's extra case equivalences), plus ``İ`` and ``Σ``, whose
lowercase depends on context or takes two characters."""

FOLD_EXCEPTION_CLASS: Final = "[" + "".join(sorted(FOLD_EXCEPTIONS)) + "]"
"""A regex character class matching any of :data:`FOLD_EXCEPTIONS`."""

# Rust-only syntax the rules use, rewritten to a Python equivalent that matches the same
# literals (only the literal content matters here; the Rust pattern is what runs).
_PORTABLE: Final = ((re.compile(r"\(\?-u:\\b\)"), r"\\b"), (re.compile(r"\\[pP]\{\w+\}"), "."))

_STOPWORDS: Final = frozenset(
    [
        "the",
        "you",
        "your",
        "and",
        "for",
        "are",
        "all",
        "any",
        "with",
        "that",
        "this",
        "what",
        "how",
        "not",
        "but",
        "can",
        "our",
        "its",
        "will",
    ]
)

Factor = frozenset[str]


@dataclass(frozen=True, slots=True)
class _Info:
    exact: frozenset[str] | None
    """Every string the node can match (lowercase), when that set is small; else None."""
    factors: tuple[Factor, ...]
    """Literal sets every match contains one literal of (conjunction)."""


_ANY = _Info(None, ())
_EMPTY = _Info(frozenset({""}), ())


@lru_cache(maxsize=4096)
def required_literals(pattern: str) -> tuple[Factor, ...]:
    """Factors of ``pattern`` (a case-insensitive rule regex), most selective first; cached
    (every scan asks again for the same patterns).

    >>> required_literals(r"\\bstep[- ]by[- ]step\\b")
    (frozenset({'step by step', 'step-by-step', 'step by-step', 'step-by step'}),)
    >>> [sorted(f) for f in required_literals(r"(?:show|print)\\s+your\\s+(?:reasoning|thoughts?)")]
    [['reasoning', 'thought'], ['print', 'show']]
    >>> required_literals(r"\\w+\\s+\\d")
    ()
    """
    source = pattern
    for regex, replacement in _PORTABLE:
        source = regex.sub(replacement, source)
    try:
        tree = _parser.parse(source)
    except (re.error, RecursionError, OverflowError):
        return ()
    info = _seq(list(tree))
    candidates = list(info.factors)
    if info.exact is not None:
        candidates.append(info.exact)
    usable = {f for f in candidates if _usable(f)}
    ranked = sorted(usable, key=_rank)
    return tuple(ranked[:MAX_FACTORS])


def anchor_factor(anchors: tuple[str, ...]) -> Factor | None:
    """A factor implied by a rule's anchors (literals whose spaces match any whitespace run):
    the longest word of each anchor. None when an anchor has no usable word."""
    words = []
    for anchor in anchors:
        parts = [p.lower() for p in anchor.split() if p]
        if not parts:
            return None
        words.append(max(parts, key=len))
    return frozenset(words) or None


def _usable(factor: Factor) -> bool:
    return bool(factor) and len(factor) <= MAX_FACTOR and min(map(len, factor)) >= MIN_LITERAL


def _rank(factor: Factor) -> tuple[int, int, int, tuple[str, ...]]:
    shortest = min(map(len, factor))
    common = sum(w.strip() in _STOPWORDS for w in factor)
    return (common, -min(shortest, 8), len(factor), tuple(sorted(factor)))


def _best(info: _Info) -> Factor | None:
    candidates = [f for f in (*info.factors, info.exact) if f is not None and _usable(f)]
    return min(candidates, key=_rank) if candidates else None


def _product(left: frozenset[str], right: frozenset[str]) -> frozenset[str] | None:
    if len(left) * len(right) > MAX_SET:
        return None
    return frozenset(a + b for a in left for b in right)


def _seq(items: list[tuple[Any, Any]]) -> _Info:
    factors: list[Factor] = []
    run: frozenset[str] | None = frozenset({""})
    whole = True

    def flush() -> None:
        if run is not None and "" not in run:
            factors.append(run)

    for item in items:
        info = _node(item)
        factors.extend(info.factors)
        if info.exact is None:
            flush()
            run, whole = frozenset({""}), False
            continue
        joined = _product(run, info.exact) if run is not None else None
        if joined is None:
            flush()
            run, whole = info.exact, False
        else:
            run = joined
    flush()
    return _Info(run if whole else None, tuple(factors))


def _node(item: tuple[Any, Any]) -> _Info:
    op, av = item
    if op is C.LITERAL:
        return _Info(frozenset({chr(av).lower()}), ())
    if op is C.AT:
        return _EMPTY
    if op is C.IN:
        return _char_class(av)
    if op is C.SUBPATTERN:
        return _seq(list(av[-1]))
    if op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", None)):
        low, high, inner = av
        info = _seq(list(inner))
        if low == 0:
            if high == 1 and info.exact is not None:
                return _Info(info.exact | {""}, ())
            return _ANY
        if low == high == 1:
            return info
        return _Info(None, info.factors + ((info.exact,) if info.exact is not None else ()))
    if op is C.BRANCH:
        alternatives = [_seq(list(alt)) for alt in av[1]]
        exact: frozenset[str] | None = frozenset()
        for alt in alternatives:
            exact = None if exact is None or alt.exact is None else exact | alt.exact
        if exact is not None and len(exact) > MAX_SET:
            exact = None
        best = [_best(alt) for alt in alternatives]
        if all(b is not None for b in best):
            union = frozenset().union(*best)  # type: ignore[arg-type]
            return _Info(exact, (union,) if len(union) <= MAX_FACTOR else ())
        return _Info(exact, ())
    return _ANY  # ANY, CATEGORY, NOT_LITERAL, GROUPREF, lookarounds: no literal content


def _char_class(items: list[tuple[Any, Any]]) -> _Info:
    chars: set[str] = set()
    for op, av in items:
        if op is C.LITERAL:
            chars.add(chr(av).lower())
        elif op is C.RANGE and av[1] - av[0] < 16:
            chars.update(chr(c).lower() for c in range(av[0], av[1] + 1))
        else:
            return _ANY
    return _Info(frozenset(chars), ()) if 0 < len(chars) <= 16 else _ANY
