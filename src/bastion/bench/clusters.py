"""`bastion bench clusters`: near-duplicate clustering of posts and the shared-infrastructure graph, in-process
and on a local Ray instance with 2 workers, with peak memory; beside an exact pairwise method on a sample
(speed ratio, and recall of the LSH method against the exact pairs)."""

from __future__ import annotations

import gc
import resource
import time
from typing import Any

import numpy as np

DESCRIPTION = ("near-duplicate clustering (MinHash LSH) of N posts, the infrastructure graph of accounts and "
               "identifier edges and the batch lockstep job (MinHash over item audiences), in-process and on local "
               "Ray (2 workers); exact pairwise baselines")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_posts(n: int, seed: int = 0, spam_share: float = 0.05) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = [f"w{i:04d}x" for i in range(3000)]
    bases = [" ".join(rng.choice(vocab, 14)) for _ in range(max(1, n // 2000))]
    out = []
    for i in range(n):
        if rng.random() < spam_share:
            words = bases[int(rng.integers(len(bases)))].split()
            words[int(rng.integers(len(words)))] = str(rng.choice(vocab))
            out.append(" ".join(words))
        else:
            out.append(" ".join(rng.choice(vocab, 12)) + f" {i}")
    return out


def synthetic_identifiers(accounts: int, edges: int, seed: int = 0) -> dict[str, set[str]]:
    """``edges`` account-identifier memberships over heavy-tailed identifier popularity, plus planted farms."""
    rng = np.random.default_rng(seed)
    per = max(1, edges // accounts)
    n_ids = edges // 3
    acc = np.repeat(np.arange(accounts), per)
    ident = np.minimum((rng.pareto(1.2, len(acc)) * 2).astype(np.int64), n_ids - 1)
    ident = (ident * 7919 + rng.integers(0, n_ids, len(acc)) * (ident < 3)) % n_ids
    order = np.lexsort((acc, ident))
    acc, ident = acc[order], ident[order]
    bounds = np.flatnonzero(np.diff(ident)) + 1
    out: dict[str, set[str]] = {}
    for a_part, i0 in zip(np.split(acc, bounds), ident[np.concatenate([[0], bounds])], strict=True):
        if 2 <= len(a_part) <= 200:
            kind = ("ip", "device", "email", "avatar")[int(i0) % 4]
            out[f"{kind}:{int(i0)}"] = {f"u{a}" for a in np.unique(a_part).tolist()}
    for f in range(max(1, accounts // 20_000)):      # planted farms: device + network + creation burst
        members = {f"farm{f}_{j}" for j in range(12)}
        for kind in ("device", "ip", "created"):
            out[f"{kind}:farm{f}"] = members
    return out


def synthetic_actions(accounts: int, actions: int, seed: int = 0) -> tuple[dict[str, set[str]], list[list[str]]]:
    """(target, bucket) items -> accounts for the batch lockstep job: ``actions`` actions of ``accounts`` accounts
    on heavy-tailed targets, plus planted farms (12 accounts acting on the same 6 targets)."""
    rng = np.random.default_rng(seed)
    acc = rng.integers(0, accounts, actions)
    tgt = np.minimum((rng.pareto(1.1, actions) * 3).astype(np.int64), actions // 4)
    tgt = (tgt * 7919 + rng.integers(0, max(1, actions // 8), actions) * (tgt < 4)) % max(1, actions // 4)
    items: dict[str, set[str]] = {}
    for a, t in zip(acc.tolist(), tgt.tolist(), strict=True):
        items.setdefault(f"post:{t}", set()).add(f"u{a}")
    farms = []
    for f in range(max(1, accounts // 20_000)):
        members = [f"farm{f}_{j}" for j in range(12)]
        farms.append(members)
        for k in range(6):
            items[f"post:farm{f}_{k}"] = {m for j, m in enumerate(members) if (j + k) % 5}
    return items, farms


def exact_item_pairs(items: dict[str, set[str]], config: Any) -> set[tuple[str, str]]:
    """Every item pair whose audiences pass the Jaccard test (through an account -> items index: quadratic in
    each account's items; the baseline of the MinHash LSH step)."""
    keep = {k: v for k, v in items.items() if config.cc_min_audience <= len(v) <= config.cc_max_audience}
    by_acc: dict[str, list[str]] = {}
    for k, v in keep.items():
        for a in v:
            by_acc.setdefault(a, []).append(k)
    inter: dict[tuple[str, str], int] = {}
    for ks in by_acc.values():
        ks.sort()
        for i in range(len(ks)):
            for j in range(i + 1, len(ks)):
                inter[(ks[i], ks[j])] = inter.get((ks[i], ks[j]), 0) + 1
    return {(x, y) for (x, y), n in inter.items() if n >= config.cc_min_shared
            and n / (len(keep[x]) + len(keep[y]) - n) >= config.cc_min_jaccard}


def _time(fn: Any) -> tuple[Any, float, float]:
    gc.collect()
    t0 = time.perf_counter()
    res = fn()
    return res, time.perf_counter() - t0, _rss_mb()


def run(events: int | None = None, quick: bool = False) -> dict[str, Any]:
    from bastion.detect.clusters import ClusterConfig
    from bastion.detect.clusters.batch import (
        exact_near_duplicate_pairs,
        infrastructure_clusters,
        lockstep_groups,
        near_duplicate_groups,
    )

    n_posts = events or (20_000 if quick else 1_000_000)
    n_acc = 20_000 if quick else 1_000_000
    n_edges = 200_000 if quick else 10_000_000
    sample = 2_000 if quick else 20_000
    out: dict[str, Any] = {"posts": n_posts, "accounts": n_acc, "identifier_edges": n_edges, "exact_sample": sample}

    posts = synthetic_posts(n_posts)
    groups, s, mem = _time(lambda: near_duplicate_groups(posts, partitions=2))
    out["neardup_inprocess_s"] = round(s, 2)
    out["neardup_posts_per_s"] = round(n_posts / s)
    out["neardup_groups_multi"] = int((np.bincount(np.unique(groups, return_inverse=True)[1]) > 1).sum())
    out["peak_rss_mb_after_neardup"] = round(mem)

    sub = posts[:sample]
    exact, s_exact, _ = _time(lambda: exact_near_duplicate_pairs(sub, threshold=0.6))
    g_sub, s_lsh, _ = _time(lambda: near_duplicate_groups(sub, partitions=1))
    found = sum(1 for i, j in exact if g_sub[i] == g_sub[j])
    out.update({"exact_pairs": len(exact), "exact_s": round(s_exact, 2), "lsh_sample_s": round(s_lsh, 2),
                "speedup_vs_exact": round(s_exact / max(s_lsh, 1e-9), 1),
                "recall_vs_exact": round(found / len(exact), 4) if exact else None})

    ids = synthetic_identifiers(n_acc, n_edges)
    cfg = ClusterConfig(partitions=2)
    (infra_groups, _), s, mem = _time(lambda: infrastructure_clusters(ids, cfg))
    out.update({"infra_inprocess_s": round(s, 2), "infra_clusters": len(infra_groups),
                "peak_rss_mb_after_infra": round(mem)})

    n_actions = n_edges
    acts, farms = synthetic_actions(n_acc, n_actions)
    lock, s, mem = _time(lambda: lockstep_groups(acts, cfg))
    planted = {m for f in farms for m in f}
    found = {m for g in lock for m in g[0]}
    out.update({"lockstep_actions": n_actions, "lockstep_inprocess_s": round(s, 2), "lockstep_groups": len(lock),
                "lockstep_planted_found": f"{len(planted & found)}/{len(planted)}",
                "lockstep_other_accounts": len(found - planted), "peak_rss_mb_after_lockstep": round(mem)})
    exact, s_exact, _ = _time(lambda: exact_item_pairs(acts, cfg))
    out["lockstep_exact_item_pairs_s"] = round(s_exact, 2)
    out["lockstep_exact_item_pairs"] = len(exact)

    try:
        import ray
    except ImportError:
        out["ray"] = "not installed (pip install 'bastion[ray]')"
        return out
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    try:
        g_ray, s, _ = _time(lambda: near_duplicate_groups(posts, partitions=2, ray_address="local"))
        out["neardup_ray_s"] = round(s, 2)
        out["neardup_ray_same_groups"] = bool(np.array_equal(g_ray, groups))
        (ray_groups, _), s, _ = _time(lambda: infrastructure_clusters(ids, cfg, ray_address="local"))
        out["infra_ray_s"] = round(s, 2)
        out["infra_ray_same_clusters"] = ray_groups == infra_groups
        lock_ray, s, _ = _time(lambda: lockstep_groups(acts, cfg, ray_address="local"))
        out["lockstep_ray_s"] = round(s, 2)
        out["lockstep_ray_same_groups"] = lock_ray == lock
        out["peak_rss_mb_driver"] = round(_rss_mb())
    finally:
        ray.shutdown()
    return out


def markdown(res: dict[str, Any], command: str) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in res.items())
    return (f"## Coordinated clusters\n\nCommand: `{command}` (2-core shared machine; peak memory is the driver's "
            f"max RSS - Ray workers are separate processes).\n\n| measure | value |\n|---|---|\n{rows}\n")
