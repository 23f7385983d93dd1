"""``bastion labeler keygen|pubkey|serve``: the atproto labeler output (docs/integrate.md)."""

from __future__ import annotations

from pathlib import Path

import typer

labeler_app = typer.Typer(help="atproto labeler: make a signing key, show it, serve the label routes.",
                          no_args_is_help=True)


@labeler_app.command("keygen")
def keygen(
    out: Path = typer.Option(..., "--out", "-o", help="where to write the private key (PEM; created with mode 0600)"),
    curve: str = typer.Option("k256", "--curve", help="k256 (secp256k1, what atproto uses by default) or p256"),
    force: bool = typer.Option(False, "--force", help="replace an existing key file"),
) -> None:
    """Write a new private signing key and print its public key (did:key and multibase) for the labeler's DID
    document (#atproto_label). Keep the key file out of the repository."""
    from bastion.labeler.keys import LabelerKeyError, write_new_key

    try:
        key = write_new_key(out, curve, force)
    except LabelerKeyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote a {key.curve.name} private key to {out} (mode 0600)", err=True)
    typer.echo(f"did:key: {key.did_key}")
    typer.echo(f"publicKeyMultibase: {key.multibase}")


@labeler_app.command("pubkey")
def pubkey(config: Path | None = typer.Option(None, "--config", help="settings file (TOML)")) -> None:
    """Print the public key of the configured labeler key (labeler_key_path or BASTION_LABELER_KEY)."""
    from bastion.commands.core import _settings
    from bastion.labeler.sink import load_key
    from bastion.settings import SettingsError

    try:
        key = load_key(_settings(config))
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"did:key: {key.did_key}")
    typer.echo(f"publicKeyMultibase: {key.multibase}")


@labeler_app.command("serve")
def serve(
    host: str | None = typer.Option(None, "--host", help="address to listen on (default: settings host)"),
    port: int | None = typer.Option(None, "--port", help="port (default: settings port)"),
    config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
) -> None:
    """Serve queryLabels and subscribeLabels over the label log alone (no engine), e.g. beside a worker or
    `bastion replay` that writes the log with labeler_enabled."""
    import uvicorn

    from bastion.commands.core import _settings
    from bastion.labeler.log import LabelLog
    from bastion.labeler.routes import create_labeler_app
    from bastion.labeler.sink import label_db_path
    from bastion.observability import setup_logging
    from bastion.web.server import uvicorn_options

    settings = _settings(config, host=host, port=port)
    setup_logging(settings.log_json)
    path = label_db_path(settings)
    app = create_labeler_app(LabelLog(path))
    typer.echo(f"labeler: serving {path} on http://{settings.host}:{settings.port}/xrpc/", err=True)
    uvicorn.run(app, **uvicorn_options(settings))


def register(app: typer.Typer) -> None:
    app.add_typer(labeler_app, name="labeler")
