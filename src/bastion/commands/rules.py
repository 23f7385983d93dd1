"""CLI commands of this area; heavy imports stay inside the command functions so `bastion --help` is fast."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
