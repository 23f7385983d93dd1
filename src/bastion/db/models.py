"""SQLAlchemy 2 models: the same tables as the embedded SQLite stores."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Index, Integer, MetaData, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    metadata = MetaData()


class ReviewMeta(Base):
    __tablename__ = "review_meta"
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Case(Base):
    __tablename__ = "cases"
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    subject_kind: Mapped[str] = mapped_column(Text)
    subject_id: Mapped[str] = mapped_column(Text)
    queue: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    opened_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    decided_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    p: Mapped[float] = mapped_column(Float, server_default="0")
    exposure: Mapped[float] = mapped_column(Float, server_default="0")
    priority: Mapped[float] = mapped_column(Float, server_default="0")
    decision: Mapped[str | None] = mapped_column(Text, nullable=True)
    body: Mapped[str] = mapped_column(Text)
    __table_args__ = (
        Index("cases_open_subject", "subject_kind", "subject_id", unique=True,
              postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'")),
        Index("cases_status_queue", "status", "queue"),
    )


class Decision(Base):
    __tablename__ = "decisions"
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    case_id: Mapped[str] = mapped_column(Text)
    subject_kind: Mapped[str] = mapped_column(Text)
    subject_id: Mapped[str] = mapped_column(Text)
    reviewer: Mapped[str] = mapped_column(Text)
    verdict: Mapped[str] = mapped_column(Text)
    policy: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text, server_default="")
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    decided_at: Mapped[float] = mapped_column(Float)
    queue: Mapped[str] = mapped_column(Text)
    priority: Mapped[float] = mapped_column(Float, server_default="0")
    sources: Mapped[str] = mapped_column(Text)
    reporters: Mapped[str] = mapped_column(Text)
    features: Mapped[str] = mapped_column(Text)
    __table_args__ = (Index("decisions_subject", "subject_kind", "subject_id"),)


class Reporter(Base):
    __tablename__ = "reporters"
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    confirmed: Mapped[float] = mapped_column(Float, server_default="0")
    rejected: Mapped[float] = mapped_column(Float, server_default="0")
    updated_at: Mapped[float] = mapped_column(Float)


class User(Base):
    __tablename__ = "users"
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    role: Mapped[str] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    disabled: Mapped[int] = mapped_column(Integer, server_default="0")


class Session(Base):
    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    user_name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    revoked: Mapped[int] = mapped_column(Integer, server_default="0")


class QueueSnapshot(Base):
    __tablename__ = "queue_snapshots"
    rowid: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    ts: Mapped[float] = mapped_column(Float)
    queue: Mapped[str] = mapped_column(Text)
    open_cases: Mapped[int] = mapped_column(Integer)
    breached: Mapped[int] = mapped_column(Integer)


class AuditLog(Base):
    """Append-only (a trigger refuses UPDATE and DELETE, as in SQLite)."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    ts: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text, server_default="")
    detail: Mapped[str] = mapped_column(Text, server_default="{}")
    __table_args__ = (Index("audit_kind", "kind", "seq"), Index("audit_subject", "subject", "seq"))


class Action(Base):
    __tablename__ = "actions"
    rowid: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(Text)
    ts: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(Text)
    subject_kind: Mapped[str] = mapped_column(Text)
    subject_id: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    stage: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    __table_args__ = (Index("actions_subject", "subject_kind", "subject_id"),
                      Index("actions_event", "event_id"))


class ModelVersion(Base):
    """Model registry metadata (the artifact's meta.json; arrays stay in the artifact store)."""

    __tablename__ = "model_registry"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[str] = mapped_column(String(50), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    created: Mapped[float] = mapped_column(Float)
    feature_schema: Mapped[str] = mapped_column(Text, server_default="[]")
    metrics: Mapped[str] = mapped_column(Text, server_default="{}")
    meta: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text, server_default="")
