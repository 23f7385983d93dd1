"""A small hand-made world for linker tests: a suspended harasser, its returns, and benign look-alikes."""

from __future__ import annotations

import json

from bastion.events.codec import decode_event

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
