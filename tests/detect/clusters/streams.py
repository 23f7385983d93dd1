"""Hand-made streams: planted groups beside the crowds and households that must not be flagged."""

from __future__ import annotations

import random
from typing import Any

import msgspec

from bastion.events.codec import decode_event

T0 = 1_795_132_800_000
MIN = 60_000
HOUR = 60 * MIN

SPAM = "limited offer win a brand new phone today just click the link and claim your prize now"
BENIGN = ["had a lovely walk by the river this morning", "anyone watching the game tonight",
          "new recipe for banana bread turned out great", "my cat knocked the plant over again",
          "reading a great book about the history of maps", "traffic was terrible on the way home"]


def chatter(rng: random.Random) -> str:
    words = " ".join(BENIGN).split()
    return " ".join(rng.sample(words, 9))


class Stream:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, ts: int, actor: str, type_: str, **fields: Any) -> None:
        self.rows.append({"id": f"e{len(self.rows)}", "type": type_, "ts": int(ts), "actor": actor, **fields})

    def events(self) -> list[Any]:
        rows = sorted(self.rows, key=lambda r: r["ts"])
        return [decode_event(msgspec.json.encode(r)) for r in rows]


def background(s: Stream, rng: random.Random, n: int = 150, hours: int = 12) -> list[str]:
    users = [f"b{i}" for i in range(n)]
    for u in users:
        s.add(T0 - 400 * 24 * HOUR + rng.randrange(300 * 24 * HOUR), u, "account.create",
              profile={"email_domain": "gmail.com"}, ctx={"ip": f"10.{rng.randrange(250)}.{rng.randrange(250)}.1",
                                                          "device": f"dev-{u}"})
    for h in range(hours):
        for u in rng.sample(users, 40):
            t = T0 + h * HOUR + rng.randrange(HOUR)
            r = rng.random()
            if r < 0.4:
                s.add(t, u, "post.create", post={"id": f"p{len(s.rows)}", "text": chatter(rng)})
            elif r < 0.7:
                s.add(t, u, "graph.follow", target=rng.choice(users))
            else:
                s.add(t, u, "post.engage", kind="like", post={"id": f"pp{rng.randrange(500)}", "author": "b0"})
    return users


def spam_ring(s: Stream, rng: random.Random, k: int = 6, hours: int = 6) -> list[str]:
    ring = [f"s{i}" for i in range(k)]
    for h in range(hours):
        for u in ring:
            t = T0 + h * HOUR + rng.randrange(10 * MIN)
            words = SPAM.split()
            words.insert(rng.randrange(len(words)), rng.choice(["!!", "wow", "hurry", "now"]))
            s.add(t, u, "post.create", post={"id": f"p{len(s.rows)}", "text": " ".join(words),
                                             "urls": ["https://win-prize.top/x1"]})
    return ring


def viral_moment(s: Stream, rng: random.Random, users: list[str], tag: str = "eclipse42") -> None:
    """An organic viral moment: many ordinary accounts share one link and tag within minutes, once each."""
    for u in users:
        t = T0 + 3 * HOUR + rng.randrange(20 * MIN)
        s.add(t, u, "post.create", post={"id": f"p{len(s.rows)}", "text": chatter(rng),
                                         "urls": ["https://news.example.com/live/1"], "hashtags": [tag]})


def follow_farm(s: Stream, rng: random.Random, k: int = 8, orders: int = 5) -> list[str]:
    farm = [f"f{i}" for i in range(k)]
    for o in range(orders):
        cust = f"cust{o}"
        t0 = T0 + o * 2 * HOUR
        for u in farm:
            s.add(t0 + rng.randrange(1000, 2 * MIN), u, "graph.follow", target=cust)
    return farm


def celebrity_crowd(s: Stream, rng: random.Random, users: list[str], celebs: int = 4) -> None:
    """Popular targets: everyone follows and likes the celebrities, also within minutes of each other."""
    for c in range(celebs):
        for j in range(300):  # the celebrity is popular before the crowd arrives
            s.add(T0 - 10 * 24 * HOUR + j * MIN, f"fan{c}_{j}", "graph.follow", target=f"celeb{c}")
        t0 = T0 + c * 2 * HOUR
        for u in users[:60]:
            s.add(t0 + rng.randrange(1000, 2 * MIN), u, "graph.follow", target=f"celeb{c}")


def bot_infra(s: Stream, k: int = 7) -> list[str]:
    bots = [f"x{i}" for i in range(k)]
    for i, u in enumerate(bots):
        s.add(T0 + i * MIN, u, "account.create", profile={"email_domain": "mailinator.com", "avatar": "default"},
              ctx={"ip": f"45.83.5.{i % 2}", "device": "emulator-1"})
        s.add(T0 + HOUR + i * MIN, u, "account.login", ctx={"ip": f"45.83.5.{i % 2}", "device": "emulator-1"})
    return bots


def household_and_office(s: Stream, rng: random.Random) -> tuple[list[str], list[str]]:
    home = [f"h{i}" for i in range(4)]
    for u in home:
        s.add(T0 - 300 * 24 * HOUR + rng.randrange(100 * 24 * HOUR), u, "account.create",
              profile={"email_domain": "gmail.com"}, ctx={"ip": "73.1.2.3", "device": f"dev-{u}"})
        s.add(T0 + rng.randrange(HOUR), u, "account.login", ctx={"ip": "73.1.2.3", "device": f"dev-{u}"})
    office = [f"o{i}" for i in range(40)]
    for u in office:
        s.add(T0 + rng.randrange(HOUR), u, "account.login", ctx={"ip": "198.51.100.7", "device": f"dev-{u}"})
    return home, office


def like_farm(s: Stream, rng: random.Random, k: int = 12, orders: int = 5, part: float = 0.7) -> list[str]:
    """A stealthy like farm: each order a low-follower customer posts, and most members like the post within
    3 hours; the members do not follow the customers, and between orders they like random chatter."""
    farm = [f"lf{i}" for i in range(k)]
    customers = [f"lcust{i}" for i in range(3)]
    for o in range(orders):
        cust = customers[o % len(customers)]
        t0 = T0 + o * 5 * HOUR
        pid = f"lfpost{o}"
        s.add(t0, cust, "post.create", post={"id": pid, "text": chatter(rng)})
        for u in farm:
            if rng.random() < part:
                s.add(t0 + rng.randrange(MIN, 3 * HOUR), u, "post.engage", kind="like",
                      post={"id": pid, "author": cust})
    return farm


def fans(s: Stream, rng: random.Random, k: int = 15, posts: int = 6) -> list[str]:
    """Organic fans: followers of one author liking most of its posts soon after each (links nobody)."""
    users = [f"fan{i}" for i in range(k)]
    for u in users:
        s.add(T0 - 30 * 24 * HOUR, u, "graph.follow", target="star")
    for p in range(posts):
        t0 = T0 + p * 2 * HOUR
        pid = f"starpost{p}"
        s.add(t0, "star", "post.create", post={"id": pid, "text": chatter(rng)})
        for u in users:
            if rng.random() < 0.8:
                s.add(t0 + rng.randrange(MIN, HOUR), u, "post.engage", kind="like", post={"id": pid, "author": "star"})
    return users


def campaign(s: Stream, rng: random.Random, k: int = 10, waves: int = 4) -> list[str]:
    """A campaign: waves every few hours in which most members post the campaign's hashtags and links."""
    members = [f"cm{i}" for i in range(k)]
    tags = ["dampcover", "damptruth", "dampgate"]
    urls = [f"https://damp-leaks.info/a/{i}" for i in range(3)]
    for w in range(waves):
        t0 = T0 + w * 4 * HOUR
        for u in members:
            if rng.random() < 0.8:
                s.add(t0 + rng.randrange(1000, 20 * MIN), u, "post.create",
                      post={"id": f"p{len(s.rows)}", "text": chatter(rng), "hashtags": rng.sample(tags, 2),
                            "urls": [rng.choice(urls)]})
    return members
