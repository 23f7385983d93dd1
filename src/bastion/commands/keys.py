"""``bastion keys add|list|revoke``: API keys for the platforms and tools that call Bastion's API. A key is
shown once when it is made; only its hash is stored. Every change is written to the audit log."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import typer

keys_app = typer.Typer(help="API keys (roles ingest, analyst, reviewer, admin): add, list, revoke.",
                       no_args_is_help=True)

_DURATION = re.compile(r"^(\d+)([hdw])$")
_UNIT_S = {"h": 3600, "d": 86400, "w": 7 * 86400}


def parse_expiry(value: str | None, now: float | None = None) -> float | None:
    """``30d``, ``12h``, ``2w`` from now, or an ISO date/time (UTC when no offset); None or ``never``: no expiry.

    >>> parse_expiry("2d", now=0.0), parse_expiry("never"), parse_expiry("2030-01-01")
    (172800.0, None, 1893456000.0)
    """
    if value is None or value.strip().lower() in ("", "never"):
        return None
    value = value.strip()
    now = time.time() if now is None else now
    m = _DURATION.match(value)
    if m:
        return now + int(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: use a duration like 30d, 12h, 2w, a date like 2027-01-31, "
                                 "or never") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _stores(config: Path | None):  # type: ignore[no-untyped-def]
    from bastion.commands.core import _settings
    from bastion.review.store import open_review_store
    from bastion.web.keys import ApiKeyStore

    settings = _settings(config)
    return settings, ApiKeyStore(settings.db_path), open_review_store(settings)


def _when(ts: float | None) -> str:
    return "never" if ts is None else datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


@keys_app.command("add")
def keys_add(
    name: str = typer.Argument(..., help="who or what uses the key, e.g. ingest-gateway"),
    role: str = typer.Option(..., "--role", help="ingest | analyst | reviewer | admin"),
    expires: str = typer.Option("90d", "--expires", help="30d, 12h, 2w, a date (2027-01-31) or never"),
    config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
) -> None:
    """Create a key and print it once (it is stored hashed and cannot be shown again)."""
    settings, keys, store = _stores(config)
    try:
        until = parse_expiry(expires)
        secret = keys.create(name, role, until)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    key_id = secret.split("_", 2)[1]
    store.audit("cli", "key.add", f"key:{key_id}", {"name": name, "role": role, "expires": until})
    typer.echo(f"created {role} key {key_id} for {name} (expires {_when(until)}) in {settings.db_path}")
    typer.echo("store it now; it is not shown again:", err=True)
    typer.echo(secret)


@keys_app.command("list")
def keys_list(config: Path | None = typer.Option(None, "--config", help="settings file (TOML)")) -> None:
    """List keys (id, name, role, created, expiry, status); secrets are never shown."""
    _settings, keys, _store = _stores(config)
    now = time.time()
    rows = keys.list()
    if not rows:
        typer.echo("no API keys")
        return
    typer.echo(f"{'id':<14}{'name':<24}{'role':<10}{'created':<22}{'expires':<22}status")
    for r in rows:
        exp = float(r["expires"]) if r["expires"] is not None else None  # type: ignore[arg-type]
        status = "revoked" if r["revoked"] else ("expired" if exp is not None and now >= exp else "active")
        created = _when(float(r["created"]))  # type: ignore[arg-type]
        typer.echo(f"{r['id']!s:<14}{str(r['name'])[:23]:<24}{r['role']!s:<10}{created:<22}{_when(exp):<22}{status}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="the key's id (from `bastion keys list`)"),
    config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
) -> None:
    """Revoke a key; requests with it are refused from now on."""
    _settings, keys, store = _stores(config)
    if not keys.revoke(key_id):
        typer.echo(f"error: no key {key_id!r} (see `bastion keys list`)", err=True)
        raise typer.Exit(2)
    store.audit("cli", "key.revoke", f"key:{key_id}", {})
    typer.echo(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
