"""The work behind `bastion replay` and `bastion demo` (kept out of the argument parsing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bastion.app import Runtime, build_runtime
from bastion.events.jetstream import JetstreamMapper
from bastion.progress import console, progress, stage
from bastion.progress import count_lines as _count_lines
from bastion.settings import Settings
from bastion.sources.files import items


def count_lines(path: Path | str) -> int | None:
    if isinstance(path, str):
        return None
    return _count_lines(path)


def replay_progress(total: int | None, skip: int = 0, con: Console | None = None, every_s: float = 10.0) -> Any:
    """A context manager yielding ``update(n)`` for a replay (:func:`bastion.progress.progress`: a rich bar with
    events/s and ETA on a terminal, a plain line every ``every_s`` seconds elsewhere)."""
    import contextlib

    @contextlib.contextmanager
    def run() -> Any:
        with progress("replay", total, "events", completed=skip, every_s=every_s, con=con or console) as p:
            yield lambda n: p.update(skip + n)

    return run()


def replay_file(settings: Settings, events: Path | str, out: Path, fmt: str = "canonical",
                rules_dir: Path | None | bool = None, progress: bool = True,
                runtime: Runtime | None = None, close: bool = True, limit: int = 0,
                checkpoint_every: int = 50_000) -> dict[str, Any]:
    rt = runtime or build_runtime(settings, out_dir=out, rules_dir=rules_dir, resume=True)
    pos = rt.state.resume_position()
    skip = int(pos.get("line", 0)) if isinstance(pos, dict) else 0  # type: ignore[call-overload]
    if skip:
        rt.bad = int(pos.get("bad", 0)) if isinstance(pos, dict) else 0  # type: ignore[call-overload]
        console.print(f"resuming after line {skip:,} (checkpoint in {settings.state})")
    mapper = JetstreamMapper() if fmt == "jetstream" else None
    if isinstance(events, str) and events.startswith(("ws://", "wss://")):
        from bastion.sources.jetstream_live import live_items

        stream = live_items(events, mapper=mapper)
    else:
        stream = items(events, fmt, skip=skip, mapper=mapper)
    if limit:
        import itertools

        stream = itertools.islice(stream, limit)
    total = count_lines(events) if progress else None
    if progress:
        with replay_progress(total, skip) as update:
            rt.run(stream, progress=update, checkpoint_every=checkpoint_every)
    else:
        rt.run(stream, checkpoint_every=checkpoint_every)
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
    """Simulate, replay through every detector, evaluate against the truth, print the scoreboard, serve."""
    import time

    from bastion.evaluation.metrics import evaluate, print_scoreboard
    from bastion.sim.engine import SimConfig, simulate

    out.mkdir(parents=True, exist_ok=True)
    sim_dir, res_dir = out / "sim", out / "results"
    t0 = time.perf_counter()
    stage(f"[bold]1/5 simulating[/bold] {users:,} users for {days:g} days (seed {seed}) -> {sim_dir}")
    simulate(SimConfig(users=users, days=days, seed=seed), sim_dir, progress=True)
    stage(f"[bold]2/5 replaying[/bold] through rules, models, linker and clusterers -> {res_dir}")
    import shutil
    from dataclasses import replace

    from bastion.app import DEFAULT_RULES_DIR

    # the demo works on its own copy of the rule pack (drafts saved from the UI land there) and its own database
    rules_dir = out / "rules"
    if rules_dir.exists():
        shutil.rmtree(rules_dir)
    shutil.copytree(settings.rules_dir or DEFAULT_RULES_DIR, rules_dir)
    db_path = out / "bastion.db"
    for stale in out.glob("bastion.db*"):
        stale.unlink()
    demo_settings = replace(settings, db_path=db_path, rules_dir=rules_dir)
    from bastion.app import Books
    from bastion.review.evaluation import queue_recorder

    books = Books()
    # hourly queue snapshots: the review evaluation ranks with them; the truth also backtests rule drafts. A
    # demo that serves builds the API's runtime (metrics, team console) and serves the one it replayed
    rt = build_runtime(demo_settings, "api" if serve else "embedded", out_dir=res_dir, books=books,
                       watchers=[queue_recorder(books, sim_dir / "truth.json")], truth_path=sim_dir / "truth.json")
    summary = replay_file(demo_settings, sim_dir / "events.jsonl", res_dir, runtime=rt, close=False)
    print_summary(summary, res_dir)
    console.print(f"review queue ranked by: [bold]{rt.queue.ranking}[/bold]{_trained_on(rt.queue.prioritiser)}")
    stage("[bold]3/5 evaluating[/bold] against the simulator's ground truth")
    plots: dict[str, Any] = {}
    timeline = None
    try:
        # the review queue's exposure prevented from the hourly snapshots, as `bastion review eval` scores it
        from bastion.evaluation.harm import harm_over_time
        from bastion.review.evaluation import from_runtime, queue_metrics

        rep = from_runtime(rt)
        with progress("review queue: orderings at 10 and 50 cases/hour"):
            review = queue_metrics(rep, rt.queue.prioritiser)
        with progress("review queue: harm captured hour by hour"):
            timeline = harm_over_time(rep, rt.queue.prioritiser)
        with progress("detection metrics"):
            metrics = evaluate(sim_dir / "truth.json", res_dir, plots=plots, review=review)
    except Exception as exc:  # the scoreboard still prints the rest
        console.print(f"[yellow]review evaluation failed: {exc}[/yellow]")
        plots.clear()
        metrics = evaluate(sim_dir / "truth.json", res_dir, plots=plots)
    metrics["review_queue"]["ranking"] = rt.queue.ranking
    if timeline is not None:
        metrics["review_queue"]["harm_over_time"] = timeline
    (res_dir / "metrics.json").write_text(__import__("json").dumps(metrics, indent=2, default=str))
    print_scoreboard(metrics)
    stage("[bold]4/5 writing the HTML report[/bold]")
    report = write_demo_report(metrics, plots, out / "report.html", timeline)
    stage(f"demo pipeline took {time.perf_counter() - t0:,.0f} s; results in {res_dir}")
    print(f"HTML evaluation report: {report.resolve()}", flush=True)
    if not serve:
        rt.close()
        return
    stage("[bold]5/5 serving[/bold] the reviewer UI and API (Ctrl-C to stop)")
    from bastion.web.server import serve_forever

    seed_admin = _seed_admin(demo_settings)
    if seed_admin:
        stage(f"  log in at http://{demo_settings.host}:{demo_settings.port}/ui/login as "
              f"[bold]{seed_admin[0]}[/bold] with password [bold]{seed_admin[1]}[/bold] (shown once)")
    stage(f"  API docs at http://{demo_settings.host}:{demo_settings.port}/docs")
    stage(f"  evaluation report: {report.resolve()}")
    serve_forever(demo_settings, runtime=rt)


def write_demo_report(metrics: dict[str, Any], plots: dict[str, Any], path: Path,
                      timeline: dict[str, Any] | None) -> Path:
    """The HTML report, with one line on stderr when matplotlib is missing (tables only)."""
    from bastion.evaluation.report import NO_MATPLOTLIB, have_matplotlib, write_report

    if not have_matplotlib():
        console.print(f"[yellow]{NO_MATPLOTLIB}[/yellow]")
    with progress("report"):
        return write_report(metrics, plots, path, timeline)


def _trained_on(model: Any) -> str:
    """Which simulated run a review prioritiser was trained on, for the console ("" for the formula)."""
    tr = (getattr(model, "meta_", None) or {}).get("trained_on") or {}
    return f" (trained on simulated seed {tr['seed']})" if tr.get("seed") is not None else ""


def _seed_admin(settings: Settings) -> tuple[str, str]:
    """Create the demo's admin with a random password (printed once by the caller)."""
    from bastion.commands.review import seed_admin

    return "admin", seed_admin(settings)
