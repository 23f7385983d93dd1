from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from bastion.db.models import Base

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    schema = config.get_main_option("bastion_schema")
    engine = create_engine(url)
    with engine.begin() as conn:
        if schema:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            conn.execute(text(f'SET search_path TO "{schema}"'))
        context.configure(connection=conn, target_metadata=Base.metadata, version_table_schema=schema)
        context.run_migrations()


run_migrations_online()
