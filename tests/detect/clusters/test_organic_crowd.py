"""Organic crowds (issue 16, randomized training worlds): a group of established accounts, not created together,
acting alike is not a coordinated cluster unless another method agrees; the same behaviour from accounts
created in one burst is."""

from __future__ import annotations

import random

from bastion.detect.clusters import ClusterConfig, build_cluster_detectors

from .streams import HOUR, MIN, T0, Stream, background
from .test_detectors import clusters_of, replay

DAY = 24 * HOUR
GATED = ClusterConfig(crowd_max_burst=0.5)   # the gate is off by default (it costs the default world recall)
FAN_TEXTS = ["stream the new mira single now", "vote for mira today everyone", "mira deserves this win so much"]


def fandom_like(s: Stream, rng: random.Random, members: list[str], created: list[int], waves: int = 4) -> None:
    """Members posting near-identical fan texts with the fandom's hashtag in waves, following each other."""
    for u, c in zip(members, created, strict=True):
        s.add(c, u, "account.create", profile={"email_domain": "gmail.com"},
              ctx={"ip": f"10.1.{rng.randrange(250)}.{rng.randrange(250)}", "device": f"dev-{u}"})
        for v in members:
            if v != u:
                s.add(c + HOUR, u, "graph.follow", target=v)
    for w in range(waves):
        t0 = T0 + w * 3 * HOUR
        for u in members:
            if rng.random() < 0.9:
                s.add(t0 + rng.randrange(MIN, 40 * MIN), u, "post.create",
                      post={"id": f"p{len(s.rows)}", "text": f"{rng.choice(FAN_TEXTS)} {'!' * rng.randrange(3)}",
                            "hashtags": ["miraday"]})


def _run(created_of) -> tuple[list[str], dict[str, list[list[str]]]]:
    rng = random.Random(3)
    s = Stream()
    background(s, rng, n=60, hours=12)
    members = [f"fd{i}" for i in range(12)]
    fandom_like(s, rng, members, [created_of(i, rng) for i in range(len(members))])
    rt = replay(s.events(), build_cluster_detectors(GATED))
    return members, {k: clusters_of(rt, k) for k in ("near_duplicate", "coordination_network", "lockstep")}


def test_fandom_of_established_mutual_followers_posting_near_identical_texts_is_not_flagged() -> None:
    # accounts from 3 months to 4 years old, created on unrelated days
    members, found = _run(lambda i, rng: T0 - (90 + 120 * i + rng.randrange(30)) * DAY)
    flagged = {m for groups in found.values() for g in groups for m in g}
    assert not flagged & set(members), found


def test_the_same_texts_from_accounts_created_in_one_burst_are_a_campaign() -> None:
    members, found = _run(lambda i, rng: T0 - 2 * HOUR + i * 5 * MIN)
    (group,) = found["near_duplicate"]
    assert set(group) <= set(members) and len(group) >= 8, found


def test_the_organic_crowd_gate_is_off_by_default() -> None:
    rng = random.Random(3)
    s = Stream()
    background(s, rng, n=60, hours=12)
    members = [f"fd{i}" for i in range(12)]
    fandom_like(s, rng, members, [T0 - (90 + 120 * i + rng.randrange(30)) * DAY for i in range(len(members))])
    rt = replay(s.events(), build_cluster_detectors(ClusterConfig()))
    (group,) = clusters_of(rt, "near_duplicate")
    assert set(group) <= set(members) and len(group) >= 8
