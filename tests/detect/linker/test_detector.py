"""A small hand-made world: a suspended harasser, its returns, and a stranger behind a carrier NAT."""

from __future__ import annotations

import json
from pathlib import Path

from bastion.app import build_runtime
from bastion.detect.linker import Linker, build_linker, offender_history
from bastion.events.codec import decode_event
from bastion.settings import Settings
from bastion.state.sqlite import SqliteState

HOUR = 3_600_000
T0 = 1_790_000_000_000


class Stream:
    def __init__(self) -> None:
        self.events: list = []
        self.n = 0

    def add(self, t: int, etype: str, actor: str, ctx: dict | None = None, **kw) -> None:
        self.n += 1
        obj = {"id": f"e{self.n}", "type": etype, "ts": T0 + t, "actor": actor, **kw}
        if ctx:
            obj["ctx"] = ctx
        self.events.append(decode_event(json.dumps(obj)))


def parent_world(with_ctx: bool = True) -> Stream:
    """u2 harasses t1 and is suspended; 200 strangers share one carrier NAT address."""
    s = Stream()
    carrier = {"ip": "100.64.0.1"} if with_ctx else None
    for i in range(200):
        s.add(i, "account.update", f"b{i}", carrier,
              profile={"handle": f"person{i}", "display_name": f"Person {i}", "bio": f"likes thing {i}"})
    for i in range(30):
        s.add(300 + i, "account.update", f"f{i}", profile={"handle": f"famous{i}", "display_name": f"F {i}"})
    home = {"ip": "203.0.113.7", "device": "d-9f2"} if with_ctx else None
    s.add(1000, "account.update", "u2", home,
          profile={"handle": "maria_k", "display_name": "Maria K", "bio": "cyclist, baker", "avatar": "av1"})
    for i in range(12):
        s.add(2000 + i, "graph.follow", "u2", home, target=f"f{i}")
    for i in range(6):
        s.add(3000 + i * 60_000, "post.create", "u2", home,
              post={"id": f"p2_{i}", "text": "@t1 nobody cares about you, just get lost lol",
                    "reply_to_author": "t1", "mentions": ["t1"], "hashtags": ["t1isover"]})
    s.add(HOUR, "account.status", "u2", home, status="suspended", by="platform", reason="harassment")
    return s


def evader(s: Stream, actor: str = "u9", with_ctx: bool = True, t: int = 3 * HOUR) -> None:
    ctx = {"ip": "203.0.113.7", "device": "d-9f2"} if with_ctx else None
    s.add(t, "account.create", actor, ctx,
          profile={"handle": "mar1a_k2", "display_name": "Maria K", "bio": "cyclist, baker (back)"})
    for i in range(8):
        s.add(t + 1000 + i, "graph.follow", actor, ctx, target=f"f{i}")
    s.add(t + 60_000, "post.create", actor, ctx,
          post={"id": f"p{actor}", "text": "@t1 nobody cares, just get lost", "reply_to_author": "t1",
                "mentions": ["t1"]})


def stranger_on_carrier(s: Stream, actor: str = "u50", t: int = 3 * HOUR) -> None:
    """A new account whose only tie to u2's world is a carrier NAT address shared by 200 accounts."""
    s.add(t, "account.create", actor, {"ip": "100.64.0.1"},
          profile={"handle": "gardenfan", "display_name": "Tom B", "bio": "tomatoes"})
    for i in range(3):
        s.add(t + 1000 + i, "graph.follow", actor, {"ip": "100.64.0.1"}, target=f"f{20 + i}")


def _run(events, linker=None, state=None):
    linker = linker or build_linker()
    rt = build_runtime(Settings(), rules_dir=False, extra_detectors=[linker], state=state, models=False)
    applied = []
    for e in events:
        applied.extend(rt.engine.process(e) or [])
    return rt, linker, applied


def _links(applied, account):
    return [a for a in applied if a.action == "account.link" and a.subject.id == account]


def test_engine_emits_account_link_with_evidence_through_build_runtime():
    s = parent_world()
    evader(s, "u9")
    stranger_on_carrier(s, "u50")
    rt, linker, applied = _run(s.events)
    links = _links(applied, "u9")
    assert links, "the returning account was not linked"
    first = links[0]
    assert first.evidence["actions_seen"] == 0  # linked at account.create
    assert first.evidence["linked_to"] == "u2" and first.source == "linker"
    assert 0.5 <= first.score <= 1.0
    assert "same device as u2 (suspended 2 hours ago)" in first.evidence["lines"]
    assert any(line == "handle mar1a_k2 close to maria_k" for line in first.evidence["lines"])
    assert not _links(applied, "u50"), "a shared carrier NAT address linked a stranger"
    # rules read the best offender link; review got a repeat-offender case; scores carry evasion
    assert rt.links.best("u9").parent == "u2"
    assert rt.engine.scores.data[next(k for k in rt.engine.scores.data if k.id == "u9")]["evasion"] >= 0.5
    assert any(a.action == "review.enqueue" and a.subject.id == "u9" for a in applied)
    hist = linker.offender_history("u9")
    assert hist["linked_to"] == "u2" and hist["offender"]["reason"] == "harassment"
    assert linker.offender_history("u50") == {}


def test_links_without_ctx():
    """Bluesky-like: no IP, no device - name, bio, follows and targets still find the parent."""
    s = parent_world(with_ctx=False)
    evader(s, "u10", with_ctx=False)
    rt, linker, applied = _run(s.events)
    links = _links(applied, "u10")
    assert links and links[-1].evidence["linked_to"] == "u2"
    assert links[0].evidence["actions_seen"] <= 5
    assert not any("device" in line or "IP" in line for lk in links for line in lk.evidence["lines"])


def test_index_survives_restart_with_sqlite(tmp_path: Path):
    s = parent_world()
    db = tmp_path / "state.db"
    state = SqliteState(db)
    rt, _, _ = _run(s.events, Linker(), state)
    rt.checkpoint()
    rt.close()
    evader(s, "u9", t=5 * HOUR)
    later = s.events[-10:]
    state2 = SqliteState(db)
    linker2 = Linker()
    rt2, _, applied = _run(later, linker2, state2)
    assert len(linker2.index) == 1 and "u2" in linker2.index
    assert linker2.targeted.get("t1") == 2      # u2, counted before the restart (from state.kv), and u9
    links = _links(applied, "u9")
    assert links and links[0].evidence["linked_to"] == "u2"
    rt2.checkpoint()
    rt2.close()
    state3 = SqliteState(db)
    assert offender_history(state3, "u9")["linked_to"] == "u2"
    state3.close()


def test_check_is_dry_run():
    s = parent_world()
    rt, linker, _ = _run(s.events)
    evader(s, "u9")
    effects, _ctx = rt.engine.check(s.events[-10])
    assert any(e.action == "account.link" for e in effects)
    assert linker.profiles.get("u9") is None or not linker.profiles["u9"].created
    effects, _ctx = rt.engine.check(s.events[-1])          # a reply to t1: not counted by a dry run
    assert linker.targeted == {"t1": 1}


def test_targets_are_counted_once_per_account():
    """The global popularity of a reply target: distinct accounts that replied to, mentioned or messaged it."""
    s = parent_world()
    evader(s, "u9")
    evader(s, "u9", t=4 * HOUR)     # the same account targeting t1 again
    _, linker, _ = _run(s.events)
    assert linker.targeted == {"t1": 2}
