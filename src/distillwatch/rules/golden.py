"""Golden folders: example texts every rule must (``match.txt``) and must not (``nomatch.txt``) fire on.

A rule ``intent/cot-elicitation`` has the folder ``intent__cot-elicitation``. Examples are
separated by lines holding only ``---``; an example whose first line is ``[system]`` is put in
the ``system`` column (with an empty prompt) instead of ``prompt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from distillwatch.rules.model import Rule, RuleSet

SEPARATOR = "---"
SYSTEM_TAG = "[system]"
FILES: dict[str, bool] = {"match.txt": True, "nomatch.txt": False}
"""Golden file name -> whether the rule must fire on its examples."""


@dataclass(frozen=True, slots=True)
class Example:
    """One golden example: its text, where it goes, and the line it starts on."""

    text: str
    field: Literal["prompt", "system"]
    line: int


@dataclass(frozen=True, slots=True)
class GoldenFailure:
    """A golden example the rule got wrong."""

    rule_id: str
    file: str
    line: int
    expected: bool
    text: str

    def __str__(self) -> str:
        verb = "should fire but did not" if self.expected else "fired but should not"
        snippet = " ".join(self.text.split())[:100]
        return f"{self.file}:{self.line}: {self.rule_id} {verb}: {snippet!r}"


def folder_name(rule_id: str) -> str:
    """The golden folder name of a rule id.

    >>> folder_name("intent/cot-elicitation")
    'intent__cot-elicitation'
    """
    return rule_id.replace("/", "__")


def parse_examples(text: str) -> tuple[Example, ...]:
    """The examples in one golden file's text.

    >>> [(e.text, e.field, e.line) for e in parse_examples("a\\n---\\n[system]\\nb\\nc\\n---\\n")]
    [('a', 'prompt', 1), ('b\\nc', 'system', 3)]
    """
    out: list[Example] = []
    chunk: list[str] = []
    start = 1
    for number, line in enumerate([*text.splitlines(), SEPARATOR], start=1):
        if line.strip() != SEPARATOR:
            chunk.append(line)
            continue
        body = "\n".join(chunk).strip("\n")
        if body.strip():
            lines = body.split("\n")
            if lines[0].strip() == SYSTEM_TAG:
                out.append(Example("\n".join(lines[1:]).strip("\n"), "system", start))
            else:
                out.append(Example(body, "prompt", start))
        chunk, start = [], number + 1
    return tuple(out)


def examples_frame(examples: tuple[Example, ...]) -> pl.DataFrame:
    """A ``prompt``/``system`` frame with one row per example."""
    return pl.DataFrame(
        {
            "prompt": [e.text if e.field == "prompt" else "" for e in examples],
            "system": [e.text if e.field == "system" else None for e in examples],
        },
        schema={"prompt": pl.String, "system": pl.String},
    )


def check_golden(rule: Rule, folder: str | Path) -> list[GoldenFailure]:
    """Every golden example of ``rule`` in ``folder`` that it gets wrong (empty when all pass).

    Raises ``FileNotFoundError`` when ``match.txt`` or ``nomatch.txt`` is missing.
    """
    failures: list[GoldenFailure] = []
    rules = RuleSet((rule,))
    for name, expected in FILES.items():
        path = Path(folder) / name
        examples = parse_examples(path.read_text(encoding="utf-8"))
        fired = rules.signals(examples_frame(examples))[rule.column].to_list()
        failures += [
            GoldenFailure(rule.id, str(path), example.line, expected, example.text)
            for example, hit in zip(examples, fired, strict=True)
            if hit != expected
        ]
    return failures
