"""Coordinated clusters: groups of accounts acting together, each flagged as one ``cluster.flag`` with
evidence, one review case (queue ``coordination``) and a label on every member.

Methods (each a detector):

* :class:`NearDuplicateDetector` - streaming: near-identical text (MinHash LSH in a sliding window), same
  links and media, shared by distinct accounts again and again.
* :class:`LockstepDetector` - streaming: the same targets (follows, likes, reposts, replies, reports) inside
  the same short window, again and again; popular targets weigh nothing (FRAUDAR-style).
* :class:`InfrastructureDetector` - batch: the graph of shared devices, IPs, email domains, avatars and
  creation bursts weighted by identifier popularity; k-core and Leiden. Runs in-process or on Ray.

The app adds them with :func:`build_cluster_detectors`.
"""

from __future__ import annotations

from .common import ClusterConfig
from .infra import InfrastructureDetector
from .stream import LockstepDetector, NearDuplicateDetector

__all__ = ["ClusterConfig", "InfrastructureDetector", "LockstepDetector", "NearDuplicateDetector",
           "build_cluster_detectors"]


def build_cluster_detectors(config: ClusterConfig | None = None, ray_address: str | None = None) -> list:
    """The cluster detectors, sharing one config and one account-creation index.

    >>> [d.name for d in build_cluster_detectors()]
    ['clusters.near_duplicate', 'clusters.lockstep', 'clusters.shared_infrastructure']
    """
    cfg = config or ClusterConfig()
    if ray_address:
        from dataclasses import replace

        cfg = replace(cfg, ray_address=ray_address)
    created: dict[str, int] = {}
    return [NearDuplicateDetector(cfg, created), LockstepDetector(cfg, created), InfrastructureDetector(cfg, created)]
