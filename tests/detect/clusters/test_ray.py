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
