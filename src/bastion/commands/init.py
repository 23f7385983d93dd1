"""``bastion init DIR``: a working folder for a first run - the default rule pack, a commented settings file
and a small sample event stream - so an installed Bastion runs without the repository or the data sets."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

CONFIG_NAME = "bastion.toml"
EVENTS_NAME = "events.jsonl"

CONFIG_TEMPLATE = """\
# Bastion settings (read by `--config bastion.toml`, or from $BASTION_CONFIG).
# Every setting can also be given as an environment variable: BASTION_<NAME IN CAPITALS>, which wins over
# this file. Relative paths are relative to the directory Bastion runs in: run the commands from this folder.
# Settings not listed here keep their defaults; an unknown name or a value that does not parse is refused.

[bastion]
# development | production (production requires secret_key and marks session cookies secure)
environment = "development"

# The rule pack (hot-reloaded by `bastion serve`): `bastion rules check rules/` validates it,
# `bastion rules test rules/` runs its fixture cases.
rules_dir = "rules"

# Where counters, labels and the repeat-offender index live: "memory" or "sqlite:PATH" (durable, resumable).
state = "memory"

# Review cases, UI users, API keys and the audit log (an embedded SQLite database).
db_path = ".bastion/bastion.db"

# The API and reviewer UI of `bastion serve`.
host = "127.0.0.1"
port = 8080

# Upper bounds on enforcement actions per hour (a misfiring rule cannot suspend everyone).
quotas = {"account.suspend" = 200, "account.limit" = 1000}

# Optional outputs and services (uncomment to use):
# webhook_url = "https://example.com/bastion-actions"   # every action is POSTed here as JSON
# redis_url = "redis://127.0.0.1:6379/0"
# postgres_url = "postgresql://bastion@127.0.0.1:5432/bastion"
# secret_key = "..."          # sessions and CSRF tokens; required in production (or BASTION_SECRET_KEY)
# models_dir = "models"       # models you train (`bastion train`); the shipped models are always available
# enable_embeddings = false   # the embedding tier of the text models (needs the `embed` extra)
"""


def write_project(target: Path, force: bool = False, seed: int = 0) -> dict[str, Path]:
    """Write the rule pack, the settings file and the sample stream into ``target``; refuses to overwrite
    any of them unless ``force``."""
    from bastion.packs import DEFAULT_PACK
    from bastion.packs.sample import write_sample

    paths = {"rules": target / "rules", "config": target / CONFIG_NAME, "events": target / EVENTS_NAME}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(existing)} already exist (use --force to overwrite)")
    target.mkdir(parents=True, exist_ok=True)
    if paths["rules"].exists():
        shutil.rmtree(paths["rules"])
    shutil.copytree(DEFAULT_PACK, paths["rules"])
    paths["config"].write_text(CONFIG_TEMPLATE, encoding="utf-8")
    write_sample(paths["events"], seed=seed)
    return paths


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(
        target: Path = typer.Argument(..., help="folder to create (or fill)"),
        force: bool = typer.Option(False, "--force", help="overwrite an existing rules/, bastion.toml or "
                                                          "events.jsonl there"),
        seed: int = typer.Option(0, help="seed of the sample event stream"),
    ) -> None:
        """Create a folder with the default rule pack (rules/), a commented settings file (bastion.toml) and a
        sample event stream (events.jsonl), ready for `bastion replay`."""
        try:
            paths = write_project(target, force=force, seed=seed)
        except (FileExistsError, OSError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        n = sum(1 for _ in paths["events"].open(encoding="utf-8"))
        typer.echo(f"wrote {paths['rules']}/ (the default rule pack), {paths['config']} and {paths['events']} "
                   f"({n} sample events)")
        typer.echo("next:")
        typer.echo(f"  cd {target}")
        typer.echo(f"  bastion replay {EVENTS_NAME} --out results --config {CONFIG_NAME}")
        typer.echo(f"  bastion serve --config {CONFIG_NAME}")
