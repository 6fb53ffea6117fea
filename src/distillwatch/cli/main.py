"""The ``distillwatch`` command."""

from __future__ import annotations

import typer

from distillwatch import __version__
from distillwatch.cli import (
    attribute_cmd,
    demo_cmd,
    eval_cmd,
    gateway_cmd,
    rules_cmd,
    scan_cmd,
    simulate_cmd,
    train_cmd,
    validate_cmd,
    watermark_cmd,
)

app = typer.Typer(
    name="distillwatch",
    help="Detect, stop and prove adversarial distillation of LLM APIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"distillwatch {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Detect, stop and prove adversarial distillation of LLM APIs."""


app.command("demo")(demo_cmd.demo)
app.command("simulate")(simulate_cmd.simulate)
app.command("eval")(eval_cmd.evaluate)
app.command("validate")(validate_cmd.validate)
app.command("scan")(scan_cmd.scan)
app.command("train")(train_cmd.train)
app.add_typer(rules_cmd.rules_app, name="rules")
app.add_typer(watermark_cmd.watermark_app, name="watermark")
app.add_typer(attribute_cmd.attribute_app, name="attribute")
app.add_typer(gateway_cmd.gateway_app, name="gateway")

if __name__ == "__main__":
    app()
