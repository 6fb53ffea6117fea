"""Loading rule files: schema validation, regex checks and the errors a rule author sees."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from distillwatch.core.errors import DistillwatchError
from distillwatch.rules import RuleError, builtin_dir, load_rules, parse_rule, read_rule

GOOD = {
    "id": "test/demo",
    "version": 3,
    "maturity": "experimental",
    "title": "Demo",
    "description": "A demo rule.",
    "field": "prompt",
    "patterns": ["scratch ?pad", "%{VERB} your notes"],
    "define": {"VERB": "show|print"},
    "languages": ["en"],
    "references": "none",
}


def _write(folder: Path, name: str, doc: object) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def _error(tmp_path: Path, **changes: object) -> RuleError:
    doc = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    path = _write(tmp_path, "bad.yaml", doc)
    with pytest.raises(RuleError) as info:
        read_rule(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, DistillwatchError)
    return info.value


def test_a_good_rule_loads_with_defaults_and_expanded_defines(tmp_path):
    rule = read_rule(_write(tmp_path, "demo.yaml", GOOD))
    assert rule.source == "rule:test/demo@3"
    assert rule.patterns == ("scratch ?pad", "(?:show|print) your notes")
    assert (rule.exclude, rule.anchors, rule.strength, rule.weight) == ((), (), "strong", 1.0)
    assert rule.path == str(tmp_path / "demo.yaml")


def test_missing_key_is_named(tmp_path):
    error = _error(tmp_path, maturity=None)
    assert error.key == "maturity"
    assert error.rule_id == "test/demo"
    assert "'maturity' is a required property" in str(error)


def test_unknown_key_is_named(tmp_path):
    error = _error(tmp_path, severity="high")
    assert error.key == "severity"
    assert "Additional properties" in str(error)


@pytest.mark.parametrize(
    ("key", "value", "expected_key"),
    [
        ("maturity", "beta", "maturity"),
        ("field", "response", "field"),
        ("version", "2", "version"),
        ("id", "Intent/CoT", "id"),
        ("patterns", [], "patterns"),
        ("languages", ["english"], "languages[0]"),
        ("weight", -1, "weight"),
    ],
)
def test_bad_values_name_their_key(tmp_path, key, value, expected_key):
    assert _error(tmp_path, **{key: value}).key == expected_key


def test_duplicate_list_items_are_named_once(tmp_path):
    error = _error(tmp_path, anchors=["notes", "pad", "notes"])
    assert error.key == "anchors"
    assert "'notes' appears more than once" in str(error)


@pytest.mark.parametrize(
    ("patterns", "index", "reason"),
    [
        (["ok", "(?<!don't )show"], 1, "look-around"),
        (["ok", "ok", "(unclosed"], 2, "does not compile"),
        (["(step by step)?"], 0, "matches the empty string"),
        (["fine", "show|print"], 1, "top-level '|'"),
        (["(\\w+) \\1"], 0, "backreferences are not supported"),
    ],
)
def test_bad_patterns_name_file_rule_and_index(tmp_path, patterns, index, reason):
    error = _error(tmp_path, patterns=patterns)
    assert error.key == f"patterns[{index}]"
    assert error.rule_id == "test/demo"
    assert reason in str(error)
    assert f"rule test/demo: patterns[{index}]:" in str(error)


def test_bad_exclude_is_named(tmp_path):
    assert _error(tmp_path, exclude=["fine", "(?=x)"]).key == "exclude[1]"


def test_undefined_define_is_named(tmp_path):
    error = _error(tmp_path, patterns=["%{NOUN} here"])
    assert error.key == "patterns[0]"
    assert "%{NOUN} is not defined" in str(error)


def test_yaml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("id: [unclosed\n", encoding="utf-8")
    with pytest.raises(RuleError, match=r"broken\.yaml: <yaml>"):
        read_rule(path)


def test_a_rule_file_must_hold_a_mapping():
    with pytest.raises(RuleError, match="is not of type 'object'"):
        parse_rule(["not", "a", "rule"], "list.yaml")


def test_duplicate_ids_across_files(tmp_path):
    _write(tmp_path, "a.yaml", GOOD)
    _write(tmp_path, "b.yaml", GOOD)
    with pytest.raises(RuleError, match=r"duplicate rule id, also in .*a\.yaml"):
        load_rules(tmp_path, builtin=False)


def test_extra_folders_load_recursively_next_to_builtin(tmp_path):
    (tmp_path / "team").mkdir()
    _write(tmp_path / "team", "demo.yml", GOOD)
    (tmp_path / "README.md").write_text("not a rule")
    only = load_rules([tmp_path], builtin=False)
    assert only.ids == ("test/demo",)
    both = load_rules(str(tmp_path))
    assert "test/demo" in both and "intent/cot-elicitation" in both
    assert len(both) == len(load_rules()) + 1


def test_a_builtin_id_cannot_be_redefined(tmp_path):
    _write(tmp_path, "mine.yaml", {**GOOD, "id": "intent/cot-elicitation"})
    with pytest.raises(RuleError, match="duplicate rule id"):
        load_rules(tmp_path)


def test_missing_path(tmp_path):
    with pytest.raises(RuleError, match="no such file or directory"):
        load_rules(tmp_path / "nope.yaml")


def test_every_builtin_file_is_one_valid_rule_named_after_its_id():
    files = sorted(builtin_dir().glob("*.yaml"))
    assert len(files) == len(load_rules())
    for path in files:
        rule = read_rule(path)
        assert rule.id.split("/")[-1] == path.stem
