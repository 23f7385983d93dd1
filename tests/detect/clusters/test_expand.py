"""Expansion of confirmed clusters by secondary evidence, and the lockstep job's one-target-account rule."""

from __future__ import annotations

import doctest
import random
from dataclasses import replace
from types import SimpleNamespace

import pytest

from bastion.detect.clusters import ClusterConfig, ClusterExpansion, batch, expand, minhash
from bastion.detect.clusters.batch import lockstep_groups

from .streams import HOUR, MIN, T0, Stream, background

MEMBERS = [f"m{i}" for i in range(6)]


class _State:
    def __init__(self, suspended=()):
        self.accounts = SimpleNamespace(get=lambda a: SimpleNamespace(status="suspended" if a in suspended else "active"))


def _world():
    """A confirmed farm of six on four targets of two customers (each order inside 40 minutes), and the
    accounts around it."""
    lock: dict[str, list[tuple[str, int]]] = {m: [] for m in MEMBERS}
    for o in range(4):
        item, t0 = f"post:o{o}@cust{o % 2}", T0 + o * 6 * HOUR
        for i, m in enumerate(MEMBERS):
            lock[m].append((item, t0 + i * 8 * MIN))
    lock["late"] = [("post:o1@cust1", T0 + 6 * HOUR + 90 * MIN), ("post:o2@cust0", T0 + 12 * HOUR + 5 * MIN)]
    lock["fan"] = [("post:o0@cust0", T0 + 30 * MIN), ("post:o2@cust0", T0 + 12 * HOUR + 30 * MIN)]   # one account
    lock["bystander"] = [("post:o2@cust0", T0 + 12 * HOUR + 10 * MIN)]         # one owned item, nothing else
    lock["suspended"] = [("post:o0@cust0", T0 + 4 * HOUR)]
    lock["heavy"] = [("post:o0@cust0", T0 + 5 * MIN), ("post:o1@cust1", T0 + 7 * HOUR)] + [
        (f"post:x{i}@a{i}", T0 + i) for i in range(60)]                      # two owned targets among 62 items
    infra = {m: {f"device:d{m}", f"ip:10.0.0.{i}"} for i, m in enumerate(MEMBERS)}
    infra["alt"] = {"device:dm0", "ip:10.0.0.0"}          # m0's second account: same device and IP
    infra["housemate"] = {"ip:10.0.0.1", "device:other"}  # m1's household: the IP only
    return (SimpleNamespace(by_account=infra), SimpleNamespace(by_account=lock), SimpleNamespace(by_account={}))


def _expand(config=None, score=0.9, suspended=("suspended",)):
    infra, lock, share = _world()
    x = ClusterExpansion(config or ClusterConfig(), {}, infra=infra, lockstep=lock, coshare=share)
    return x.expand([("lockstep_batch-1", MEMBERS, score)], _State(suspended), T0 + 48 * HOUR)


def test_expansion_attaches_strongly_tied_accounts_and_not_bystanders():
    found = _expand()["lockstep_batch-1"]
    assert set(found) == {"alt", "late", "suspended", "heavy"}    # not the bystander, housemate or fan
    assert found["alt"][0].startswith("infrastructure:device+network with m0")
    assert found["late"] == ["owned items:2"]
    assert found["suspended"] == ["owned item:1 + suspended by the platform"]


def test_expansion_needs_a_confirmed_cluster_and_respects_its_switches():
    assert _expand(score=0.3) == {}                                   # not flagged: recruits nobody
    # a flagged but not high-scoring cluster recruits on strong evidence only (no one item + corroboration)
    assert set(_expand(score=0.5)["lockstep_batch-1"]) == {"alt", "late", "heavy"}
    found = _expand(replace(ClusterConfig(), expand_enforced=False))["lockstep_batch-1"]
    assert "suspended" not in found


def test_expansion_end_to_end_grows_the_farm_case():
    from .test_detectors import replay

    rng = random.Random(0)
    s = Stream()
    users = background(s, rng, n=60, hours=24)
    farm = [f"f{i}" for i in range(8)]
    for i, u in enumerate(farm + ["joined_once"]):   # created in one burst, an hour before the first order
        s.add(T0 - HOUR + i * MIN, u, "account.create", profile={"email_domain": "proton.me"})
    for o in range(5):                       # five orders on two customers' accounts, one day apart
        cust, t0 = f"cust{o % 2}", T0 + o * 24 * HOUR
        for u in farm:
            s.add(t0 + rng.randrange(MIN, 30 * MIN), u, "graph.follow", target=cust)
    s.add(T0 + 2 * 24 * HOUR + 20 * MIN, "joined_once", "graph.follow", target="cust0")   # one order only
    s.add(T0 + 2 * 24 * HOUR + 25 * MIN, users[3], "graph.follow", target="cust0")      # an organic follow
    rt = replay(s.events())
    [cl] = [c for c in rt.clusters.clusters.values() if c.kind == "lockstep_batch"]
    assert sorted(cl.members) == sorted(farm + ["joined_once"])
    assert cl.evidence["expanded"] == {"joined_once": ["owned item:1 + shared created, creation burst"]}
    assert "joined_once" in rt.clusters.by_account and users[3] not in rt.clusters.by_account


def test_a_crowd_on_one_accounts_posts_is_no_lockstep_group():
    crowd = [f"c{i}" for i in range(8)]
    one_author = {f"post:p{i}@victim": set(crowd) | {f"x{i}"} for i in range(3)}
    assert lockstep_groups(one_author, ClusterConfig()) == []
    two_authors = {f"post:p{i}@{'ab'[i % 2]}": set(crowd) | {f"x{i}"} for i in range(3)}
    [(members, targets, _)] = lockstep_groups(two_authors, ClusterConfig())
    assert members == sorted(crowd) and len(targets) == 3


@pytest.mark.parametrize("mod", [batch, expand, minhash])
def test_doctests(mod):
    assert doctest.testmod(mod).failed == 0
