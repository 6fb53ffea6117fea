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


@gateway_app.command("stub-upstream")
def stub_upstream(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(9000, "--port"),
    delay_ms: float = typer.Option(0.0, "--delay-ms", help="Added to every answer."),
) -> None:
    """A small fast OpenAI-compatible server (tests, benchmarks, demos)."""
    from distillwatch.gateway.stub import main

    main(["--host", host, "--port", str(port), "--delay-ms", str(delay_ms)])
