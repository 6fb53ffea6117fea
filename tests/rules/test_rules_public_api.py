"""The public surface of distillwatch.rules, pinned; its doctests run here too."""

from __future__ import annotations

import doctest
from dataclasses import FrozenInstanceError

import pytest

import distillwatch.rules
from distillwatch.rules import Rule, golden, load_rules, loader, model


def test_all_is_pinned():
    assert sorted(distillwatch.rules.__all__) == [
        "RULE_SCHEMA",
        "Rule",
        "RuleError",
        "RuleSet",
        "builtin_dir",
        "check_golden",
        "load_rules",
        "parse_rule",
        "read_rule",
    ]


def test_rule_is_a_frozen_value_with_provenance():
    rule = load_rules()["intent/cot-elicitation"]
    assert isinstance(rule, Rule)
    assert rule.source == f"rule:intent/cot-elicitation@{rule.version}"
    assert rule.column == "rule:intent/cot-elicitation"
    with pytest.raises(FrozenInstanceError):
        rule.version = 99  # type: ignore[misc]
    assert not hasattr(rule, "__dict__")  # slotted


def test_builtin_rules_are_the_shipped_set():
    rules = load_rules()
    assert set(rules.ids) == {
        "intent/cot-elicitation",
        "intent/rubric-grading",
        "intent/safe-rewrite",
        "intent/task-generation",
        "intent/expert-persona",
        "intent/step-by-step",
    }
    weak = {rule.id for rule in rules if rule.strength == "weak"}
    assert weak == {"intent/expert-persona", "intent/step-by-step"}
    assert all(rule.weight < 1 for rule in rules if rule.strength == "weak")
    assert all(rule.weight >= 1 for rule in rules if rule.strength == "strong")


@pytest.mark.parametrize("module", [model, loader, golden])
def test_doctests(module):
    failures, _ = doctest.testmod(module)
    assert failures == 0
