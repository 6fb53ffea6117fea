"""``distillwatch scan``: rank every account by distillation risk, with evidence and a report."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import typer
from rich.console import Console
from rich.table import Table

from distillwatch.core.errors import DistillwatchError
from distillwatch.core.progress import progress_bar
from distillwatch.core.times import parse_time
from distillwatch.features.calls import UNREAD_FIELDS, call_frame_from_arrow
from distillwatch.ingest import ReadResult, read_accounts, read_calls, read_models
from distillwatch.report.scan import render_scan_report
from distillwatch.scoring import ScanConfig, ScanPipeline
from distillwatch.scoring.pipeline import previous_clusters


def _read(console: Console, kind: str, result: ReadResult) -> None:
    if result.n_bad:
        console.print(f"[yellow]{kind}: {result.n_bad:,} malformed record(s) skipped[/yellow]")
        for err in result.errors[:5]:
            console.print(f"  {err}", soft_wrap=True, markup=False)


def _time(value: str | None, name: str) -> datetime | None:
    try:
        return None if value is None else parse_time(value, name)
    except DistillwatchError as exc:
        raise typer.BadParameter(str(exc)) from None


def frame_batch(lo: datetime | None, hi: datetime | None) -> Callable[[pa.Table], pa.Table]:
    """A reader transform: canonical calls -> call-frame rows in ``[lo, hi)``, per batch."""

    def transform(batch: pa.Table) -> pa.Table:
        frame = call_frame_from_arrow(batch)
        if lo is not None:
            frame = frame.filter(pl.col("ts") >= lo)
        if hi is not None:
            frame = frame.filter(pl.col("ts") < hi)
        return frame.to_arrow()

    return transform


def write_verdicts(verdicts: pl.DataFrame, out: Path) -> None:
    """``accounts.parquet`` as is; ``accounts.csv`` with reasons joined and evidence as JSON."""
    verdicts.write_parquet(out / "accounts.parquet", compression="zstd")
    flat = verdicts.with_columns(
        pl.col("reasons").list.join(" | "),
        pl.col("evidence").list.eval(pl.element().struct.json_encode()).list.join("\n"),
    )
    flat.write_csv(out / "accounts.csv")


def write_clusters(clusters: pl.DataFrame, out: Path) -> None:
    """``clusters.parquet`` as is; ``clusters.csv`` with lists joined and evidence as JSON."""
    clusters.write_parquet(out / "clusters.parquet", compression="zstd")
    flat = clusters.with_columns(
        pl.col("members").list.join(" "),
        pl.col("edge_types").list.join(" "),
        pl.col("reasons").list.join(" | "),
        pl.col("evidence").list.eval(pl.element().struct.json_encode()).list.join("\n"),
    )
    flat.write_csv(out / "clusters.csv")


def scan(
    logs: list[Path] = typer.Argument(
        ..., help="Call logs: files or folders (JSONL[.gz|.zst], Parquet)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Folder for accounts.parquet/.csv and report.html."
    ),
    accounts: Path | None = typer.Option(None, "--accounts", help="Accounts table."),
    models: Path | None = typer.Option(None, "--models", help="Model releases table."),
    since: str | None = typer.Option(None, "--since", help="Only calls at or after this time."),
    until: str | None = typer.Option(None, "--until", help="Only calls before this time."),
    config: Path | None = typer.Option(None, "--config", help="Scan config YAML (tiers)."),
    detector: Path | None = typer.Option(
        None, "--detector", help="Detector file (default: packaged)."
    ),
    cluster_detector: Path | None = typer.Option(
        None, "--cluster-detector", help="Cluster detector file (default: packaged)."
    ),
    clusters: bool = typer.Option(
        True, "--clusters/--no-clusters", help="Link accounts into clusters and score them."
    ),
    previous: Path | None = typer.Option(
        None,
        "--previous",
        help="An earlier scan's output folder (or its accounts.parquet / clusters.parquet): "
        "clusters that are mostly the same accounts keep their ids.",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or tables."),
) -> None:
    """Score every account in the logs: calibrated score, tier, evidence, and an HTML report."""
    console = Console(stderr=True, quiet=quiet)
    t0 = time.perf_counter()
    lo, hi = _time(since, "--since"), _time(until, "--until")
    try:
        pipe = ScanPipeline(config=ScanConfig.load(config))
        pipe.clustering = clusters
        if previous is not None:
            pipe.previous = previous_clusters(previous)
        pipe.load_detector(detector)
        if clusters:
            pipe.load_cluster_detector(cluster_detector)
        with progress_bar(enabled=not quiet, console=console) as bar:
            task = bar.add_task("reading calls", total=None)
            calls = read_calls(
                logs,
                progress=lambda n: bar.advance(task, n),
                transform=frame_batch(lo, hi),
                skip=UNREAD_FIELDS,
            )
            bar.update(task, total=calls.n_good + calls.n_bad, completed=calls.n_good + calls.n_bad)
        _read(console, "calls", calls)
        # hand the decoded records' pages back to the OS: Arrow's allocator keeps freed pages,
        # and the rest of the scan's peak RSS would carry them (~1 GB at 1M calls)
        pa.default_memory_pool().release_unused()
        frame = pl.from_arrow(calls.table)
        assert isinstance(frame, pl.DataFrame)
        if frame.height < calls.n_good:
            console.print(f"{frame.height:,} of {calls.n_good:,} calls in the time window")
        lf = frame.lazy()
        acc_lf = mod_lf = None
        if accounts is not None:
            acc = read_accounts(accounts)
            _read(console, "accounts", acc)
            acc_lf = pl.from_arrow(acc.table).lazy()  # type: ignore[union-attr]
        if models is not None:
            mod = read_models(models)
            _read(console, "models", mod)
            mod_lf = pl.from_arrow(mod.table).lazy()  # type: ignore[union-attr]
        with console.status("scoring accounts and clusters"):
            result = pipe.scan(lf, acc_lf, mod_lf)
        verdicts, features = result.verdicts, result.features
    except DistillwatchError as exc:
        # errors are printed under --quiet too
        Console(stderr=True).print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    out.mkdir(parents=True, exist_ok=True)
    write_verdicts(verdicts, out)
    write_clusters(result.clusters, out)
    with console.status("writing report"):
        page = render_scan_report(
            verdicts,
            features,
            lf,
            n_calls=frame.height,
            clusters=result.clusters,
            edges=result.edges,
        )
        (out / "report.html").write_text(page)
    elapsed = time.perf_counter() - t0
    _print_top(console, verdicts)
    console.print(
        f"{frame.height:,} calls, {verdicts.height:,} accounts scored in {elapsed:.1f} s -> "
        f"{out / 'report.html'}"
    )


def _print_top(console: Console, verdicts: pl.DataFrame, n: int = 10) -> None:
    counts = verdicts.group_by("tier").len()
    tiers = {r["tier"]: r["len"] for r in counts.to_dicts()}
    console.print(
        "tiers: "
        + ", ".join(f"{t} {tiers.get(t, 0):,}" for t in ("block", "throttle", "watch", "allow"))
    )
    table = Table(title=f"top {n} accounts")
    for col in ("account", "score", "tier", "calls", "top reason"):
        table.add_column(col, overflow="fold")
    for row in verdicts.head(n).to_dicts():
        reason = row["reasons"][0] if row["reasons"] else ""
        table.add_row(
            row["account_id"], f"{row['score']:.3f}", row["tier"], f"{row['n_calls']:,}", reason
        )
    console.print(table)
