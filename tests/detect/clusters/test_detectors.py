from __future__ import annotations

import random

from bastion.app import build_runtime
from bastion.detect.clusters import ClusterConfig, build_cluster_detectors
from bastion.detect.clusters.stream import LockstepDetector, NearDuplicateDetector
from bastion.settings import Settings
from bastion.state.memory import MemoryState

from .streams import (
    Stream,
    background,
    bot_infra,
    celebrity_crowd,
    follow_farm,
    household_and_office,
    spam_ring,
    viral_moment,
)


def replay(events, detectors=None, state=None):
    rt = build_runtime(Settings.load(env={}), rules_dir=False, state=state, models=False, review=False,
                       extra_detectors=detectors if detectors is not None else build_cluster_detectors(),
                       clusters_on=False)
    for ev in events:
        rt.engine.process(ev)
    rt.run_batch_detectors()
    return rt


def clusters_of(rt, kind):
    return [sorted(c.members) for c in rt.clusters.clusters.values() if c.kind == kind]


def world(seed=0):
    rng = random.Random(seed)
    s = Stream()
    users = background(s, rng)
    ring = spam_ring(s, rng)
    viral_moment(s, rng, users[:120])
    farm = follow_farm(s, rng)
    celebrity_crowd(s, rng, users)
    bots = bot_infra(s)
    home, office = household_and_office(s, rng)
    return s, ring, farm, bots, home, office


def test_each_method_finds_its_planted_group_and_nothing_else():
    s, ring, farm, bots, home, office = world()
    rt = replay(s.events())
    assert clusters_of(rt, "near_duplicate") == [sorted(ring)]
    assert clusters_of(rt, "lockstep") == [sorted(farm)]
    assert clusters_of(rt, "shared_infrastructure") == [sorted(bots)]
    flagged = set(rt.clusters.by_account)
    assert flagged == set(ring) | set(farm) | set(bots)   # no viral crowd, celebrity fans, household, office


def test_one_review_case_per_cluster_with_members_and_labels():
    s, ring, *_ = world()
    rt = replay(s.events())
    cases = [c for c in rt.queue.open_cases() if c.subject.kind == "cluster"]
    assert len(cases) == len(rt.clusters.clusters)
    assert all(c.queue == "coordination" for c in cases)
    assert rt.state.labels.has("account", ring[0], "coordinated", 10**15)
    # the cluster of an actor is readable in the rule language
    assert rt.registry.get("cluster.size") is not None


def test_streaming_flag_comes_while_the_group_acts():
    s, ring, farm, *_ = world()
    rt = replay(s.events())
    first = {c.kind: c.evidence.get("flagged_at") for c in rt.clusters.clusters.values()}
    assert first["near_duplicate"] is not None and first["lockstep"] is not None
    assert first["near_duplicate"] < max(e.ts_ms for e in s.events())


def test_null_model_shuffled_timestamps_dissolve_time_based_clusters():
    s, *_ = world()
    rng = random.Random(1)
    ts = [r["ts"] for r in s.rows if r["ts"] >= 1_795_132_800_000]
    rng.shuffle(ts)
    it = iter(ts)
    for r in s.rows:
        if r["ts"] >= 1_795_132_800_000:
            r["ts"] = next(it)
    rt = replay(s.events())
    assert clusters_of(rt, "lockstep") == []
    # identical spam stays identical whatever its timestamps: content evidence is not a timing artefact
    assert all(m.startswith("s") for c in clusters_of(rt, "near_duplicate") for m in c)


def test_streaming_windows_persist_through_state_kv():
    s, ring, farm, *_ = world()
    events = s.events()
    cut = len(events) // 2
    state = MemoryState()
    cfg = ClusterConfig()
    first = [NearDuplicateDetector(cfg), LockstepDetector(cfg)]
    rt = replay(events[:cut], first, state=state)      # finish() saves the windows to state.kv
    assert state.kv.get("clusters:clusters.lockstep", "window:actions")
    second = [NearDuplicateDetector(cfg), LockstepDetector(cfg)]
    rt2 = build_runtime(Settings.load(env={}), rules_dir=False, state=state, extra_detectors=second,
                        models=False, review=False, clusters_on=False)
    for ev in events[cut:]:
        rt2.engine.process(ev)
    whole = replay(events, [NearDuplicateDetector(cfg), LockstepDetector(cfg)])
    resumed = {tuple(sorted(c.members)) for book in (rt.clusters, rt2.clusters) for c in book.clusters.values()}
    assert set(map(tuple, clusters_of(whole, "near_duplicate") + clusters_of(whole, "lockstep"))) <= resumed
    assert {m for t in resumed for m in t} == set(ring) | set(farm)


def test_only_other_cluster_methods_corroborate_a_cluster() -> None:
    """A rule's coordination label (a rule reading cluster.size) or a model's label on a heavy poster must not
    raise a cluster's score: only another cluster method's label counts as flagged elsewhere."""
    from bastion.detect.clusters.common import flagged_elsewhere
    from bastion.state.memory import MemoryState
    from bastion.state.model import Label

    state = MemoryState()
    members = ["a", "b", "c", "d"]

    def label(m: str, source: str, name: str = "coordinated") -> None:
        state.labels.add(Label(subject_kind="account", subject_id=m, label=name, source=source, ts=1))

    label("a", "rule:LargeCluster")
    label("b", "rule:BotScoreHigh", "likely_bot")
    label("c", "cluster:near_duplicate")
    assert flagged_elsewhere(state, members, 2, kind="near_duplicate") == 0.0
    label("d", "cluster:lockstep")
    assert flagged_elsewhere(state, members, 2, kind="near_duplicate") == 0.25
    assert flagged_elsewhere(state, members, 2, kind="lockstep") == 0.25
    assert flagged_elsewhere(state, members, 2) == 0.5   # no kind: any detector but the cluster methods
