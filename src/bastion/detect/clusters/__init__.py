"""Coordinated clusters: groups of accounts acting together, each flagged as one ``cluster.flag`` with
evidence, one review case (queue ``coordination``) and a label on every member.

Methods (each a detector):

* :class:`NearDuplicateDetector` - streaming: near-identical text (MinHash LSH in a sliding window), same
  links and media, shared by distinct accounts again and again.
* :class:`LockstepDetector` - streaming: the same targets (follows, likes, reposts, replies, reports) inside
  the same short window, again and again; popular targets weigh nothing (FRAUDAR-style).
* :class:`InfrastructureDetector` - batch: the graph of shared devices, IPs, email domains, avatars and
  creation bursts weighted by identifier popularity; k-core and Leiden. Runs in-process or on Ray.
* :class:`LockstepBatchDetector` - batch (CopyCatch): MinHash LSH over the audiences of (target, time
  bucket) items; fans of an author and popular targets link nobody. Runs in-process or on Ray.
* :class:`CoordinationNetworkDetector` - batch: co-hashtag and co-link sharing within a window estimated
  from the data, projected to accounts, thresholded, k-core and Leiden. Runs in-process or on Ray.
* :class:`ClusterExpansion` - batch, last: grows each confirmed cluster by the outside accounts tied to it
  through strong secondary evidence (a second account on the same infrastructure, the cluster's own targets
  and templates, one of them corroborated by a creation burst, the members' window or an enforcement).

The app adds them with :func:`build_cluster_detectors`.
"""

from __future__ import annotations

from .coaction import CoordinationNetworkDetector, LockstepBatchDetector
from .common import ClusterConfig, CreatedIndex
from .expand import ClusterExpansion
from .infra import InfrastructureDetector
from .stream import LockstepDetector, NearDuplicateDetector

__all__ = ["ClusterConfig", "ClusterExpansion", "CoordinationNetworkDetector", "InfrastructureDetector",
           "LockstepBatchDetector", "LockstepDetector", "NearDuplicateDetector", "build_cluster_detectors"]


def build_cluster_detectors(config: ClusterConfig | None = None, ray_address: str | None = None) -> list:
    """The cluster detectors, sharing one config and one account-creation index.

    >>> [d.kind for d in build_cluster_detectors()]
    ['near_duplicate', 'lockstep', 'shared_infrastructure', 'lockstep_batch', 'coordination_network', 'expansion']
    """
    cfg = config or ClusterConfig()
    if ray_address:
        from dataclasses import replace

        cfg = replace(cfg, ray_address=ray_address)
    created = CreatedIndex()
    # the streaming methods run first, then the batch jobs in this order at finish: each job's score reads the
    # labels the other cluster methods put on its members ("flagged elsewhere"); the expansion runs last, over
    # every method's clusters and the batch jobs' inputs
    near_dup = NearDuplicateDetector(cfg, created)
    infra, lock = InfrastructureDetector(cfg, created), LockstepBatchDetector(cfg, created)
    coshare = CoordinationNetworkDetector(cfg, created, texts=near_dup)
    return [near_dup, LockstepDetector(cfg, created), infra, lock, coshare,
            ClusterExpansion(cfg, created, infra=infra, lockstep=lock, coshare=coshare)]
