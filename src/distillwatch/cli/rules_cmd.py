"""`distillwatch rules`: list the intent rules and try them on a text or on each line of a file."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from distillwatch.rules import RuleError, RuleSet, load_rules

rules_app = typer.Typer(
    name="rules",
    help="List the intent rules (rules-as-data) and try them on text.",
    no_args_is_help=True,
    add_completion=False,
)

_EXTRA = typer.Option(
    [], "--rules", help="Extra rule files or folders (YAML), on top of the builtin ones."
)
_BUILTIN = typer.Option(True, "--builtin/--no-builtin", help="Load the builtin rules too.")


class Column(StrEnum):
    """Where the text under test goes."""

    prompt = "prompt"
    system = "system"


@rules_app.command("list")
def list_rules(extra: list[Path] = _EXTRA, builtin: bool = _BUILTIN) -> None:
    """A table of the loaded rules: id, version, maturity, strength and title."""
    out = Console()
    rules = _load(out, extra, builtin)
    table = Table("id", "version", "maturity", "strength", "title", box=None)
    for rule in rules:
        table.add_row(rule.id, str(rule.version), rule.maturity, rule.strength, rule.title)
    out.print(table)


@rules_app.command("test")
def try_rules(
    file_or_text: str = typer.Argument(
        ..., metavar="FILE_OR_TEXT", help="A text, or a file whose lines are tried one by one."
    ),
    field: Column = typer.Option(Column.prompt, "--field", help="Put the text in this column."),
    extra: list[Path] = _EXTRA,
    builtin: bool = _BUILTIN,
) -> None:
    """Which rules fire on a text, or on each non-blank line of a file."""
    out = Console()
    rules = _load(out, extra, builtin)
    path = Path(file_or_text)
    is_file = path.is_file()
    texts = _lines(path) if is_file else [file_or_text]
    frame = pl.DataFrame(
        {
            "prompt": texts if field is Column.prompt else [""] * len(texts),
            "system": texts if field is Column.system else [None] * len(texts),
        },
        schema={"prompt": pl.String, "system": pl.String},
    )
    fired = rules.signals(frame).select(rules.columns)
    for number, (text, row) in enumerate(zip(texts, fired.iter_rows(), strict=True), start=1):
        ids = [rule.id for rule, hit in zip(rules, row, strict=True) if hit]
        where = f"{number}: " if is_file else ""
        snippet = " ".join(text.split())[:80]
        out.print(
            f"{where}{', '.join(ids) or '-'}\t{snippet}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if is_file:
        for rule, count in zip(rules, fired.sum().row(0), strict=True):
            out.print(f"{rule.id}: {count} of {len(texts)} lines", markup=False, highlight=False)


def _load(out: Console, extra: list[Path], builtin: bool) -> RuleSet:
    try:
        return load_rules(extra, builtin=builtin)
    except RuleError as exc:
        out.print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
