"""``distillwatch eval``: score a detector's verdict table against simulator ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from distillwatch.core.errors import DistillwatchError
from distillwatch.eval import (
    parse_fprs,
    read_truth,
    read_verdicts,
    render_html,
    rich_tables,
    to_json,
)
from distillwatch.eval.metrics import evaluate as evaluate_verdicts


def evaluate(
    truth: Path = typer.Option(..., "--truth", help="Ground truth labels (.parquet or .csv)."),
    verdicts: Path = typer.Option(
        ..., "--verdicts", help="Verdict table: account_id, score, optional tier and cluster_id."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Folder to write eval.json and eval.html (default: print only)."
    ),
    fpr: str = typer.Option(
        "0.001,0.01", "--fpr", help="Target false-positive rates, comma-separated (0.001 or 0.1%)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No tables; errors and warnings only."),
) -> None:
    """Evaluate verdicts against the truth: AUCs, TPR at target FPRs, per-persona FPR, recall."""
    err = Console(stderr=True, soft_wrap=True)
    try:
        result = evaluate_verdicts(read_truth(truth), read_verdicts(verdicts), parse_fprs(fpr))
    except DistillwatchError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    console = Console(quiet=quiet)
    for table in rich_tables(result):
        console.print(table)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        data = {**to_json(result), "inputs": {"truth": str(truth), "verdicts": str(verdicts)}}
        (out / "eval.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        page = render_html(result, f"distillwatch eval: {verdicts.name}")
        (out / "eval.html").write_text(page, encoding="utf-8")
        err.print(
            f"wrote {out / 'eval.json'} and {out / 'eval.html'}", markup=False, highlight=False
        )
