"""Every builtin rule has a golden folder, and every golden example behaves."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from distillwatch.rules import RuleSet, load_rules
from distillwatch.rules.golden import (
    FILES,
    check_golden,
    examples_frame,
    folder_name,
    parse_examples,
)

GOLDEN = Path(__file__).parent / "golden"
RULES = load_rules()
MIN_EXAMPLES = 8


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.id)
def test_golden_folder_exists_with_enough_examples(rule):
    folder = GOLDEN / folder_name(rule.id)
    for name in FILES:
        path = folder / name
        assert path.is_file(), f"{rule.id}: missing golden file {path}"
        examples = parse_examples(path.read_text(encoding="utf-8"))
        assert len(examples) >= MIN_EXAMPLES, f"{path}: only {len(examples)} examples"


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.id)
def test_golden_examples(rule):
    failures = check_golden(rule, GOLDEN / folder_name(rule.id))
    assert not failures, "\n" + "\n".join(map(str, failures))


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.id)
def test_anchors_never_change_a_result(rule):
    """The anchor gate is a speed-up only: on every golden example of every rule, the rule
    fires with its anchors exactly where it fires without them."""
    texts = tuple(
        example
        for path in sorted(GOLDEN.glob("*/*.txt"))
        for example in parse_examples(path.read_text(encoding="utf-8"))
    )
    frame = examples_frame(texts)
    ungated = RuleSet((dataclasses.replace(rule, anchors=()),))
    gated = RuleSet((rule,))
    assert rule.anchors, f"{rule.id}: builtin rules declare anchors"
    assert (
        gated.signals(frame)[rule.column].to_list() == ungated.signals(frame)[rule.column].to_list()
    )


def test_no_orphan_golden_folders():
    expected = {folder_name(rule.id) for rule in RULES}
    assert {p.name for p in GOLDEN.iterdir() if p.is_dir()} == expected
