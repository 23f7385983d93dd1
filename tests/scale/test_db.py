"""The Alembic migrations build the PostgreSQL tables with the columns of the embedded SQLite stores."""

from __future__ import annotations

import sqlite3
import uuid

import pytest
from tests.state.test_contract import POSTGRES_URL

pytestmark = pytest.mark.services
sqlalchemy = pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")
pytest.importorskip("psycopg")


def test_migrations_match_the_sqlite_review_schema(tmp_path):
    from bastion.db import upgrade
    from bastion.review.store import ReviewStore

    schema = f"bastion_db_{uuid.uuid4().hex[:10]}"
    url = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://")
    engine = sqlalchemy.create_engine(url)
    try:
        upgrade(url, schema)
        insp = sqlalchemy.inspect(engine)
        pg = {t: {c["name"] for c in insp.get_columns(t, schema=schema)} for t in insp.get_table_names(schema=schema)}
        ReviewStore(tmp_path / "r.db")
        db = sqlite3.connect(tmp_path / "r.db")
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for t in tables:
            if t in ("sqlite_sequence", "api_keys"):
                continue
            cols = {r[1] for r in db.execute(f"PRAGMA table_info({t})")}
            assert t in pg, f"table {t} missing in PostgreSQL"
            assert cols <= pg[t], f"{t}: {cols - pg[t]} missing"
        assert {"actions", "audit_log", "model_registry", "cases"} <= set(pg)
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'INSERT INTO "{schema}".audit_log (ts, actor, kind) VALUES (1, \'a\', \'k\')'))
        with pytest.raises(sqlalchemy.exc.DBAPIError), engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'DELETE FROM "{schema}".audit_log'))
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
