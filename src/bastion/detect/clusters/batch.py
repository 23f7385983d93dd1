"""Batch cluster jobs: plain functions over partitions, run in-process or on Ray.

* :func:`run_partitions` maps a plain function over partitions in-process (the default) or as Ray tasks
  when an address is configured (``"local"`` starts a local instance). The functions take and return plain
  data, so both modes give the same result.
* :func:`near_duplicate_groups` - batch near-duplicate clustering of posts: MinHash signatures per partition,
  LSH banding, verification of candidate pairs by estimated Jaccard, union-find into groups.
* :func:`infrastructure_clusters` - the shared-infrastructure graph: accounts sharing devices, IPs, email
  domains, avatars or creation bursts, each identifier weighted by its popularity (an identifier shared by
  more than ``infra_max_degree`` accounts - a carrier NAT, gmail.com - links nobody), pairs kept when they
  share enough weight across at least two kinds of identifier, then k-core and Leiden communities (igraph).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from .common import ClusterConfig, UnionFind
from .minhash import band_keys, bucket_edges, normalise, signatures

T = TypeVar("T")
R = TypeVar("R")

# identifier kinds that come from one underlying signal count as one kind of evidence
KIND_FAMILY = {"ip": "network", "ip_net": "network", "device": "device", "email": "email", "avatar": "avatar",
               "created": "created"}


def run_partitions(fn: Callable[[T], R], parts: Sequence[T], ray_address: str | None = None) -> list[R]:
    """``[fn(p) for p in parts]``, on Ray when ``ray_address`` is set (``"local"``: a local instance with two
    CPUs, started here and left running for the caller to shut down)."""
    if not ray_address:
        return [fn(p) for p in parts]
    import ray

    if not ray.is_initialized():
        if ray_address == "local":
            ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(address=ray_address, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(fn)
    return list(ray.get([remote.remote(p) for p in parts]))


def partition(seq: Sequence[T], n: int) -> list[list[T]]:
    n = max(1, min(n, len(seq) or 1))
    size = math.ceil(len(seq) / n) if seq else 0
    return [list(seq[i * size:(i + 1) * size]) for i in range(n)]


# -- near-duplicate posts ------------------------------------------------------------------------------------
def _signature_part(args: tuple[list[str], int, int]) -> np.ndarray:
    texts, num_perm, k = args
    return signatures([normalise(t) for t in texts], num_perm, k)


def near_duplicate_groups(texts: Sequence[str], threshold: float = 0.6, num_perm: int = 64, bands: int = 16,
                          k: int = 5, partitions: int = 4, ray_address: str | None = None) -> np.ndarray:
    """Group id (the smallest member index) of every text: texts joined by verified LSH candidate pairs."""
    parts = partition(list(texts), partitions)
    sigs = run_partitions(_signature_part, [(p, num_perm, k) for p in parts], ray_address)
    sig = np.concatenate([s for s in sigs if len(s)]) if texts else np.empty((0, num_perm), np.uint32)
    src, dst = bucket_edges(band_keys(sig, bands))
    if len(src):
        est = (sig[src] == sig[dst]).mean(axis=1)
        keep = est >= threshold
        src, dst = src[keep], dst[keep]
    return _components(len(texts), src, dst)


def _components(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if n == 0:
        return np.empty(0, np.int64)
    g = coo_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(n, n))
    _, labels = connected_components(g, directed=False)
    first = np.full(labels.max() + 1, n, np.int64)
    np.minimum.at(first, labels, np.arange(n))
    return first[labels]


def exact_near_duplicate_pairs(texts: Sequence[str], threshold: float = 0.6, k: int = 5,
                               chunk: int = 1000) -> set[tuple[int, int]]:
    """Every pair with exact k-gram Jaccard >= threshold (quadratic; the baseline on a sample)."""
    from scipy.sparse import csr_matrix

    from .minhash import kgram_hashes

    h, owner = kgram_hashes([normalise(t) for t in texts], k)
    pairs_u = np.unique(np.stack([owner, h.astype(np.int64)]), axis=1)
    _, cols = np.unique(pairs_u[1], return_inverse=True)
    x = csr_matrix((np.ones(pairs_u.shape[1], np.float32), (pairs_u[0], cols)), shape=(len(texts), cols.max() + 1))
    sizes = np.asarray(x.sum(axis=1)).ravel()
    out: set[tuple[int, int]] = set()
    xt = x.T.tocsc()
    for lo in range(0, len(texts), chunk):
        inter = (x[lo:lo + chunk] @ xt).toarray()
        union = sizes[lo:lo + chunk, None] + sizes[None, :] - inter
        jac = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        ii, jj = np.nonzero(jac >= threshold)
        ii = ii + lo
        for i, j in zip(ii.tolist(), jj.tolist(), strict=True):
            if i < j:
                out.add((i, j))
    return out


# -- shared infrastructure -------------------------------------------------------------------------------------
def _pair_weights(args: tuple[list[tuple[str, list[str]]], int]) -> dict[tuple[str, str], list[Any]]:
    """For a partition of identifiers: summed popularity weights and evidence kinds of each account pair."""
    idents, max_degree = args
    out: dict[tuple[str, str], list[Any]] = {}
    for ident, accounts in idents:
        n = len(accounts)
        if n < 2 or n > max_degree:
            continue
        w = 1.0 / math.log2(1 + n)
        family = KIND_FAMILY.get(ident.split(":", 1)[0], "other")
        accs = sorted(accounts)
        for i in range(n):
            for j in range(i + 1, n):
                key = (accs[i], accs[j])
                st = out.get(key)
                if st is None:
                    out[key] = [w, {family}]
                else:
                    st[0] += w
                    st[1].add(family)
    return out


def infrastructure_graph(identifiers: dict[str, set[str]], config: ClusterConfig,
                         ray_address: str | None = None) -> list[tuple[str, str, float, list[str]]]:
    """Weighted account edges from shared identifiers (``identifier -> accounts``)."""
    items = sorted((k, sorted(v)) for k, v in identifiers.items() if 2 <= len(v) <= config.infra_max_degree)
    parts = [([items[i] for i in range(p, len(items), config.partitions)], config.infra_max_degree)
             for p in range(config.partitions)]
    merged: dict[tuple[str, str], list[Any]] = {}
    for res in run_partitions(_pair_weights, parts, ray_address):
        for key, (w, fams) in res.items():
            st = merged.get(key)
            if st is None:
                merged[key] = [w, set(fams)]
            else:
                st[0] += w
                st[1] |= fams
    return sorted((a, b, round(w, 6), sorted(f)) for (a, b), (w, f) in merged.items()
                  if w >= config.infra_min_weight and len(f) >= 2)


def communities(edges: Sequence[tuple[str, str, float, Any]], k: int, min_size: int,
                seed: int = 0, dense: float = 0.25) -> list[list[str]]:
    """k-core of the weighted graph; each connected component denser than ``dense`` is one group, a sparser
    one is split into Leiden (modularity) communities; groups of at least ``min_size``."""
    import igraph as ig
    import leidenalg

    if not edges:
        return []
    names = sorted({a for a, _, _, _ in edges} | {b for _, b, _, _ in edges})
    index = {n: i for i, n in enumerate(names)}
    g = ig.Graph(n=len(names), edges=[(index[a], index[b]) for a, b, _, _ in edges])
    g.vs["name"] = names
    g.es["weight"] = [w for _, _, w, _ in edges]
    if k > 0:
        core = g.coreness()
        g = g.induced_subgraph([i for i, c in enumerate(core) if c >= k])
    out = []
    for comp in g.connected_components():
        if len(comp) < min_size:
            continue
        sub = g.induced_subgraph(comp)
        if sub.density() >= dense:
            out.append(sorted(sub.vs["name"]))
            continue
        part = leidenalg.find_partition(sub, leidenalg.ModularityVertexPartition, weights="weight", seed=seed)
        for members in part:
            if len(members) >= min_size:
                out.append(sorted(sub.vs[m]["name"] for m in members))
    return sorted(out, key=lambda m: (-len(m), m[0]))


def infrastructure_clusters(identifiers: dict[str, set[str]], config: ClusterConfig,
                            ray_address: str | None = None) -> tuple[list[list[str]], dict[str, dict[str, Any]]]:
    """Communities of the shared-infrastructure graph, and per-account evidence (degree, kinds)."""
    edges = infrastructure_graph(identifiers, config, ray_address)
    groups = communities(edges, config.infra_kcore, config.min_size)
    info: dict[str, dict[str, Any]] = defaultdict(lambda: {"degree": 0.0, "kinds": set()})
    for a, b, w, fams in edges:
        for x in (a, b):
            info[x]["degree"] += w
            info[x]["kinds"].update(fams)
    return groups, dict(info)


def group_density(members: list[str], edges: Sequence[tuple[str, str, float, Any]]) -> float:
    ms = set(members)
    inner = sum(1 for a, b, _, _ in edges if a in ms and b in ms)
    n = len(members)
    return 2.0 * inner / max(1, n * (n - 1))


def union_groups(pairs: Sequence[tuple[str, str]]) -> list[list[str]]:
    uf = UnionFind()
    for a, b in pairs:
        uf.union(a, b)
    return sorted((sorted(g) for g in uf.groups().values()), key=lambda g: (-len(g), g[0]))
