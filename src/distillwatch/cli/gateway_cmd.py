"""``distillwatch gateway``: the inline proxy, and loading scan decisions for it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from distillwatch.core.errors import DistillwatchError

gateway_app = typer.Typer(
    help="Inline OpenAI-compatible proxy that logs, scores and enforces in real time.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@gateway_app.callback()
def gateway(
    ctx: typer.Context,
    upstream: str | None = typer.Option(
        None, "--upstream", help="Model API base URL, e.g. http://127.0.0.1:8000."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Gateway config YAML (keys, sink, policy...)."
    ),
    listen: str | None = typer.Option(
        None, "--listen", help="HOST:PORT for the proxy (default 127.0.0.1:8080)."
    ),
    admin_listen: str | None = typer.Option(
        None, "--admin-listen", help="HOST:PORT for the admin endpoint."
    ),
    sink: str | None = typer.Option(
        None, "--sink", help="Event sink URI: file://FOLDER or nats://HOST:PORT/SUBJECT."
    ),
    decisions: str | None = typer.Option(
        None, "--decisions", help="Decision store URI: sqlite://PATH or redis://HOST:PORT."
    ),
    limits: str | None = typer.Option(
        None, "--limits", help="Rate-limit storage URI: memory:// or redis://HOST:PORT."
    ),
    policy: Path | None = typer.Option(
        None, "--policy", help="Policy YAML (overrides the config's)."
    ),
    live_mode: str | None = typer.Option(
        None, "--live-mode", help="Live scoring: process, thread or off."
    ),
) -> None:
    """Run the gateway (with no sub-command): ``distillwatch gateway --upstream URL --config FILE``."""
    if ctx.invoked_subcommand is not None:
        return
    from distillwatch.gateway.config import GatewayConfig
    from distillwatch.gateway.server import run

    console = Console(stderr=True)
    try:
        cfg = GatewayConfig.load(
            config,
            upstream=upstream,
            listen=listen,
            admin_listen=admin_listen,
            sink=sink,
            decisions=decisions,
            limits=limits,
            policy=str(policy.resolve()) if policy else None,
            live_mode=live_mode,
        )
    except DistillwatchError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(
        f"gateway {cfg.node}: {cfg.listen} -> {cfg.upstream}; admin {cfg.admin_listen or 'off'}; "
        f"sink {cfg.sink}; decisions {cfg.decisions or 'none'}; limits {cfg.limits}; "
        f"{len(cfg.policy.rules)} policy rule(s){' (shadow)' if cfg.policy.shadow else ''}",
        soft_wrap=True,
    )
    run(cfg)


@gateway_app.command("load-decisions")
def load_decisions(
    scan_dir: Path = typer.Argument(..., help="A `distillwatch scan --out` folder."),
    store: str = typer.Option(
        ..., "--store", help="sqlite://PATH or redis://HOST:PORT[/DB][?prefix=dw]."
    ),
) -> None:
    """Publish a scan's account and cluster verdicts to a decision store (gateways hot-reload)."""
    from distillwatch.gateway.decisions import publish_scan

    console = Console(stderr=True)
    try:
        with console.status(f"loading {scan_dir} into {store}"):
            gen, n_acc, n_cl = publish_scan(scan_dir, store)
    except DistillwatchError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # a store that cannot be reached
        console.print(f"[red]error:[/red] {store}: {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(f"generation {gen}: {n_acc:,} accounts, {n_cl:,} clusters -> {store}")


@gateway_app.command("drain")
def drain(
    uri: str = typer.Argument(
        ..., help="nats://HOST:PORT/SUBJECT?stream=NAME (the gateways' sink)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for the segment files (scan reads it)."),
    durable: str = typer.Option(
        "distillwatch-drain", "--durable", help="Durable consumer name (resumes where it left)."
    ),
    fmt: str = typer.Option("parquet", "--format", help="parquet or jsonl."),
    segment_rows: int = typer.Option(50_000, "--segment-rows", help="Calls per segment (at most)."),
    segment_seconds: float = typer.Option(
        60.0, "--segment-seconds", help="A segment is written after this long."
    ),
    max_messages: int | None = typer.Option(
        None, "--max-messages", help="Stop after this many messages (a batch job)."
    ),
    idle_seconds: float | None = typer.Option(
        None, "--idle-seconds", help="Stop when no message came for this long (a batch job)."
    ),
    batch: int = typer.Option(1000, "--batch", help="Messages per fetch."),
    ack_wait: float | None = typer.Option(
        None, "--ack-wait", help="Seconds before unacknowledged messages are redelivered."
    ),
    dedupe_segments: int = typer.Option(
        8, "--dedupe-segments", help="Drop a request id already in this many last segments."
    ),
) -> None:
    """Drain call records from JetStream into Parquet segments; acknowledged once written."""
    import asyncio

    from distillwatch.core.progress import progress_bar
    from distillwatch.gateway.drain import DrainConfig, DrainStats
    from distillwatch.gateway.drain import drain as run_drain

    console = Console(stderr=True)
    cfg = DrainConfig(
        uri=uri,
        out=out,
        durable=durable,
        fmt=fmt,
        segment_rows=segment_rows,
        segment_seconds=segment_seconds,
        max_messages=max_messages,
        idle_seconds=idle_seconds,
        batch=batch,
        ack_wait=ack_wait,
        dedupe_segments=dedupe_segments,
    )
    with progress_bar(console=console) as progress:
        task = progress.add_task("drain", total=max_messages)

        def show(s: DrainStats) -> None:
            progress.update(
                task,
                completed=s.received,
                description=f"drain: {s.written:,} written, {s.duplicates:,} duplicate, "
                f"{s.malformed:,} malformed, {s.segments:,} segment(s)",
            )

        try:
            stats = asyncio.run(run_drain(cfg, show))
        except DistillwatchError as exc:
            progress.stop()
            console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
            raise typer.Exit(2) from None
    console.print(
        f"{stats.received:,} message(s): {stats.written:,} call(s) written in "
        f"{stats.segments:,} segment(s) to {out}, {stats.duplicates:,} duplicate(s) dropped, "
        f"{stats.malformed:,} malformed, {stats.redelivered:,} redelivered, "
        f"{stats.acknowledged:,} acknowledged"
        f"{f'; stopped: {stats.stopped_by}' if stats.stopped_by else ''}",
        soft_wrap=True,
    )


@gateway_app.command("stub-upstream")
def stub_upstream(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(9000, "--port"),
    delay_ms: float = typer.Option(0.0, "--delay-ms", help="Added to every answer."),
) -> None:
    """A small fast OpenAI-compatible server (tests, benchmarks, demos)."""
    from distillwatch.gateway.stub import main

    main(["--host", host, "--port", str(port), "--delay-ms", str(delay_ms)])
