"""Batch lockstep (CopyCatch) and the coordination network: planted groups found, look-alikes left alone."""

from __future__ import annotations

import random

from bastion.detect.clusters import ClusterConfig, CoordinationNetworkDetector, LockstepBatchDetector
from bastion.detect.clusters.batch import coordination_network, estimate_window, lockstep_groups
from bastion.state.memory import MemoryState

from .streams import (
    HOUR,
    T0,
    Stream,
    background,
    campaign,
    celebrity_crowd,
    fans,
    follow_farm,
    like_farm,
    viral_moment,
)
from .test_detectors import clusters_of, replay


def world(seed=0, with_follow_farm=True):
    rng = random.Random(seed)
    s = Stream()
    users = background(s, rng)
    lf = like_farm(s, rng, part=0.85)
    ff = follow_farm(s, rng) if with_follow_farm else []
    fan = fans(s, rng)
    camp = campaign(s, rng)
    viral_moment(s, rng, users[:120])
    viral_moment(s, rng, users[20:140], tag="verdict17")
    celebrity_crowd(s, rng, users)
    return s, lf, ff, fan, camp


def batch_only(cfg=None):
    cfg = cfg or ClusterConfig()
    return [LockstepBatchDetector(cfg), CoordinationNetworkDetector(cfg)]


def test_batch_lockstep_finds_farms_not_fans_or_crowds():
    s, lf, ff, fan, camp = world()
    rt = replay(s.events(), batch_only())
    found = clusters_of(rt, "lockstep_batch")
    assert sorted(ff) in found
    likes = next(c for c in found if c[0].startswith("lf"))
    assert set(likes) <= set(lf) and len(likes) >= 10   # members that liked at least two of the joined orders
    flagged = {m for c in found for m in c}
    assert flagged <= set(lf) | set(ff)        # no fans of "star", no celebrity crowd, no viral crowd
    ev = next(c.evidence for c in rt.clusters.clusters.values() if c.members == likes or sorted(c.members) == likes)
    assert ev["n_targets"] >= 2 and all(t.startswith("post:lfpost") for t in ev["targets"])


def test_coordination_network_finds_the_campaign_not_viral_moments():
    s, lf, ff, fan, camp = world()
    rt = replay(s.events(), batch_only())
    assert clusters_of(rt, "coordination_network") == [sorted(camp)]
    det = next(d for d in rt.detectors if isinstance(d, CoordinationNetworkDetector))
    assert det.window_ms is not None and 10 * 60_000 <= det.window_ms <= 6 * HOUR   # estimated, clipped


def test_null_model_dissolves_batch_lockstep_not_exclusive_co_sharing():
    # (follows are bucketed by day: on a stream shorter than a day shuffling cannot move them, so the planted
    # follow farm is left out here)
    s, lf, ff, fan, camp = world(with_follow_farm=False)
    rng = random.Random(1)
    live = [r for r in s.rows if r["ts"] >= T0]
    ts = [r["ts"] for r in live]
    rng.shuffle(ts)
    for r, t in zip(live, ts, strict=True):
        r["ts"] = t
    rt = replay(s.events(), batch_only())
    assert clusters_of(rt, "lockstep_batch") == []
    # hashtags and links only the campaign uses stay shared whatever the timestamps: like near-duplicate text,
    # this is content evidence, not a timing artefact (the viral crowds stay unflagged)
    assert {m for c in clusters_of(rt, "coordination_network") for m in c} <= set(camp)


def test_inputs_split_across_workers_give_the_same_clusters():
    """Two stream workers, each seeing only its own actors (in time order, one shared state), write
    per-account entries; the batch job over the stored entries finds what one engine finds."""
    s, lf, ff, fan, camp = world()
    events = s.events()
    whole = replay(events, batch_only())
    state = MemoryState()
    cfg = ClusterConfig()
    workers = [(dets := batch_only(cfg), runtime(dets, state)) for _ in range(2)]
    owner = {}
    for ev in events:
        part = owner.setdefault(ev.actor, len(owner) % 2)
        workers[part][1].engine.process(ev)
    for dets, rt in workers:
        for d in dets:
            d.save(rt.state)
    job = runtime(batch_only(cfg), state)
    job.run_batch_detectors()
    for kind in ("lockstep_batch", "coordination_network"):
        assert clusters_of(job, kind) == clusters_of(whole, kind) != []


def runtime(detectors, state):
    from bastion.app import build_runtime
    from bastion.settings import Settings

    return build_runtime(Settings.load(env={}), rules_dir=False, state=state, models=False, review=False,
                         extra_detectors=detectors, clusters_on=False)


def test_lockstep_groups_thresholds():
    cfg = ClusterConfig(min_size=3)
    farm = {f"a{i}" for i in range(6)}
    items = {"post:1": farm | {"x1"}, "post:2": farm | {"x2"}, "post:3": set(list(farm)[:4]) | {"x3", "x4"},
             "post:4": {"y1", "y2", "y3", "y4", "y5"}, "post:5": {f"z{i}" for i in range(200)}}
    groups = lockstep_groups(items, cfg)
    assert [g[0] for g in groups] == [sorted(farm)]
    assert groups[0][1] == ["post:1", "post:2", "post:3"]
    assert lockstep_groups(items, ClusterConfig(min_size=3, cc_min_jaccard=0.9)) == []


def test_coordination_network_needs_repeats_and_several_items():
    cfg = ClusterConfig(tag_window_ms=HOUR)
    uses = {"tag:a": [(0, "u1"), (60_000, "u2"), (5 * HOUR, "u1"), (5 * HOUR + 1, "u2")],
            "url:b": [(1000, "u1"), (2000, "u2")],
            "tag:viral": [(0, "v1"), (1, "v2"), (2, "v3")], "url:viral": [(0, "v1"), (1, "v2"), (2, "v3")]}
    window, edges = coordination_network(uses, cfg)
    assert window == HOUR
    assert [(a, b) for a, b, _, _ in edges] == [("u1", "u2")]   # the one-burst viral trio is no edge
    assert estimate_window({"x": [(0, "a"), (10, "b")]}, 0.5, 60_000, HOUR) == 60_000


def test_accounts_using_a_flagged_groups_own_links_and_texts_join_it():
    """A ring member that came back after its ring went quiet (an evader) posts the ring's own link and template:
    the coordination job attaches it to the group another method flagged."""
    ring = [f"r{i}" for i in range(10)]
    det = CoordinationNetworkDetector(ClusterConfig(tag_window_ms=HOUR))
    for i, m in enumerate(ring):
        det.record(m, "url:https://win-prize.top/x1", T0 + i * 60_000)
        det.record(m, "text:p1", T0 + i * 60_000)
    det.record("evader", "url:https://win-prize.top/x1", T0 + 30 * HOUR)
    det.record("evader", "text:p1", T0 + 30 * HOUR)
    det.record("bystander", "url:https://win-prize.top/x1", T0 + 40 * HOUR)   # one owned item is not enough
    det.seeds = {"near_duplicate-1": (ring, 0.9)}
    [(members, _, ev)] = det.clusters(MemoryState(), T0 + 48 * HOUR)
    assert members == sorted([*ring, "evader"]) and ev["seeded_by"] == "near_duplicate-1" and _ >= 0.9
    det.seeds = {}
    assert det.clusters(MemoryState(), T0 + 48 * HOUR) == []   # one burst: no co-sharing cluster of its own
