"""The JSON Schema every rule file must satisfy; the loader checks it before compiling anything."""

from __future__ import annotations

from typing import Any, Final

MATURITIES: Final = ("experimental", "test", "stable")
"""Lifecycle of a rule: new and unproven, checked on golden and real data, or trusted in production."""

FIELDS: Final = ("prompt", "system", "any")
"""Which text a rule reads: the last user message, the system prompt, or either."""

STRENGTHS: Final = ("strong", "weak")
"""``weak`` rules fire on plenty of legitimate traffic and only corroborate other evidence."""

_REGEX_LIST: Final[dict[str, Any]] = {
    "type": "array",
    "items": {"type": "string", "minLength": 1},
}

RULE_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://distillwatch.dev/schemas/rule-1.json",
    "title": "distillwatch intent rule",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "id",
        "version",
        "maturity",
        "title",
        "description",
        "field",
        "patterns",
        "languages",
        "references",
    ],
    "properties": {
        "id": {
            "type": "string",
            "pattern": r"^[a-z0-9]+(-[a-z0-9]+)*(/[a-z0-9]+(-[a-z0-9]+)*)+$",
            "description": "Namespaced, lower-case, e.g. intent/cot-elicitation; never reused.",
        },
        "version": {
            "type": "integer",
            "minimum": 1,
            "description": "Bumped whenever patterns change, so evidence names what fired.",
        },
        "maturity": {"enum": list(MATURITIES)},
        "strength": {"enum": list(STRENGTHS), "default": "strong"},
        "weight": {
            "type": "number",
            "minimum": 0,
            "maximum": 10,
            "default": 1.0,
            "description": "Suggested log-odds weight of one firing for a scorer.",
        },
        "title": {"type": "string", "minLength": 1, "maxLength": 80},
        "description": {"type": "string", "minLength": 1},
        "field": {"enum": list(FIELDS)},
        "define": {
            "type": "object",
            "propertyNames": {"pattern": "^[A-Z][A-Z0-9_]*$"},
            "additionalProperties": {"type": "string", "minLength": 1},
            "description": "Named regex fragments, used as %{NAME} in patterns and exclude.",
        },
        "anchors": {
            "type": "array",
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1},
            "description": "Literal strings (ASCII case-insensitive); a text containing none of "
            "them cannot fire, so patterns are not searched there. Every pattern match must "
            "contain one.",
        },
        "patterns": {**_REGEX_LIST, "minItems": 1},
        "exclude": _REGEX_LIST,
        "languages": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "pattern": "^[a-z]{2,3}$"},
        },
        "references": {"type": "string"},
    },
}
