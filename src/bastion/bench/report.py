"""Printing of benchmark results: a flat table of metric -> value."""

from __future__ import annotations

from collections.abc import Callable
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


def docs_main(section: str, description: str, run: Callable[..., dict[str, Any]],
              render: Callable[[dict[str, Any], bool], str]) -> None:
    """``python -m bastion.bench.NAME [--quick] [--events N] [--write-docs]``: run, print the results as JSON and
    (``--write-docs``) write ``render(results, quick)`` as the ``section`` of docs/benchmarks.md."""
    import argparse
    import json
    from pathlib import Path

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--write-docs", action="store_true", help=f"write the {section!r} section of docs/benchmarks.md")
    args = ap.parse_args()
    res = run(events=args.events, quick=args.quick)
    print(json.dumps(res, indent=2))
    if args.write_docs:
        from bastion.evaluation.docs import write_section

        write_section(Path("docs/benchmarks.md"), section, render(res, args.quick), title="# Benchmarks")
