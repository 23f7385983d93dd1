"""PostgreSQL schema for the shared records of a scaled-out deployment: review cases and decisions, applied
actions, the append-only audit log and model registry metadata (SQLAlchemy 2 models, Alembic migrations).

The tables and columns are those of the embedded SQLite stores (:mod:`bastion.review.store`,
:class:`bastion.actions.sinks.SqliteSink`), so data moves between the two unchanged.
``upgrade(url)`` applies the migrations (``alembic upgrade head`` with ``sqlalchemy.url`` set to ``url``)."""

from __future__ import annotations

from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str, schema: str | None = None):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    if schema:
        cfg.set_main_option("bastion_schema", schema)
    return cfg


def upgrade(url: str, schema: str | None = None, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url, schema), revision)
