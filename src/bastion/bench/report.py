"""Printing of benchmark results: a flat table of metric -> value."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_result(name: str, result: dict[str, Any]) -> None:
    table = Table(title=f"bastion bench {name}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if isinstance(value, float):
            text = f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
        else:
            text = str(value)
        table.add_row(key, text)
    Console().print(table)
