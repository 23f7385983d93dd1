"""CLI commands of this area: `bastion worker`, `bastion produce`, `bastion collect`. Heavy imports stay inside
the command functions so `bastion --help` is fast."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""

    @app.command("worker")
    def worker(
        source: str = typer.Option(..., "--source", help="redis://HOST:PORT/DB?prefix=NAME: or kafka://HOST:PORT/TOPIC"),
        state: str | None = typer.Option(None, "--state", help="redis://... (default: the --source URL for Redis)"),
        index: int = typer.Option(0, help="this worker's number, 0..workers-1 (owns partitions p % workers == index)"),
        workers: int = typer.Option(1, help="how many workers share the stream"),
        batch: int = typer.Option(200, help="events per committed batch"),
        max_skew_ms: int = typer.Option(0, help="event time a worker may run ahead of the others (0: exact "
                                         "embedded order; -1: no coordination)"),
        http_port: int = typer.Option(9100, help="health, readiness and /metrics port (0: off)"),
        exit_when_drained: bool = typer.Option(False, help="exit once the producer has ended and all is processed"),
        rules: Path | None = typer.Option(None, "--rules", help="rules directory (default: the built-in pack)"),
        config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
        latency_out: Path | None = typer.Option(None, hidden=True, help="write end-to-end latencies here (bench)"),
    ) -> None:
        """Run one stream worker: consume, process, commit effects and acknowledgements atomically."""
        from bastion.commands.scale_run import run_worker

        run_worker(source, state, index, workers, batch, max_skew_ms, http_port, exit_when_drained, rules, config,
                   latency_out)

    @app.command("produce")
    def produce(
        events: Path = typer.Argument(..., help="canonical JSON Lines file (- for stdin)"),
        to: str = typer.Option(..., "--to", help="redis://HOST:PORT/DB?prefix=NAME: or kafka://HOST:PORT/TOPIC"),
        partitions: int = typer.Option(12, help="partitions (fixed when the stream is first created)"),
        rate: float = typer.Option(0.0, help="events per second (0: as fast as possible)"),
        end: bool = typer.Option(True, help="mark the end of the stream when the file is done"),
        config: Path | None = typer.Option(None, "--config", help="settings file (TOML; Kafka client settings "
                                           "in [bastion.kafka])"),
    ) -> None:
        """Replay a file into a partitioned stream (partitioned by actor)."""
        from bastion.commands.scale_run import run_produce

        n = run_produce(events, to, partitions, rate or None, end, config)
        typer.echo(f"produced {n:,} events to {to}")

    @app.command("collect")
    def collect(
        state: str = typer.Option(..., "--state", help="the workers' redis://... state"),
        out: Path = typer.Option(..., "--out", "-o", help="directory for actions.jsonl and scores.jsonl"),
    ) -> None:
        """Write the results (actions, scores) that the workers of a distributed run committed."""
        from bastion.app import build_runtime
        from bastion.settings import Settings
        from bastion.state.redis import RedisState
        from bastion.worker import collect_results

        st = RedisState.from_url(state, worker="collect")
        rt = build_runtime(Settings.load(), "collect", state=st, resume=True, worker_name="collect")
        typer.echo(collect_results(st, out, rt))
