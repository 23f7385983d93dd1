"""The work behind `bastion replay` and `bastion demo` (kept out of the argument parsing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bastion.app import Runtime, build_runtime
from bastion.events.jetstream import JetstreamMapper
from bastion.settings import Settings
from bastion.sources.files import items

console = Console(stderr=True)


def count_lines(path: Path) -> int | None:
    if str(path) == "-":
        return None
    n = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            n += chunk.count(b"\n")
    return n


def replay_file(settings: Settings, events: Path, out: Path, fmt: str = "canonical",
                rules_dir: Path | None | bool = None, progress: bool = True,
                runtime: Runtime | None = None, close: bool = True) -> dict[str, Any]:
    rt = runtime or build_runtime(settings, out_dir=out, rules_dir=rules_dir, resume=True)
    pos = rt.state.resume_position()
    skip = int(pos.get("line", 0)) if isinstance(pos, dict) else 0  # type: ignore[call-overload]
    if skip:
        rt.bad = int(pos.get("bad", 0)) if isinstance(pos, dict) else 0  # type: ignore[call-overload]
        console.print(f"resuming after line {skip:,} (checkpoint in {settings.state})")
    mapper = JetstreamMapper() if fmt == "jetstream" else None
    stream = items(events, fmt, skip=skip, mapper=mapper)
    total = count_lines(events) if progress else None
    if progress:
        with Progress(TextColumn("[bold]replay"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("events", total=total, completed=skip)
            rt.run(stream, progress=lambda n: bar.update(task, completed=skip + n))
    else:
        rt.run(stream)
    if mapper is not None:
        rt.ignored = dict(mapper.ignored)
    rt.run_batch_detectors()
    rt.checkpoint()
    summary = rt.write_results(out)
    if close:
        rt.close()
    return summary


def print_summary(summary: dict[str, Any], out: Path) -> None:
    table = Table(title=f"results in {out}")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("events", f"{summary['events']:,}")
    table.add_row("bad events (dead letters)", f"{summary['bad_events']:,}")
    table.add_row("duplicate events", f"{summary['duplicate_events']:,}")
    for kind, n in summary["actions_by_kind"].items():
        table.add_row(f"action {kind}", f"{n:,}")
    for kind, n in summary.get("shadow_actions_by_kind", {}).items():
        table.add_row(f"shadow {kind}", f"{n:,}")
    table.add_row("open review cases", f"{summary['open_cases']:,}")
    table.add_row("clusters", f"{summary['clusters']:,}")
    table.add_row("linked accounts", f"{summary['linked_accounts']:,}")
    if summary.get("events_per_second"):
        table.add_row("events/s", f"{summary['events_per_second']:,.0f}")
    Console().print(table)


def run_demo(settings: Settings, users: int, days: float, seed: int, out: Path, serve: bool) -> None:
    raise NotImplementedError
