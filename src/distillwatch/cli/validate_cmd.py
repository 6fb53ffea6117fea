"""`distillwatch validate`: read input files against the canonical schema and report bad records."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from distillwatch.core.errors import DistillwatchError, RecordError
from distillwatch.core.progress import progress_bar
from distillwatch.ingest import READERS, ReadResult, input_files


class Kind(StrEnum):
    """Which canonical table the inputs hold."""

    calls = "calls"
    accounts = "accounts"
    models = "models"
    labels = "labels"


def validate(
    paths: list[Path] = typer.Argument(..., help="Files or directories to check."),
    kind: Kind = typer.Option(Kind.calls, "--kind", help="Which table the files hold."),
    max_errors: int = typer.Option(20, "--max-errors", min=0, help="How many errors to print."),
) -> None:
    """Check files against the canonical schema; exit 1 if any record is bad."""
    out = Console()
    try:
        files = input_files(paths, kind.value)
        if not files:
            raise DistillwatchError(f"no {kind.value} files in {', '.join(map(str, paths))}")
    except DistillwatchError as exc:
        out.print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    reader = READERS[kind.value]
    results: list[ReadResult] = []
    bar = progress_bar(enabled=Console(stderr=True).is_terminal)
    with bar:
        for path in files:
            task = bar.add_task(path.name, total=None)
            result = reader(
                path, progress=lambda n, task=task: bar.advance(task, n), max_errors=max_errors
            )
            done = result.n_good + result.n_bad
            bar.update(task, total=done, completed=done)
            results.append(result)
    _print_summary(out, kind.value, results)
    errors = [error for result in results for error in result.errors][:max_errors]
    _print_errors(out, errors, sum(r.n_bad for r in results))
    raise typer.Exit(1 if any(r.n_bad for r in results) else 0)


def _print_summary(out: Console, kind: str, results: list[ReadResult]) -> None:
    """One line per file (never wrapped, so it greps), then a total when there are several."""
    for result in results:
        _count_line(out, result.files[0], result.n_good, result.n_bad)
    if len(results) != 1:
        good = sum(r.n_good for r in results)
        bad = sum(r.n_bad for r in results)
        _count_line(out, f"total ({len(results)} {kind} files)", good, bad)


def _count_line(out: Console, name: str, good: int, bad: int) -> None:
    line = Text(f"{name}: ")
    line.append(f"{good:,} good", style="green")
    line.append(", ")
    line.append(f"{bad:,} bad", style="bold red" if bad else "dim")
    out.print(line, soft_wrap=True)


def _print_errors(out: Console, errors: list[RecordError], n_bad: int) -> None:
    for error in errors:
        out.print(str(error), markup=False, highlight=False, soft_wrap=True)
    if n_bad > len(errors):
        out.print(f"... and {n_bad - len(errors):,} more bad record(s)", style="dim")
