"""`distillwatch simulate` (being written)."""

from __future__ import annotations

import typer


def simulate() -> None:
    """Not yet available."""
    raise typer.Exit(2)
