"""Core commands: replay a stream into a results directory, serve the API, run the demo."""

from __future__ import annotations

from pathlib import Path

import typer

from bastion.settings import Settings, SettingsError


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return Settings.load(config, **overrides)  # type: ignore[arg-type]
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    @app.command("replay")
    def replay(
        events: str = typer.Argument(..., help="events file (JSON Lines), - for stdin, or a wss:// Jetstream URL "
                                                "(live, with --format jetstream; stop with Ctrl-C)"),
        out: Path = typer.Option(..., "--out", "-o", help="results directory to write"),
        fmt: str = typer.Option("canonical", "--format", "-f",
                                help="canonical | jetstream | atproto (captures, firehose commits, relay "
                                     "scenarios, Ozone events)"),
        limit: int = typer.Option(0, help="stop after this many source records (live streams)"),
        rules: Path | None = typer.Option(None, "--rules", help="rules directory (default: the built-in pack)"),
        no_rules: bool = typer.Option(False, "--no-rules", help="run without any rules"),
        state: str | None = typer.Option(None, "--state",
                                         help="memory (default) or sqlite:PATH for a durable, resumable run"),
        config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
        progress: bool = typer.Option(True, help="show a progress bar"),
        checkpoint_every: int = typer.Option(50_000, "--checkpoint-every", min=1,
                                             help="events between checkpoints of a durable --state"),
    ) -> None:
        """Process events in order, exactly as the live service would, and write the results directory.

        Bad lines go to OUT/dead_letters.jsonl and the run goes on (exit code 0). With --state sqlite:PATH a
        restarted run continues after the last checkpoint."""
        from bastion.commands.runner import replay_file

        live = events.startswith(("ws://", "wss://"))
        if live and fmt != "jetstream":
            typer.echo("error: a websocket source needs --format jetstream", err=True)
            raise typer.Exit(2)
        if not live and events != "-" and not Path(events).is_file():
            typer.echo(f"error: no such events file: {events}", err=True)
            raise typer.Exit(2)
        if fmt not in ("canonical", "jetstream", "atproto"):
            typer.echo(f"error: unknown --format {fmt!r} (canonical | jetstream | atproto)", err=True)
            raise typer.Exit(2)
        settings = _settings(config, state=state)
        if settings.db_path == Settings().db_path:
            # a replay's cases, audit log and API keys belong to its results, not to a shared database
            from dataclasses import replace

            settings = replace(settings, db_path=out / "bastion.db")
        try:
            summary = replay_file(settings, events if live else Path(events), out, fmt,
                                  rules_dir=False if no_rules else rules, progress=progress, limit=limit,
                                  checkpoint_every=checkpoint_every)
        except OSError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        from bastion.commands.runner import print_summary

        print_summary(summary, out)

    @app.command("serve")
    def serve(
        host: str | None = typer.Option(None, help="bind address (default 127.0.0.1)"),
        port: int | None = typer.Option(None, help="port (default 8080)"),
        rules: Path | None = typer.Option(None, "--rules", help="rules directory (hot-reloaded)"),
        config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
    ) -> None:
        """Serve the API (and the reviewer UI), with OpenAPI docs at /docs in development."""
        from bastion.web.server import serve_forever

        settings = _settings(config, host=host, port=port, rules_dir=rules)
        serve_forever(settings)

    @app.command("demo")
    def demo(
        users: int = typer.Option(20_000, help="simulated users"),
        days: float = typer.Option(2.0, help="simulated days"),
        seed: int = typer.Option(7, help="random seed"),
        out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="where the simulation and results go"),
        serve: bool = typer.Option(True, "--serve/--no-serve", help="serve the UI and API after the summary"),
        config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
    ) -> None:
        """The main job: simulate a platform, run every detector, evaluate, print the scoreboard, then serve
        the reviewer UI and API until stopped (--no-serve exits after the summary)."""
        from bastion.commands.runner import run_demo

        settings = _settings(config)
        run_demo(settings, users=users, days=days, seed=seed, out=out, serve=serve)
