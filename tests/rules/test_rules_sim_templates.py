"""The simulator's campaign templates fire their rule; its legitimate templates fire no strong rule."""

from __future__ import annotations

import random

import polars as pl
import pytest

from distillwatch.rules import load_rules
from distillwatch.sim import templates

RULES = load_rules()
STRONG = RULES.select(strength="strong")
TASKS = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?",
    'def is_palindrome(s: str) -> bool:\n    """Return True if s reads the same backwards."""',
    "Which gas do plants absorb during photosynthesis? A) oxygen B) carbon dioxide C) helium",
)
FILL = {"task2": "Write a function that reverses a string.", "answer": "72", "answer2": "96"}


def _texts(template: str) -> list[str]:
    return [template.format(task=task, **FILL) for task in TASKS]


def _frame(rows: list[tuple[str, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"prompt": [p for p, _ in rows], "system": [s for _, s in rows]},
        schema={"prompt": pl.String, "system": pl.String},
    )


@pytest.mark.parametrize(
    ("name", "rule_id"),
    [
        ("COT_COERCION", "intent/cot-elicitation"),
        ("RUBRIC_GRADING", "intent/rubric-grading"),
        ("SAFE_REWRITE", "intent/safe-rewrite"),
        ("TASK_GENERATION", "intent/task-generation"),
    ],
)
def test_every_campaign_template_fires_its_rule(name, rule_id):
    rows = [(text, None) for template in getattr(templates, name) for text in _texts(template)]
    fired = RULES.signals(_frame(rows))[f"rule:{rule_id}"].to_list()
    missed = [text[:90] for (text, _), hit in zip(rows, fired, strict=True) if not hit]
    assert not missed, missed


def _legitimate() -> list[tuple[str, str | None]]:
    rows: list[tuple[str, str | None]] = []
    for template in templates.BATCH_TASKS:
        rows += [(text, None) for text in _texts(template)]
    for template in templates.EVAL_HARNESS.values():
        rows += [(text, None) for text in _texts(template)]
    for template in templates.TUTOR_PROMPTS:
        rows += [(text, templates.TUTOR_SYSTEM) for text in _texts(template)]
    products = list(getattr(templates, "BACKEND_PRODUCTS", ()))
    if hasattr(templates, "product_template"):
        products += [templates.product_template(random.Random(seed)) for seed in range(300)]
    assert products, "no product back-end templates found in sim.templates"
    for system, template in products:
        rows += [(text, system) for text in _texts(template)]
    return rows


def test_legitimate_templates_fire_no_strong_rule():
    rows = _legitimate()
    out = STRONG.signals(_frame(rows))
    hits = out.filter(pl.any_horizontal(STRONG.columns))
    assert hits.height == 0, hits.select("prompt", "system").head(5).to_dicts()


def test_weak_rules_do_fire_on_legitimate_tutoring_and_harnesses():
    """The step-by-step rule is deliberately weak: tutors and zero-shot harnesses send it."""
    rows = [(text, None) for text in _texts(templates.EVAL_HARNESS["math"])]
    rows += [(text, templates.TUTOR_SYSTEM) for text in _texts(templates.TUTOR_PROMPTS[0])]
    assert RULES.signals(_frame(rows))["rule:intent/step-by-step"].all()


def test_expert_personas_fire_only_the_weak_persona_rule():
    personas = [p for p in templates.EXPERT_PERSONAS if p]
    out = RULES.signals(_frame([("Solve: 2x + 3 = 7", p) for p in personas]))
    expected = [p != "You are a helpful assistant." for p in personas]
    assert out["rule:intent/expert-persona"].to_list() == expected
    assert not out.select(STRONG.columns).to_numpy().any()
