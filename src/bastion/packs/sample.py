"""A small sample event stream for ``bastion init``: canonical events (docs/events.md), a few hundred of them,
from ordinary accounts and from a handful of abusers the default pack catches - a link spammer posting a
known-bad domain, a copypasta ring, a sign-up burst from one IP and an insulting reply to a stranger.

The stream is generated (seeded, so the same ``seed`` gives the same events) rather than copied from a data set:
the texts are written here, and the timestamps end shortly before ``end_ms`` (default: now), so they always pass
the decoder's bounds on event time.

>>> evs = sample_events(seed=1, end_ms=1_795_132_800_000)
>>> len(evs) > 200, evs == sample_events(seed=1, end_ms=1_795_132_800_000)
(True, True)
>>> all(e["ts"] <= 1_795_132_800_000 for e in evs)
True
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any


def _words(text: str) -> list[str]:
    return text.split()


TOPICS = {
    "cycling": _words("ride bike gravel trails coast road climb legs flat tyre rain saddle chain hills descent "
                      "wind commute helmet route club sprint"),
    "baking": _words("sourdough starter rye loaf crust oven cinnamon rolls batch flour butter proof dough crumb "
                     "bread tart sugar recipe"),
    "music": _words("album gig bass guitar song chorus record vinyl band drummer playlist tour lyrics tune "
                    "venue headphones concert"),
    "gardening": _words("tomatoes slugs garlic basil seedlings compost soil beans roses weeds greenhouse harvest "
                        "pots mulch shed hose"),
}
FILLER = _words("today this week finally again honestly still really maybe just so the my a new old best "
                "little after before with without for about tried loved made found")
BAD_DOMAIN = "free-prizes.biz"          # on rules/lists/bad_domains.txt
COPYPASTA = "Big news everyone, the giveaway is live now, follow and share to enter before midnight"
INSULT = "@{handle} what an idiot take, nobody asked you"   # "idiot" is on rules/lists/slurs.txt

MINUTE = 60_000


def sample_events(seed: int = 0, end_ms: int | None = None, users: int = 30) -> list[dict[str, Any]]:
    """The events, oldest first; every one valid per the canonical schema (version 1)."""
    rng = random.Random(seed)
    end = int(time.time() * 1000) if end_ms is None else end_ms
    start = end - 6 * 60 * MINUTE            # six hours of activity
    events: list[dict[str, Any]] = []

    def add(etype: str, ts: int, actor: str, ctx: dict[str, str] | None = None, **fields: Any) -> None:
        ev: dict[str, Any] = {"id": "", "type": etype, "ts": ts, "actor": actor, "platform": "sample"}
        if ctx:
            ev["ctx"] = ctx
        ev.update(fields)
        events.append(ev)

    day = 24 * 60 * MINUTE
    people = [f"u{i:03d}" for i in range(users)]
    topic_of = {u: rng.choice(sorted(TOPICS)) for u in people}
    ip_of = {u: f"{rng.randrange(11, 220)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
             for u in people}                 # everyone on their own network

    def text(u: str) -> str:
        words = rng.sample(TOPICS[topic_of[u]], 4) + rng.sample(FILLER, rng.randrange(4, 9))
        rng.shuffle(words)
        return " ".join(words)

    for i, u in enumerate(people):           # ordinary accounts, made months ago on their own devices
        add("account.create", start - rng.randrange(20 * day, 90 * day), u,
            {"ip": ip_of[u], "device": f"d-{u}"},
            profile={"handle": f"{topic_of[u]}_{u}", "display_name": f"{topic_of[u].title()} fan {i}",
                     "bio": f"{' '.join(rng.sample(TOPICS[topic_of[u]], 3))}, views my own", "lang": "en",
                     "avatar": f"av-{u}"})
    for u in people:                          # a follow graph built over the weeks before, mostly by topic
        for v in people:
            if u != v and rng.random() < (0.4 if topic_of[u] == topic_of[v] else 0.05):
                add("graph.follow", start - rng.randrange(1, 20 * day), u, target=v)
    posts: list[tuple[str, str]] = []       # (post id, author)
    for n in range(140):                     # ordinary posts, replies among people of a topic, likes
        u = rng.choice(people)
        ts = start + rng.randrange(5 * 60 * MINUTE)
        pid = f"p{n:04d}"
        post: dict[str, Any] = {"id": pid, "text": text(u), "lang": "en", "hashtags": [topic_of[u]]}
        others = [(p, a) for p, a in posts if topic_of[a] == topic_of[u] and a != u]
        if others and rng.random() < 0.2:
            parent, author = rng.choice(others)
            post.update(reply_to=parent, reply_to_author=author)
        add("post.create", ts, u, {"ip": ip_of[u]}, post=post)
        posts.append((pid, u))
        for fan in rng.sample(people, rng.randrange(3)):
            if fan != u:
                add("post.engage", ts + rng.randrange(1, 60 * MINUTE), fan, kind="like",
                    post={"id": pid, "author": u})
    # a link spammer: a new account posting a known-bad domain ten times in ten minutes
    t_spam = start + 4 * 60 * MINUTE
    add("account.create", t_spam, "spam01", {"ip": "203.0.113.66", "device": "d-spam"},
        profile={"handle": "win_big_now", "bio": "", "lang": "en"})
    for k in range(10):
        add("post.create", t_spam + (k + 1) * MINUTE, "spam01", {"ip": "203.0.113.66"},
            post={"id": f"spam-p{k}", "text": f"claim your prize #{k} now", "urls": [f"https://{BAD_DOMAIN}/x{k}"]})
    # a copypasta ring: six accounts posting the same text within half an hour
    for k in range(6):
        add("post.create", t_spam + 15 * MINUTE + k * 4 * MINUTE, f"ring{k}", {"ip": f"192.0.2.{k + 1}"},
            post={"id": f"ring-p{k}", "text": COPYPASTA})
    # a sign-up burst: six accounts from one address within twenty minutes
    for k in range(6):
        add("account.create", t_spam + 50 * MINUTE + k * 3 * MINUTE, f"burst{k}",
            {"ip": "203.0.113.200", "device": f"d-burst{k}"}, profile={"handle": f"user{rng.randrange(10**6)}"})
    # an insult to a stranger
    victim = people[0]
    add("post.create", t_spam + 80 * MINUTE, "troll01", {"ip": "203.0.113.9"},
        post={"id": "troll-p1", "text": INSULT.format(handle=f"{topic_of[victim]}_{victim}"),
              "reply_to": "p0000" if ("p0000", victim) in posts else None, "mentions": [victim]})
    events.sort(key=lambda e: e["ts"])
    for i, ev in enumerate(events):
        ev["id"] = f"sample-{i:05d}"
        post = ev.get("post")
        if isinstance(post, dict):
            ev["post"] = {k: v for k, v in post.items() if v is not None}
    return events


def write_sample(path: Path, seed: int = 0, end_ms: int | None = None) -> int:
    """Write the sample stream as JSON Lines; returns the number of events."""
    events = sample_events(seed, end_ms)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for ev in events:
            fh.write(json.dumps(ev, separators=(",", ":")) + "\n")
    return len(events)
