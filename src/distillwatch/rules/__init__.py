"""Heuristic intent signals as rules-as-data: YAML rules, schema, loader and compiler.

Each rule is a YAML file (id, version, maturity, regex patterns) validated on load and compiled
to one Polars expression; :meth:`RuleSet.signals` adds one boolean ``rule:<id>`` column per rule.
"""

from distillwatch.rules.golden import check_golden
from distillwatch.rules.loader import RuleError, builtin_dir, load_rules, parse_rule, read_rule
from distillwatch.rules.model import Rule, RuleSet
from distillwatch.rules.schema import RULE_SCHEMA

__all__ = [
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
