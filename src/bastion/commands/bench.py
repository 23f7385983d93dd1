"""`bastion bench NAME`: each benchmark lives in ``bastion.bench.<name>`` and exposes ``run(**options) -> dict``
and ``DESCRIPTION``; results print as a table and can be appended to docs/benchmarks.md."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import typer

BENCHMARKS = ("pipeline", "rules", "content", "bots", "linker", "clusters", "sim", "scale", "check", "memory")


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        name: str = typer.Argument(..., help=f"one of: {', '.join(BENCHMARKS)}"),
        events: int = typer.Option(0, help="stream size where the benchmark takes one (0 = its default)"),
        json_out: Path | None = typer.Option(None, "--json", help="also write the results as JSON here"),
        quick: bool = typer.Option(False, help="a small, fast run (for CI smoke checks)"),
    ) -> None:
        """Run a benchmark next to its baseline in the same run and print medians and ratios."""
        if name not in BENCHMARKS:
            raise typer.BadParameter(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
        try:
            mod = importlib.import_module(f"bastion.bench.{name}")
        except ModuleNotFoundError as exc:
            typer.echo(f"benchmark {name!r} is not available in this build ({exc})", err=True)
            raise typer.Exit(2) from None
        from bastion.progress import progress

        with progress(f"bench {name}"):
            result = mod.run(events=events or None, quick=quick)
        from bastion.bench.report import print_result

        print_result(name, mod.flat(result) if hasattr(mod, "flat") else result)
        if json_out:
            json_out.write_text(json.dumps(result, indent=2, default=str))
