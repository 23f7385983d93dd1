"""The batch jobs give the same clusters on a local Ray instance as in-process."""

from __future__ import annotations

import pytest
import ray  # the ray extra is part of the test install; a missing Ray must fail, not skip

from bastion.detect.clusters import ClusterConfig
from bastion.detect.clusters.batch import infrastructure_clusters, near_duplicate_groups

from .test_batch import identifiers, spam_and_chatter


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield "local"
    ray.shutdown()


@pytest.mark.slow
def test_ray_mode_gives_the_same_clusters(local_ray):
    texts = spam_and_chatter()
    assert (near_duplicate_groups(texts, partitions=3, ray_address=local_ray)
            == near_duplicate_groups(texts, partitions=3)).all()
    ids, bots = identifiers()
    on_ray, _ = infrastructure_clusters(ids, ClusterConfig(), ray_address=local_ray)
    in_process, _ = infrastructure_clusters(ids, ClusterConfig())
    assert on_ray == in_process == [sorted(bots)]


@pytest.mark.slow
def test_ray_mode_end_to_end_detector(local_ray):
    import random

    from bastion.detect.clusters import build_cluster_detectors

    from .streams import Stream, background, bot_infra
    from .test_detectors import clusters_of, replay

    s = Stream()
    background(s, random.Random(0), n=60, hours=2)
    bots = bot_infra(s)
    rt = replay(s.events(), build_cluster_detectors(ray_address=local_ray))
    assert clusters_of(rt, "shared_infrastructure") == [sorted(bots)]


@pytest.mark.slow
def test_ray_mode_gives_the_same_batch_lockstep_and_coordination_network(local_ray):
    import random

    from bastion.detect.clusters.batch import coordination_network, lockstep_groups

    rng = random.Random(0)
    farm = [f"a{i}" for i in range(8)]
    items = {f"post:{p}": {a for a in farm if rng.random() < 0.8} | {f"x{p}"} for p in range(6)}
    items.update({f"post:n{p}": {f"n{rng.randrange(400)}" for _ in range(6)} for p in range(300)})
    cfg = ClusterConfig()
    on_ray = lockstep_groups(items, cfg, ray_address=local_ray)
    assert on_ray == lockstep_groups(items, cfg) and on_ray and set(on_ray[0][0]) <= set(farm)
    uses = {f"tag:t{i}": [(w * 4 * 3_600_000 + rng.randrange(600_000), a) for w in range(4) for a in farm]
            for i in range(3)}
    uses.update({f"url:n{i}": [(rng.randrange(10**8), f"n{rng.randrange(400)}") for _ in range(5)]
                 for i in range(300)})
    assert coordination_network(uses, cfg, ray_address=local_ray) == coordination_network(uses, cfg)
