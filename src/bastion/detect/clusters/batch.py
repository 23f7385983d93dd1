"""Batch cluster jobs: plain functions over partitions, run in-process or on Ray.

* :func:`run_partitions` maps a plain function over partitions in-process (the default) or as Ray tasks
  when an address is configured (``"local"`` starts a local instance). The functions take and return plain
  data, so both modes give the same result.
* :func:`near_duplicate_groups` - batch near-duplicate clustering of posts: MinHash signatures per partition,
  LSH banding, verification of candidate pairs by estimated Jaccard, union-find into groups.
* :func:`infrastructure_clusters` - the shared-infrastructure graph: accounts sharing devices, IPs, email
  domains, avatars or creation bursts, each identifier weighted by its popularity (an identifier shared by
  more than ``infra_max_degree`` accounts - a carrier NAT, gmail.com - links nobody), pairs kept when they
  share enough weight across at least two kinds of identifier, then k-core and modularity communities (Leiden with the ``leiden`` extra, else
  networkx's Louvain; :func:`community_method`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from .common import ClusterConfig, UnionFind
from .minhash import band_keys, bucket_edges, bucket_pairs, normalise, set_signatures, signatures

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
    return set(exact_near_duplicate_jaccard(texts, threshold, k, chunk))


def exact_near_duplicate_jaccard(texts: Sequence[str], threshold: float = 0.6, k: int = 5,
                                 chunk: int = 1000) -> dict[tuple[int, int], float]:
    """``(i, j) -> exact k-gram Jaccard`` of every pair i < j at or above ``threshold`` (all pairs, by sparse
    products of ``chunk`` rows against every text)."""
    from scipy.sparse import csr_matrix

    from .minhash import kgram_hashes

    if not len(texts):
        return {}
    h, owner = kgram_hashes([normalise(t) for t in texts], k)
    pairs_u = np.unique(np.stack([owner, h.astype(np.int64)]), axis=1)
    _, cols = np.unique(pairs_u[1], return_inverse=True)
    x = csr_matrix((np.ones(pairs_u.shape[1], np.float32), (pairs_u[0], cols)), shape=(len(texts), cols.max() + 1))
    sizes = np.asarray(x.sum(axis=1)).ravel()
    out: dict[tuple[int, int], float] = {}
    xt = x.T.tocsc()
    for lo in range(0, len(texts), chunk):
        inter = (x[lo:lo + chunk] @ xt).toarray()
        union = sizes[lo:lo + chunk, None] + sizes[None, :] - inter
        jac = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        ii, jj = np.nonzero(jac >= threshold)
        keep = ii + lo < jj
        for i, j, v in zip((ii[keep] + lo).tolist(), jj[keep].tolist(), jac[ii[keep], jj[keep]].tolist(),
                           strict=True):
            out[(i, j)] = v
    return out


# -- shared infrastructure -------------------------------------------------------------------------------------
# the graph job runs on integer arrays: identifier -> accounts as CSR (``ptr``, ``acc``: account indices sorted
# within each identifier) with one evidence-family bit per identifier; account pairs are packed into one int64
# key (``a * n + b``, a < b) and aggregated by sorting, so a million accounts and ten million memberships take
# seconds and the partitions' results travel to and from Ray workers as a few numpy arrays
FAMILIES = ("network", "device", "email", "avatar", "created", "other")
FAMILY_BIT = {f: 1 << i for i, f in enumerate(FAMILIES)}
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def family_bit(ident: str) -> int:
    return FAMILY_BIT[KIND_FAMILY.get(ident.split(":", 1)[0], "other")]


def family_names(bits: int) -> list[str]:
    return sorted(f for f, b in FAMILY_BIT.items() if bits & b)


def identifier_arrays(identifiers: dict[str, set[str]], max_degree: int) -> tuple[list[str], np.ndarray, np.ndarray,
                                                                                    np.ndarray]:
    """``identifier -> accounts`` as arrays: (account names, ptr, acc, family bits), keeping the identifiers
    shared by 2 to ``max_degree`` accounts (in identifier order; account indices follow the sorted names)."""
    items = sorted((k, v) for k, v in identifiers.items() if 2 <= len(v) <= max_degree)
    names = sorted({a for _, v in items for a in v})
    index = {n: i for i, n in enumerate(names)}
    sizes = np.fromiter((len(v) for _, v in items), np.int64, len(items))
    ptr = np.zeros(len(items) + 1, np.int64)
    np.cumsum(sizes, out=ptr[1:])
    acc = np.fromiter((index[a] for _, v in items for a in sorted(v)), np.int64, int(ptr[-1]))
    fam = np.fromiter((family_bit(k) for k, _ in items), np.uint8, len(items))
    return names, ptr, acc, fam


def _reduce_pairs(keys: np.ndarray, w: np.ndarray, fam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum the weights and OR the family bits of equal pair keys (a stable sort: deterministic sums)."""
    if not len(keys):
        return keys, w, fam
    order = np.argsort(keys, kind="stable")
    keys, w, fam = keys[order], w[order], fam[order]
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return keys[starts], np.add.reduceat(w, starts), np.bitwise_or.reduceat(fam, starts)


def _pair_arrays(args: tuple[np.ndarray, np.ndarray, np.ndarray, int, int]) -> tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray]:
    """For a partition of identifiers (CSR): every account pair sharing one, its summed popularity weight
    (1 / log2(1 + accounts) per identifier) and the OR of the identifiers' family bits."""
    ptr, acc, fam, n, max_degree = args
    sizes = np.diff(ptr)
    keys, ws, fams = [], [], []
    for s in np.unique(sizes).tolist():
        if s < 2 or s > max_degree:
            continue   # an identifier more accounts share is popular (a carrier NAT, gmail.com): links nobody
        sel = np.flatnonzero(sizes == s)
        members = acc[ptr[sel][:, None] + np.arange(s)]          # (identifiers, s), sorted within a row
        iu, ju = np.triu_indices(s, 1)
        a, b = members[:, iu].ravel(), members[:, ju].ravel()
        keys.append(np.minimum(a, b) * n + np.maximum(a, b))
        ws.append(np.full(len(a), 1.0 / math.log2(1 + s)))
        fams.append(np.repeat(fam[sel], len(iu)))
    if not keys:
        return np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.uint8)
    return _reduce_pairs(np.concatenate(keys), np.concatenate(ws), np.concatenate(fams))


def _csr_slice(ptr: np.ndarray, acc: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sizes = ptr[rows + 1] - ptr[rows]
    new_ptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(sizes, out=new_ptr[1:])
    idx = np.repeat(ptr[rows] - new_ptr[:-1], sizes) + np.arange(int(new_ptr[-1]))
    return new_ptr, acc[idx]


def infrastructure_edges(ptr: np.ndarray, acc: np.ndarray, fam: np.ndarray, n_accounts: int, config: ClusterConfig,
                         ray_address: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted account edges ``(src, dst, weight, family bits)`` (src < dst, sorted) from identifier
    memberships in CSR form: pairs that share at least ``infra_min_weight`` across at least two families of
    identifier. Identifiers are dealt round-robin to ``config.partitions`` partitions (in-process or on Ray)."""
    sizes = np.diff(ptr)
    rows = np.flatnonzero((sizes >= 2) & (sizes <= config.infra_max_degree))
    parts = []
    for p in range(max(1, config.partitions)):
        r = rows[p::max(1, config.partitions)]
        sub_ptr, sub_acc = _csr_slice(ptr, acc, r)
        parts.append((sub_ptr, sub_acc, fam[r], n_accounts, config.infra_max_degree))
    res = run_partitions(_pair_arrays, parts, ray_address)
    keys, w, f = _reduce_pairs(np.concatenate([r[0] for r in res]), np.concatenate([r[1] for r in res]),
                               np.concatenate([r[2] for r in res]))
    keep = (w >= config.infra_min_weight) & (_POPCOUNT[f] >= 2)
    keys, w, f = keys[keep], w[keep], f[keep]
    return keys // n_accounts, keys % n_accounts, w, f


def infrastructure_graph(identifiers: dict[str, set[str]], config: ClusterConfig,
                         ray_address: str | None = None) -> list[tuple[str, str, float, list[str]]]:
    """Weighted account edges from shared identifiers (``identifier -> accounts``)."""
    names, ptr, acc, fam = identifier_arrays(identifiers, config.infra_max_degree)
    src, dst, w, f = infrastructure_edges(ptr, acc, fam, max(1, len(names)), config, ray_address)
    return [(names[a], names[b], round(x, 6), family_names(bits))
            for a, b, x, bits in zip(src.tolist(), dst.tolist(), w.tolist(), f.tolist(), strict=True)]


def community_method() -> str:
    """``leiden`` (igraph + leidenalg, the ``leiden`` extra, GPL-licensed) when installed, else ``louvain``
    (networkx, BSD): the algorithm that splits a sparse component into communities."""
    from bastion.extras import available

    return "leiden" if available("leidenalg") and available("igraph") else "louvain"


def communities_arrays(src: np.ndarray, dst: np.ndarray, w: np.ndarray, k: int, min_size: int, seed: int = 0,
                       dense: float = 0.25, method: str | None = None) -> list[np.ndarray]:
    """:func:`communities` over integer edges: groups of vertex ids (sorted), largest first."""
    if not len(src):
        return []
    method = method or community_method()
    if method == "leiden":
        out = _communities_leiden(src, dst, w, k, min_size, seed, dense)
    elif method == "louvain":
        out = _communities_louvain(src, dst, w, k, min_size, seed, dense)
    else:
        raise ValueError(f"unknown community method {method!r} (leiden or louvain)")
    return sorted(out, key=lambda m: (-len(m), int(m[0])))


def _communities_leiden(src: np.ndarray, dst: np.ndarray, w: np.ndarray, k: int, min_size: int, seed: int,
                        dense: float) -> list[np.ndarray]:
    from bastion.extras import require

    ig = require("igraph", "leiden", "Leiden communities")
    leidenalg = require("leidenalg", "leiden", "Leiden communities")
    verts, inv = np.unique(np.concatenate([src, dst]), return_inverse=True)
    g = ig.Graph(n=len(verts), edges=np.stack([inv[:len(src)], inv[len(src):]], axis=1).tolist())
    g.vs["vid"] = verts.tolist()
    g.es["weight"] = np.asarray(w, np.float64).tolist()
    if k > 0:
        core = np.asarray(g.coreness())
        g = g.induced_subgraph(np.flatnonzero(core >= k).tolist())
    out = []
    for comp in g.connected_components():
        if len(comp) < min_size:
            continue
        sub = g.induced_subgraph(comp)
        if sub.density() >= dense:
            out.append(np.sort(np.array(sub.vs["vid"], np.int64)))
            continue
        part = leidenalg.find_partition(sub, leidenalg.ModularityVertexPartition, weights="weight", seed=seed)
        for members in part:
            if len(members) >= min_size:
                out.append(np.sort(np.array([sub.vs[m]["vid"] for m in members], np.int64)))
    return out


def _communities_louvain(src: np.ndarray, dst: np.ndarray, w: np.ndarray, k: int, min_size: int, seed: int,
                         dense: float) -> list[np.ndarray]:
    """The same steps as the Leiden path with permissively licensed parts: the k-core by peeling (numpy),
    components (scipy), Louvain modularity communities (networkx) for a sparse component."""
    import networkx as nx
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    verts, inv = np.unique(np.concatenate([src, dst]), return_inverse=True)
    n = len(verts)
    a, b = inv[:len(src)], inv[len(src):]
    w = np.asarray(w, np.float64)
    alive = np.ones(n, bool)
    while k > 0:                                   # peel vertices of degree < k until none is left
        live = alive[a] & alive[b]
        deg = np.bincount(a[live], minlength=n) + np.bincount(b[live], minlength=n)
        drop = alive & (deg < k)
        if not drop.any():
            break
        alive &= ~drop
    keep = alive[a] & alive[b] & (a != b)
    a, b, w = a[keep], b[keep], w[keep]
    adj = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, label = connected_components(adj, directed=False)
    edge_comp = label[a]
    out = []
    for c in np.unique(label[alive]):
        members = np.flatnonzero(alive & (label == c))
        if len(members) < min_size:
            continue
        in_c = edge_comp == c
        m = len(members)
        if 2.0 * int(in_c.sum()) / (m * (m - 1)) >= dense:
            out.append(np.sort(verts[members]))
            continue
        g = nx.Graph()
        for x, y, wt in zip(a[in_c].tolist(), b[in_c].tolist(), w[in_c].tolist(), strict=True):
            g.add_edge(x, y, weight=g[x][y]["weight"] + wt if g.has_edge(x, y) else wt)
        for part in nx.community.louvain_communities(g, weight="weight", seed=seed):
            if len(part) >= min_size:
                out.append(np.sort(verts[np.fromiter(part, np.int64, len(part))]))
    return out


def communities(edges: Sequence[tuple[str, str, float, Any]], k: int, min_size: int,
                seed: int = 0, dense: float = 0.25) -> list[list[str]]:
    """k-core of the weighted graph; each connected component denser than ``dense`` is one group, a sparser
    one is split into modularity communities (Leiden or Louvain, :func:`community_method`); groups of at least
    ``min_size``."""
    if not edges:
        return []
    names = sorted({a for a, _, _, _ in edges} | {b for _, b, _, _ in edges})
    index = {n: i for i, n in enumerate(names)}
    src = np.fromiter((index[a] for a, _, _, _ in edges), np.int64, len(edges))
    dst = np.fromiter((index[b] for _, b, _, _ in edges), np.int64, len(edges))
    w = np.fromiter((x for _, _, x, _ in edges), np.float64, len(edges))
    return [[names[i] for i in g.tolist()] for g in communities_arrays(src, dst, w, k, min_size, seed, dense)]


def infrastructure_clusters(identifiers: dict[str, set[str]], config: ClusterConfig,
                            ray_address: str | None = None) -> tuple[list[list[str]], dict[str, dict[str, Any]]]:
    """Communities of the shared-infrastructure graph, and per-account evidence (degree, kinds)."""
    groups, info, _ = infrastructure_job(identifiers, config, ray_address)
    return groups, info


def infrastructure_job(identifiers: dict[str, set[str]], config: ClusterConfig, ray_address: str | None = None
                       ) -> tuple[list[list[str]], dict[str, dict[str, Any]], list[tuple[str, str, float, list[str]]]]:
    """(groups, per-account evidence, edges) of the shared-infrastructure graph, the graph built once."""
    edges = infrastructure_graph(identifiers, config, ray_address)
    groups = communities(edges, config.infra_kcore, config.min_size)
    info: dict[str, dict[str, Any]] = defaultdict(lambda: {"degree": 0.0, "kinds": set()})
    for a, b, w, fams in edges:
        for x in (a, b):
            info[x]["degree"] += w
            info[x]["kinds"].update(fams)
    return groups, dict(info), edges


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


# -- batch lockstep (CopyCatch) ------------------------------------------------------------------------------
def _audience_signature_part(args: tuple[list[list[str]], int]) -> np.ndarray:
    audiences, num_perm = args
    return set_signatures(audiences, num_perm)


def item_target(item: str) -> str:
    """The account an item acts on: the followed account of ``follow:<account>@<day>``, the author of
    ``post:<id>@<author>``; any other item is its own target.

    >>> item_target("follow:u7@20777"), item_target("post:p1@u9"), item_target("post:p1")
    ('u7', 'u9', 'post:p1')
    """
    kind, _, rest = item.partition(":")
    if kind == "follow":
        return rest.rpartition("@")[0] or item
    if kind == "post" and "@" in rest:
        return rest.split("@", 1)[1]
    return item


def lockstep_groups(items: dict[str, set[str]], config: ClusterConfig,
                    ray_address: str | None = None) -> list[tuple[list[str], list[str], float]]:
    """CopyCatch-style lockstep groups from ``item -> accounts`` where an item is a (target, time bucket): the
    accounts that followed one account on one day, or engaged one post in the hours after it was created.

    Items used by fewer than ``cc_min_audience`` accounts say nothing and items used by more than
    ``cc_max_audience`` are popular (FRAUDAR-style: a crowd on a popular target links no strangers); the rest
    are MinHashed over their audiences (sub-quadratic: LSH banding proposes the item pairs, partitions run
    in-process or on Ray), candidate pairs are verified by exact Jaccard (``cc_min_jaccard``, at least
    ``cc_min_shared`` common accounts), items joined into target groups, and the accounts that acted on at
    least two of a group's targets (and ``cc_min_cover`` of them) are its members. A group must span at least
    ``cc_min_targets`` target accounts (:func:`item_target`): a crowd on the posts of one account is a pile-on
    or a viral moment, not a farm working through its customers.

    Returns ``(members, targets, mean coverage)`` for each group with at least ``min_size`` members.
    """
    cfg = config
    keep = sorted((k, sorted(v)) for k, v in items.items() if cfg.cc_min_audience <= len(v) <= cfg.cc_max_audience)
    if len(keep) < 2:
        return []
    names = [k for k, _ in keep]
    auds = [v for _, v in keep]
    parts = partition(auds, cfg.partitions)
    sigs = run_partitions(_audience_signature_part, [(p, cfg.cc_num_perm) for p in parts], ray_address)
    sig = np.concatenate([s for s in sigs if len(s)])
    cand = bucket_pairs(band_keys(sig, cfg.cc_bands), cfg.cc_max_bucket)
    sets = [set(v) for v in auds]
    uf = UnionFind()
    for i, j in sorted(cand):
        inter = len(sets[i] & sets[j])
        if inter >= cfg.cc_min_shared and inter / (len(sets[i]) + len(sets[j]) - inter) >= cfg.cc_min_jaccard:
            uf.union(names[i], names[j])
    index = {n: i for i, n in enumerate(names)}
    out = []
    for group in uf.groups().values():
        if len(group) < 2 or len({item_target(t) for t in group}) < cfg.cc_min_targets:
            continue
        counts: dict[str, int] = defaultdict(int)
        for t in group:
            for a in sets[index[t]]:
                counts[a] += 1
        need = max(2, math.ceil(cfg.cc_min_cover * len(group)))
        members = sorted(a for a, c in counts.items() if c >= need)
        if len(members) >= cfg.min_size:
            cover = sum(counts[m] for m in members) / (len(members) * len(group))
            out.append((members, sorted(group), round(cover, 4)))
    return sorted(out, key=lambda g: (-len(g[0]), g[0][0]))


# -- coordination network (co-hashtag, co-link) --------------------------------------------------------------
def estimate_window(uses: dict[str, list[tuple[int, str]]], quantile: float, lo_ms: int, hi_ms: int) -> int:
    """The co-sharing window estimated from the data: the ``quantile`` of the gaps between consecutive uses
    of the same hashtag or link by two different accounts, clipped to [lo_ms, hi_ms].

    >>> estimate_window({"tag:x": [(0, "a"), (60_000, "b"), (120_000, "a")]}, 0.5, 1, 10**9)
    60000
    """
    gaps = []
    for rows in uses.values():
        rows = sorted(rows)
        gaps.extend(t2 - t1 for (t1, a1), (t2, a2) in zip(rows, rows[1:], strict=False) if a1 != a2)
    if not gaps:
        return hi_ms
    return int(min(hi_ms, max(lo_ms, float(np.quantile(np.array(gaps, np.float64), quantile)))))


def episodes(rows: list[tuple[int, str]], window_ms: int) -> list[list[str]]:
    """Split the time-ordered uses of one item into episodes: a gap longer than the window starts a new one.

    >>> episodes([(0, "a"), (10, "b"), (500, "a")], 100)
    [['a', 'b'], ['a']]
    """
    out: list[list[str]] = []
    last = None
    for ts, acc in sorted(rows):
        if last is None or ts - last > window_ms:
            out.append([])
        out[-1].append(acc)
        last = ts
    return out


def _co_share_part(args: tuple[list[tuple[str, list[tuple[int, str]]]], int, int]) -> dict[tuple[str, str], list[Any]]:
    """For a partition of items: per account pair the summed item weight, the number of shared (item,
    episode)s and the items shared."""
    rows, window_ms, max_degree = args
    out: dict[tuple[str, str], list[Any]] = {}
    for item, uses in rows:
        n_item = len({a for _, a in uses})
        if n_item < 2 or n_item > max_degree:
            continue   # a hashtag or link that many accounts used over the horizon is popular: it links nobody
        w = 1.0 / math.log2(1 + n_item)
        shared = [sorted(set(ep)) for ep in episodes(uses, window_ms)]
        shared = [accs for accs in shared if 2 <= len(accs) <= max_degree]
        recurrent = len(shared) >= 2   # the item came back in another episode: a one-off burst is not this
        for accs in shared:
            for i in range(len(accs)):
                for j in range(i + 1, len(accs)):
                    st = out.get((accs[i], accs[j]))
                    if st is None:
                        out[(accs[i], accs[j])] = st = [0.0, 0, set(), False]
                    st[0] += w
                    st[1] += 1
                    st[2].add(item)
                    st[3] = st[3] or recurrent
    return out


def coordination_network(uses: dict[str, list[tuple[int, str]]], config: ClusterConfig,
                         ray_address: str | None = None) -> tuple[int, list[tuple[str, str, float, dict[str, Any]]]]:
    """The co-sharing network: accounts projected from the bipartite graph of (hashtag or link, episode).

    The window is ``tag_window_ms`` or, when None, estimated from the data (:func:`estimate_window`). A pair
    of accounts becomes an edge when it shared at least ``cn_min_items`` distinct items in at least
    ``cn_min_episodes`` distinct episodes, one of them an item that came back in another episode (a viral
    moment is one burst of its own hashtag and link: not "again and again"; a hashtag or link more than
    ``cn_max_degree`` accounts used over the horizon - a trend, a slow viral link - links nobody), its summed
    item weight (1 / log2(1 + accounts using the item)) reaches ``cn_min_weight``, and the shared episodes are
    a real share of what the two accounts post (``cn_min_norm``: shared / geometric mean of each account's
    (item, episode)s, so heavy posters do not link by volume). Episodes with more than ``cn_max_degree``
    accounts are popular and link nobody.
    """
    cfg = config
    # the window comes from the hashtags and links (near-duplicate text groups are sparser and would stretch it)
    window = cfg.tag_window_ms or estimate_window({k: v for k, v in uses.items() if not k.startswith("text:")},
                                                  cfg.cn_window_quantile, cfg.cn_window_min_ms, cfg.cn_window_max_ms)
    items = sorted((k, sorted(v)) for k, v in uses.items() if len({a for _, a in v}) >= 2)
    parts = [([items[i] for i in range(p, len(items), cfg.partitions)], window, cfg.cn_max_degree)
             for p in range(cfg.partitions)]
    merged: dict[tuple[str, str], list[Any]] = {}
    for res in run_partitions(_co_share_part, parts, ray_address):
        for key, (w, n, its, rec) in res.items():
            st = merged.get(key)
            if st is None:
                merged[key] = [w, n, set(its), rec]
            else:
                st[0] += w
                st[1] += n
                st[2] |= its
                st[3] = st[3] or rec
    per_account: dict[str, int] = defaultdict(int)
    for _, rows in items:
        for ep in episodes(rows, window):
            for a in set(ep):
                per_account[a] += 1
    edges = []
    for (a, b), (w, n, its, rec) in sorted(merged.items()):
        norm = n / math.sqrt(per_account[a] * per_account[b])
        if (rec and len(its) >= cfg.cn_min_items and n >= cfg.cn_min_episodes and w >= cfg.cn_min_weight
                and norm >= cfg.cn_min_norm):
            edges.append((a, b, round(w, 6), {"episodes": n, "items": sorted(its)[:10], "norm": round(norm, 4)}))
    return window, edges


def attach_owned_items(core: list[str], uses: dict[str, list[tuple[int, str]]], config: ClusterConfig) -> list[str]:
    """The group's members: its core, plus the accounts that used at least ``cn_attach_items`` of the items the
    core owns (hashtags, links, near-identical texts that at least ``cn_owned_min`` core members and hardly
    anyone else used: a share of at least ``cn_owned_share`` of their users), at any time in the horizon - a
    ring member that joined late, or an evader that came back after its ring was suspended, posts the ring's
    own links and templates without meeting the others inside one window.

    >>> core = ["a", "b", "c", "d"]
    >>> uses = {"url:x": [(0, m) for m in core] + [(9, "late")], "text:t": [(1, m) for m in core] + [(9, "late")],
    ...         "tag:news": [(0, "a"), (0, "b"), (0, "c")] + [(5, f"n{i}") for i in range(20)]}
    >>> attach_owned_items(core, uses, ClusterConfig())
    ['a', 'b', 'c', 'd', 'late']
    """
    cfg = config
    ms = set(core)
    if cfg.cn_attach_items <= 0:
        return sorted(ms)
    hits: dict[str, int] = defaultdict(int)
    for rows in uses.values():
        users = {a for _, a in rows}
        inside = len(users & ms)
        if inside >= cfg.cn_owned_min and inside >= cfg.cn_owned_share * len(users):
            for a in users - ms:
                hits[a] += 1
    return sorted(ms | {a for a, n in hits.items() if n >= cfg.cn_attach_items})
