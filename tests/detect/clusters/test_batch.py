from __future__ import annotations

import random

import numpy as np

from bastion.detect.clusters import ClusterConfig
from bastion.detect.clusters.batch import (
    exact_near_duplicate_pairs,
    infrastructure_clusters,
    near_duplicate_groups,
    run_partitions,
)


def spam_and_chatter(n_spam=40, n_chat=300, seed=0):
    rng = random.Random(seed)
    words = ["the", "a", "walk", "river", "game", "tonight", "bread", "cat", "plant", "book", "maps", "traffic", "home", "lovely", "great", "new"]
    base = "limited offer win a brand new phone today just click the link and claim your prize"
    texts = []
    for _ in range(n_spam):
        w = base.split()
        w.insert(rng.randrange(len(w)), rng.choice(["wow", "hurry", "now", "free"]))
        texts.append(" ".join(w))
    texts += [" ".join(rng.choices(words, k=12)) for _ in range(n_chat)]
    return texts


def identifiers():
    ids: dict[str, set[str]] = {}
    bots = [f"x{i}" for i in range(8)]
    for i, b in enumerate(bots):
        for ident in (f"ip:45.83.5.{i % 2}", "ip_net:45.83.5.0/24", "device:emu", "email:mailinator.com",
                      "created:498600"):
            ids.setdefault(ident, set()).add(b)
    ids["ip:73.1.2.3"] = {"h1", "h2", "h3", "h4"}          # a household: one kind of evidence only
    ids["ip_net:73.1.2.0/24"] = {"h1", "h2", "h3", "h4"}
    ids["ip:100.64.0.1"] = {f"m{i}" for i in range(500)}   # a carrier NAT: too popular to link anyone
    ids["email:gmail.com"] = {f"m{i}" for i in range(400)}
    return ids, bots


def test_near_duplicate_groups_match_the_exact_method():
    texts = spam_and_chatter()
    groups = near_duplicate_groups(texts, threshold=0.6, partitions=3)
    assert len(set(groups[:40].tolist())) == 1           # the spam variants form one group
    exact = exact_near_duplicate_pairs(texts, threshold=0.6)
    found = sum(1 for i, j in exact if groups[i] == groups[j])
    assert exact and found / len(exact) >= 0.95


def test_infrastructure_graph_finds_bots_not_households_or_carriers():
    ids, bots = identifiers()
    groups, info = infrastructure_clusters(ids, ClusterConfig())
    assert groups == [sorted(bots)]
    assert "device" in info["x0"]["kinds"]


def test_partitions_in_process():
    assert run_partitions(sum, [[1, 2], [3]]) == [3, 3]


def test_signatures_are_deterministic_across_partitions():
    texts = spam_and_chatter(10, 20)
    a = near_duplicate_groups(texts, partitions=1)
    b = near_duplicate_groups(texts, partitions=4)
    assert np.array_equal(a, b)


def test_array_infrastructure_job_matches_the_dict_path_and_finds_planted_farms():
    from bastion.bench.clusters import synthetic_memberships, synthetic_posts
    from bastion.detect.clusters.batch import (
        FAMILIES,
        communities_arrays,
        infrastructure_edges,
        infrastructure_graph,
    )

    ptr, acc, fam, n, farms = synthetic_memberships(40_000, 200_000, seed=1)
    cfg = ClusterConfig(partitions=3)
    src, dst, w, _ = infrastructure_edges(ptr, acc, fam, n, cfg)
    groups = communities_arrays(src, dst, w, cfg.infra_kcore, cfg.min_size)
    assert sorted(g.tolist() for g in groups) == sorted(f.tolist() for f in farms)
    # the same identifiers as the detector's sets give the same edges through identifier_arrays
    prefix = {1 << i: ("ip", "device", "email", "avatar", "created", "other")[i] for i in range(len(FAMILIES))}
    ids = {f"{prefix[int(fam[i])]}:{i}": {f"a{x:06d}" for x in acc[ptr[i]:ptr[i + 1]].tolist()}
           for i in range(len(ptr) - 1)}
    edges = infrastructure_graph(ids, cfg)
    assert [(a, b) for a, b, _, _ in edges] == [(f"a{x:06d}", f"a{y:06d}") for x, y in zip(src.tolist(), dst.tolist())]
    texts, tpl = synthetic_posts(3000, spam_share=0.2)
    groups = near_duplicate_groups(texts)
    assert len(texts) == 3000 and (tpl >= 0).sum() > 400
    assert len(set(groups[tpl >= 0].tolist())) < len(set(tpl[tpl >= 0].tolist())) * 2   # variants mostly grouped
