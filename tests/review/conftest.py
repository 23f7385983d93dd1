from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from bastion.app import build_runtime
from bastion.events.codec import convert_event
from bastion.settings import Settings

T0 = 1_795_132_800_000  # 2026-11-20T00:00:00Z
H = 3_600_000


def ev(i: int, etype: str, actor: str, ts: int, **rest):
    return convert_event({"id": f"e{i}", "type": etype, "ts": ts, "actor": actor, **rest})


def report(i: int, reporter: str, subject: str, ts: int, reason: str = "spam", kind: str = "account"):
    return ev(i, "report.create", reporter, ts, subject={"kind": kind, "id": subject}, reason=reason)


POSTGRES_URL = os.environ.get("BASTION_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgres"])
def review_db(request, tmp_path: Path):
    """Where a review store lives: a SQLite file, or a fresh schema of the machine's PostgreSQL (dropped after)."""
    if request.param == "sqlite":
        yield tmp_path / "review.db"
        return
    from bastion.review.store import ReviewStore

    url = f"{POSTGRES_URL}?schema=review_test_{uuid.uuid4().hex[:10]}"
    yield url
    ReviewStore(url).drop_schema()


@pytest.fixture()
def runtime(tmp_path: Path, review_db):
    extra = {"review_db": review_db} if isinstance(review_db, str) else {"db_path": review_db}
    settings = Settings.load(env={}, rules_dir=tmp_path / "rules", **extra)
    rt = build_runtime(settings, out_dir=None, rules_dir=False)
    svc = rt.review
    assert svc is not None
    rt.settings_ = settings
    yield rt, svc
    svc.store.close()
