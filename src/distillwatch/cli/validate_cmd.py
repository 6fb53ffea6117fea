"""`distillwatch validate` (being written)."""

from __future__ import annotations

import typer


def validate() -> None:
    """Not yet available."""
    raise typer.Exit(2)
