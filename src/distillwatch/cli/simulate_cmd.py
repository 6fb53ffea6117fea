"""``distillwatch simulate``: labelled API traffic on real prompt corpora."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.table import Table

from distillwatch.core.errors import DistillwatchError
from distillwatch.core.progress import progress_bar
from distillwatch.sim import (
    Simulator,
    find_corpus_dir,
    load_corpora,
    load_scenario,
    shipped_fit,
    summarize,
)


class CallFormat(StrEnum):
    parquet = "parquet"
    jsonl = "jsonl"
    both = "both"


def simulate(
    out: Path = typer.Option(..., "--out", help="Folder to write calls, accounts, models, labels."),
    accounts: int = typer.Option(2000, "--accounts", min=10, help="Number of accounts."),
    days: int = typer.Option(7, "--days", min=1, help="Length of the window in days."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same bytes."),
    scenario: Path | None = typer.Option(
        None, "--scenario", exists=True, dir_okay=False, help="YAML merged over the default."
    ),
    corpora: Path | None = typer.Option(
        None, "--corpora", help="Staged corpus folder (layout of shared/data); default: auto."
    ),
    fmt: CallFormat = typer.Option(
        CallFormat.parquet, "--format", help="calls as parquet, jsonl(.gz) or both."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or tables."),
) -> None:
    """Simulate N accounts over D days: legitimate personas and distillation campaigns, labelled."""
    from distillwatch.ingest import write_table

    console = Console(stderr=True, quiet=quiet)
    started = time.perf_counter()
    try:
        sc = load_scenario(scenario)
        corpus_dir = find_corpus_dir(corpora)
        pools = load_corpora(corpus_dir)
    except DistillwatchError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(f"corpora: {corpus_dir or 'bundled sample'}")
    fit = shipped_fit()
    sim = Simulator(sc, pools, fit, seed=seed)
    with progress_bar(enabled=not quiet, console=console) as bar:
        task = bar.add_task("simulating accounts", total=accounts)
        try:
            result = sim.run(
                accounts,
                days,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except DistillwatchError as exc:  # e.g. campaigns larger than --accounts
            bar.stop()
            console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
            raise typer.Exit(2) from None
        files = ["accounts.parquet", "models.parquet", "labels.parquet"]
        files += ["calls.parquet"] if fmt in (CallFormat.parquet, CallFormat.both) else []
        files += ["calls.jsonl.gz"] if fmt in (CallFormat.jsonl, CallFormat.both) else []
        wtask = bar.add_task("writing", total=len(files) + 2)
        out.mkdir(parents=True, exist_ok=True)
        tables = {
            "accounts": result.accounts,
            "models": result.models,
            "labels": result.labels,
            "calls": result.calls,
        }
        for name in files:
            write_table(tables[name.split(".")[0]], out / name)
            bar.advance(wtask)
        summary = summarize(result.calls, result.labels, result.models, fit, days)
        summary.update({"seed": seed, "corpora": pools.sources, "trace_fit": fit.source})
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
        (out / "scenario.yaml").write_text(yaml.safe_dump(sc.raw, sort_keys=False))
        bar.advance(wtask, 2)
    elapsed = time.perf_counter() - started
    _print_summary(console, summary)
    console.print(
        f"[bold]{summary['n_calls']:,}[/bold] calls from {summary['n_accounts']:,} accounts "
        f"over {days} days in {elapsed:.1f} s -> {out}"
    )


def _print_summary(console: Console, s: dict[str, object]) -> None:
    mix = Table(title="persona / campaign mix")
    for col in ("label", "persona", "accounts", "orgs", "calls", "median/day", "p90/day"):
        mix.add_column(col, justify="right" if col not in ("label", "persona") else "left")
    for row in s["mix"]:  # type: ignore[attr-defined]
        mix.add_row(
            row["label"], row["persona"], f"{row['accounts']:,}", f"{row['orgs']:,}",
            f"{row['calls']:,}", f"{row['median_calls_per_day']:.1f}", f"{row['p90_calls_per_day']:.1f}",
        )  # fmt: skip
    console.print(mix)
    vol = Table(title="legit calls/day per account: quantile / median, beside ServeGen clients")
    for col in ("quantile", "simulated calls/day", "simulated ratio", "ServeGen ratio"):
        vol.add_column(col, justify="right")
    for row in s["volume_quantiles"]:  # type: ignore[attr-defined]
        vol.add_row(
            f"{row['quantile']:.2f}", f"{row['sim_calls_per_day']:.2f}",
            f"{row['sim_ratio_to_median']:.3f}", f"{row['servegen_ratio_to_median']:.3f}",
        )  # fmt: skip
    console.print(vol)
