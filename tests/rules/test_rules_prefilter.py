"""Literal prefilters: the fast DataFrame path of RuleSet.signals must equal the plain regexes."""

from __future__ import annotations

import random
import re
from pathlib import Path

import polars as pl
import pytest

from distillwatch.rules import RuleSet, load_rules
from distillwatch.rules.golden import FILES, folder_name, parse_examples
from distillwatch.rules.prefilter import FOLD_EXCEPTIONS, anchor_factor, required_literals

GOLDEN = Path(__file__).parent / "golden"
RULES = load_rules()


def _golden_texts() -> list[str]:
    texts = []
    for rule in RULES:
        for name in FILES:
            path = GOLDEN / folder_name(rule.id) / name
            texts += [e.text for e in parse_examples(path.read_text(encoding="utf-8"))]
    return texts


def _variants(text: str, rng: random.Random) -> list[str]:
    """Case and Unicode variants a prefilter could get wrong: upper case, the long s and the
    Kelvin sign (which case-insensitive regexes equate with s and k), title case."""
    return [
        text,
        text.upper(),
        text.title(),
        text.replace("s", "\u017f"),
        text.replace("k", "\u212a").replace("K", "\u212a"),
        " ".join(rng.sample(text.split(), k=len(text.split()))),  # same words, any order
    ]


def _both_paths(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    fast = RULES.signals(frame).select(RULES.columns)
    plain = RULES.signals(frame.lazy()).collect().select(RULES.columns)  # one regex per pattern
    return fast, plain


def test_fast_path_equals_plain_regexes_on_golden_examples_and_variants() -> None:
    rng = random.Random(5)
    texts = [v for text in _golden_texts() for v in _variants(text, rng)]
    frame = pl.DataFrame({"prompt": texts, "system": [None] * len(texts)})
    fast, plain = _both_paths(frame)
    assert fast.equals(plain)
    assert fast.sum().row(0) == plain.sum().row(0)
    assert sum(fast.sum().row(0)) > 100  # the variants do fire, so the comparison means something


def test_fast_path_equals_plain_regexes_on_a_large_mixed_frame() -> None:
    """Above the sample size the index leaves out common literals: results must not change."""
    rng = random.Random(11)
    golden = _golden_texts()
    filler = [
        "the",
        "answer",
        "is",
        "in",
        "the",
        "question",
        "you",
        "asked",
        "about",
        "your",
        "task",
        "and",
        "its",
        "output",
    ]
    texts = []
    for _ in range(4000):
        base = rng.choice(golden)
        noise = " ".join(rng.choices(filler, k=rng.randint(0, 30)))
        texts.append(rng.choice([base, f"{noise} {base}", f"{base}\n{noise}", noise]))
    systems = [rng.choice([None, "", *golden[:20]]) for _ in texts]
    frame = pl.DataFrame({"prompt": texts, "system": systems})
    fast, plain = _both_paths(frame)
    assert fast.equals(plain)


def test_unfoldable_characters_still_reach_the_regex() -> None:
    """ "LET'ſ THINK" matches (?i)let's think (the long s folds to s), yet its lowercase holds
    neither "let's" nor any other literal of the rule."""
    rules = RuleSet((RULES["intent/step-by-step"],))
    frame = pl.DataFrame(
        {"prompt": ["LET'\u017f THINK about it", "let think"], "system": [None, None]}
    )
    assert rules.signals(frame.lazy()).collect()["rule:intent/step-by-step"].to_list() == [
        True,
        False,
    ]
    assert rules.signals(frame)["rule:intent/step-by-step"].to_list() == [True, False]
    assert "\u017f" in FOLD_EXCEPTIONS


@pytest.mark.parametrize("rule", list(RULES), ids=lambda r: r.id)
def test_every_golden_match_contains_its_patterns_literals(rule) -> None:  # type: ignore[no-untyped-def]
    """Each pattern that matches a golden example matches a text holding one literal of each of
    its factors: the contract the prefilter relies on, checked against real positives."""
    path = GOLDEN / folder_name(rule.id) / "match.txt"
    for example in parse_examples(path.read_text(encoding="utf-8")):
        lowered = example.text.lower()
        for pattern in rule.patterns:
            if re.search("(?i)" + pattern.replace("(?-u:\\b)", "\\b"), example.text) is None:
                continue
            for factor in required_literals(pattern):
                assert any(w in lowered for w in factor), (pattern[:80], sorted(factor)[:5])


def test_required_literals_of_simple_shapes() -> None:
    assert required_literals("abc") == (frozenset({"abc"}),)
    assert required_literals("(?:abc|xyz)d")[0] == frozenset({"abcd", "xyzd"})
    assert required_literals("abc?") == ()  # "ab" is too short to filter anything
    assert required_literals("x*") == ()  # may match nothing
    assert required_literals("(?:abc)?def") == (frozenset({"def", "abcdef"}),)
    # an alternative without literals makes the alternation unusable
    assert required_literals(r"(?:abc|\d+)") == ()
    assert required_literals("not a [valid") == ()  # unreadable: no factors, never an error


def test_anchor_factor_takes_the_longest_word() -> None:
    assert anchor_factor(("let's think", "walk me", "step")) == frozenset({"let's", "walk", "step"})
