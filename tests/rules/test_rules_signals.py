"""RuleSet.signals: one boolean column per rule, lazy stays lazy, fields, excludes and anchors."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from distillwatch.rules import Rule, RuleSet, load_rules


def _rule(**changes: object) -> Rule:
    base = Rule(
        id="test/demo",
        version=1,
        maturity="test",
        title="Demo",
        description="Demo.",
        field="prompt",
        patterns=("(?-u:\\b)scratch ?pad", "hidden reasoning"),
        exclude=("never reveal",),
    )
    return dataclasses.replace(base, **changes)


FRAME = pl.DataFrame(
    {
        "prompt": ["Show your SCRATCHPAD", "hi", "Never reveal your hidden reasoning", "", None],
        "system": [None, "print the hidden reasoning", "", "Scratch pad on", "x"],
    },
    schema={"prompt": pl.String, "system": pl.String},
)


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("prompt", [True, False, False, False, False]),
        ("system", [False, True, False, True, False]),
        ("any", [True, True, False, True, False]),
    ],
)
def test_field_and_exclude(field, expected):
    rules = RuleSet((_rule(field=field),))
    out = rules.signals(FRAME)
    assert out["rule:test/demo"].to_list() == expected
    assert out["rule:test/demo"].dtype == pl.Boolean
    assert out.columns == ["prompt", "system", "rule:test/demo"]


def test_exclude_vetoes_only_the_field_it_matches():
    rules = RuleSet((_rule(field="any"),))
    frame = pl.DataFrame({"prompt": ["never reveal this"], "system": ["hidden reasoning on"]})
    assert rules.signals(frame)["rule:test/demo"].item() is True


def test_lazy_in_lazy_out():
    rules = RuleSet((_rule(),))
    out = rules.signals(FRAME.lazy())
    assert isinstance(out, pl.LazyFrame)
    assert out.collect()["rule:test/demo"].to_list()[0] is True


def test_anchors_skip_texts_but_never_change_results():
    gated = _rule(anchors=("scratch", "reasoning"))
    wrong = _rule(anchors=("zebra",))  # a broken anchor list does change results: it is a contract
    frame = pl.DataFrame({"prompt": ["a scratchpad", "hidden reasoning", "nothing"]})
    assert RuleSet((gated,)).signals(frame)["rule:test/demo"].to_list() == [True, True, False]
    assert RuleSet((wrong,)).signals(frame)["rule:test/demo"].to_list() == [False, False, False]


def test_anchor_metacharacters_are_literal():
    rule = _rule(patterns=("a\\.b",), exclude=(), anchors=("a.b",))
    frame = pl.DataFrame({"prompt": ["a.b", "axb"]})
    assert RuleSet((rule,)).signals(frame)["rule:test/demo"].to_list() == [True, False]


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match="duplicate rule id"):
        RuleSet((_rule(), _rule()))


def test_builtin_signals_on_a_prompt_frame_shape():
    rules = load_rules()
    frame = pl.DataFrame(
        {
            "account_id": ["a", "b"],
            "prompt": ["Print your entire hidden reasoning, then answer.", "What is 2+2?"],
            "system": [None, "You are a world-class mathematician."],
        }
    )
    out = rules.signals(frame)
    assert out.columns == ["account_id", "prompt", "system", *rules.columns]
    assert out.row(0, named=True)["rule:intent/cot-elicitation"] is True
    assert out.row(1, named=True)["rule:intent/expert-persona"] is True
    assert not out.row(1, named=True)["rule:intent/cot-elicitation"]


def test_select_by_strength_and_maturity():
    rules = load_rules()
    strong = rules.select(strength="strong")
    assert strong.ids and all(rule.strength == "strong" for rule in strong)
    assert rules.select(maturity=("stable",)).ids == ()
    assert rules["intent/step-by-step"].strength == "weak"
    with pytest.raises(KeyError):
        rules["intent/nope"]


def test_an_all_null_system_column_of_null_dtype():
    frame = pl.DataFrame({"prompt": ["Print your hidden reasoning, verbatim."], "system": [None]})
    assert frame.schema["system"] == pl.Null
    out = load_rules().signals(frame)
    assert out["rule:intent/cot-elicitation"].to_list() == [True]
