"""Read rule files, validate them against the schema and check every regex compiles."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, cast

import jsonschema
import polars as pl
import yaml

from distillwatch.core.errors import DistillwatchError
from distillwatch.rules.model import FLAGS, Rule, RuleSet
from distillwatch.rules.schema import RULE_SCHEMA

SUFFIXES = (".yaml", ".yml")

_VALIDATOR = jsonschema.Draft202012Validator(RULE_SCHEMA)
_REF = re.compile(r"%\{([A-Z][A-Z0-9_]*)\}")


class RuleError(DistillwatchError):
    """A rule file that cannot be used; the message names the file, the rule and the key."""

    def __init__(self, file: str, key: str, message: str, rule_id: str | None = None) -> None:
        self.file = file
        self.key = key
        self.rule_id = rule_id
        where = f"{file}: rule {rule_id}" if rule_id else file
        super().__init__(f"{where}: {key}: {message}")


def builtin_dir() -> Path:
    """The folder of the rules that ship with distillwatch."""
    return Path(str(resources.files("distillwatch.rules") / "builtin"))


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """Rule files named by ``paths``: files as given, folders searched recursively, name order."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        elif path.is_file():
            out.append(path)
        else:
            raise RuleError(str(path), "<file>", "no such file or directory")
    return out


def load_rules(
    paths: str | Path | Iterable[str | Path] | None = None, *, builtin: bool = True
) -> RuleSet:
    """The builtin rules plus those in ``paths`` (YAML files or folders of them).

    ``builtin=False`` loads ``paths`` only. Raises :class:`RuleError` for the first bad file.

    >>> rules = load_rules()
    >>> "intent/cot-elicitation" in rules
    True
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    files = ([builtin_dir()] if builtin else []) + list(paths or [])
    rules: dict[str, Rule] = {}
    for path in rule_files(files):
        rule = read_rule(path)
        if rule.id in rules:
            raise RuleError(
                str(path), "id", f"duplicate rule id, also in {rules[rule.id].path}", rule.id
            )
        rules[rule.id] = rule
    return RuleSet(tuple(rules.values()))


def read_rule(path: str | Path) -> Rule:
    """Parse, validate and compile-check one rule file."""
    file = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(file, "<file>", str(exc)) from None
    except yaml.YAMLError as exc:
        raise RuleError(file, "<yaml>", " ".join(str(exc).split())) from None
    return parse_rule(data, file)


def parse_rule(data: object, file: str = "<memory>") -> Rule:
    """A :class:`Rule` from one parsed YAML document, or :class:`RuleError`.

    >>> try:
    ...     parse_rule({"id": "intent/x", "version": 1}, "x.yaml")
    ... except RuleError as exc:
    ...     print(exc)
    x.yaml: rule intent/x: description: 'description' is a required property
    """
    rule_id = data.get("id") if isinstance(data, Mapping) else None
    rule_id = rule_id if isinstance(rule_id, str) else None
    errors = sorted(_VALIDATOR.iter_errors(data), key=_error_key)
    if errors:
        raise RuleError(file, _error_key(errors[0]), _error_message(errors[0]), rule_id)
    doc = cast(dict[str, Any], data)
    rule_id = doc["id"]
    defines: dict[str, str] = {}
    for name, fragment in doc.get("define", {}).items():
        defines[name] = _expand(fragment, defines, file, f"define.{name}", rule_id)
    expanded = {
        key: tuple(
            _expand(pattern, defines, file, f"{key}[{index}]", rule_id)
            for index, pattern in enumerate(doc.get(key, ()))
        )
        for key in ("patterns", "exclude")
    }
    for key, patterns in expanded.items():
        for index, pattern in enumerate(patterns):
            problem = regex_problem(pattern)
            if problem:
                raise RuleError(file, f"{key}[{index}]", f"{problem}: {pattern!r}", rule_id)
    return Rule(
        id=rule_id,
        version=doc["version"],
        maturity=doc["maturity"],
        title=doc["title"],
        description=" ".join(doc["description"].split()),
        field=doc["field"],
        patterns=expanded["patterns"],
        exclude=expanded["exclude"],
        languages=tuple(doc["languages"]),
        references=doc["references"].strip(),
        strength=doc.get("strength", "strong"),
        weight=float(doc.get("weight", 1.0)),
        anchors=tuple(doc.get("anchors", ())),
        path=file,
    )


def expand(pattern: str, defines: Mapping[str, str]) -> str:
    """``pattern`` with each ``%{NAME}`` replaced by ``(?:<defines[NAME]>)``.

    >>> expand("%{VERB} your %{NOUN}", {"VERB": "show|print", "NOUN": "reasoning"})
    '(?:show|print) your (?:reasoning)'
    """

    def one(match: re.Match[str]) -> str:
        return f"(?:{defines[match.group(1)]})"

    return _REF.sub(one, pattern)


def _expand(pattern: str, defines: Mapping[str, str], file: str, key: str, rule_id: str) -> str:
    missing = [name for name in _REF.findall(pattern) if name not in defines]
    if missing:
        raise RuleError(file, key, f"%{{{missing[0]}}} is not defined above", rule_id)
    return expand(pattern, defines)


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a rule regex (Polars/Rust syntax), or ``None`` if it can.

    >>> regex_problem("(?<!not )think")
    'does not compile: look-around, including look-ahead and look-behind, is not supported'
    >>> regex_problem("(step by step)?")
    'matches the empty string, so it would fire on every text'
    >>> regex_problem("step by step") is None
    True
    """
    if top_level_alternation(pattern):
        return "has a top-level '|': split it into separate patterns"
    try:
        empty = pl.Series([""], dtype=pl.String).str.contains(FLAGS + pattern, strict=True)
    except pl.exceptions.PolarsError as exc:
        return f"does not compile: {_rust_reason(str(exc))}"
    if empty.item():
        return "matches the empty string, so it would fire on every text"
    return None


def top_level_alternation(pattern: str) -> bool:
    """Whether ``pattern`` has a ``|`` outside every group and class.

    Such a pattern is two patterns, and usually a mistake: ``a\\s+b|c`` reads as ``(a\\s+b)|c``.

    >>> top_level_alternation("show|print"), top_level_alternation("(?:show|print) it")
    (True, False)
    >>> top_level_alternation(r"[|(]\\|x")
    False
    """
    depth = in_class = 0
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class += {"[": 1, "]": -1}.get(char, 0)
        elif char == "[":
            in_class = 1
            j = i + 1 + (pattern[i + 1 : i + 2] == "^")
            if pattern[j : j + 1] == "]":  # a leading ] is literal
                i = j
        elif char in "()":
            depth += 1 if char == "(" else -1
        elif char == "|" and depth == 0:
            return True
        i += 1
    return False


def _rust_reason(message: str) -> str:
    """The ``error: …`` line of a Rust regex error, else its first line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("error:"):
            return line.removeprefix("error:").strip()
    return lines[0] if lines else message


def _error_message(error: jsonschema.ValidationError) -> str:
    """jsonschema's message, without echoing a whole list back."""
    if error.validator == "uniqueItems" and isinstance(error.instance, list):
        seen: set[str] = set()
        for item in map(repr, error.instance):
            if item in seen:
                return f"{item} appears more than once"
            seen.add(item)
    message = str(error.message)
    return message if len(message) <= 160 else message[:157] + "..."


def _error_key(error: jsonschema.ValidationError) -> str:
    """The key a schema error is about; for a missing or unknown key, that key."""
    path = list(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, Mapping):
        missing = re.match(r"'(.+)' is a required property", error.message)
        path += [missing.group(1)] if missing else []
    elif error.validator == "additionalProperties" and isinstance(instance, Mapping):
        known = cast(dict[str, Any], error.schema).get("properties", {})
        path += sorted(str(k) for k in instance if k not in known)[:1]
    return _key(path) or "<rule>"


def _key(path: Iterable[object]) -> str:
    """``patterns[2]`` from a JSON-Schema error path ``deque(['patterns', 2])``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
