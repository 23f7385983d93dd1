"""initial: review cases and decisions, users, audit log, actions, model registry

Revision ID: 0001
Revises:
"""
from alembic import op

from bastion.db.models import Base

revision = "0001"
down_revision = None

_NO_CHANGE = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$ LANGUAGE plpgsql"""


def upgrade() -> None:
    bind = op.get_bind()
    Base.metadata.create_all(bind)
    if bind.dialect.name == "postgresql":
        op.execute(_NO_CHANGE)
        op.execute("CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
                   "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()")


def downgrade() -> None:
    Base.metadata.drop_all(op.get_bind())
