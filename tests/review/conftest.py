from __future__ import annotations

from pathlib import Path

import pytest

from bastion.app import build_runtime
from bastion.events.codec import convert_event
from bastion.review.service import attach_review
from bastion.settings import Settings

T0 = 1_795_132_800_000  # 2026-11-20T00:00:00Z
H = 3_600_000


def ev(i: int, etype: str, actor: str, ts: int, **rest):
    return convert_event({"id": f"e{i}", "type": etype, "ts": ts, "actor": actor, **rest})


def report(i: int, reporter: str, subject: str, ts: int, reason: str = "spam", kind: str = "account"):
    return ev(i, "report.create", reporter, ts, subject={"kind": kind, "id": subject}, reason=reason)


@pytest.fixture()
def runtime(tmp_path: Path):
    settings = Settings.load(db_path=tmp_path / "review.db", rules_dir=tmp_path / "rules")
    rt = build_runtime(settings, out_dir=None, rules_dir=False)
    svc = attach_review(rt, settings)
    rt.settings_ = settings
    yield rt, svc
    svc.store.close()
