"""`bastion bench clusters`: near-duplicate clustering of posts, the shared-infrastructure graph and the batch
lockstep job, in-process and on a local Ray instance with 2 workers, with peak memory; beside exact pairwise
methods (speed ratio, and recall of the LSH method against the exact pairs).

Full size (the default): 1M posts; 1M accounts with 10M account-identifier memberships (the bipartite edges
the infrastructure graph is projected from); 10M (target, time bucket) actions for the batch lockstep job; the
exact near-duplicate baseline on a 20k-post sample. Inputs are generated vectorised (numpy) and handed to the
jobs in the form the detectors hand them (texts; identifier memberships as CSR arrays, which
:func:`~bastion.detect.clusters.batch.identifier_arrays` builds from the detector's sets; item audiences).
Progress goes to stderr, one line per stage.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

DESCRIPTION = ("near-duplicate clustering (MinHash LSH) of N posts, the infrastructure graph of accounts and "
               "identifier edges and the batch lockstep job (MinHash over item audiences), in-process and on local "
               "Ray (2 workers); exact pairwise baselines")

_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def _rss_of(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE_MB
    except (OSError, ValueError, IndexError):
        return 0.0


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, stack = [], [root]
    while stack:
        for c in children.get(stack.pop(), []):
            out.append(c)
            stack.append(c)
    return out


class PeakMemory:
    """Peak resident memory of a stage, sampled every ``every`` seconds: this process alone, and this process
    with its descendants (a local Ray instance's raylet, object store and workers; shared pages count once in
    each process, so the total is an upper bound)."""

    def __init__(self, every: float = 0.5, rescan: int = 4) -> None:
        self.every, self.rescan = every, rescan   # the process tree is re-read every ``rescan`` samples
        self.self_mb = 0.0
        self.total_mb = 0.0
        self._pids: list[int] = []
        self._n = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        me = os.getpid()
        if self._n % self.rescan == 0:
            self._pids = _descendants(me)
        self._n += 1
        own = _rss_of(me)
        self.self_mb = max(self.self_mb, own)
        self.total_mb = max(self.total_mb, own + sum(_rss_of(p) for p in self._pids))

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> PeakMemory:
        self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()


class Stages:
    """Times each stage, samples its peak memory and prints one progress line to stderr."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self.cpu_s = 0.0

    def log(self, msg: str) -> None:
        if self.enabled:
            load = os.getloadavg()[0]
            print(f"[{time.perf_counter() - self.t0:7.1f}s load {load:4.1f}] {msg}", file=sys.stderr, flush=True)

    def run(self, name: str, fn: Callable[[], Any]) -> tuple[Any, float, PeakMemory]:
        """``(fn(), wall seconds, peak memory)``; ``self.cpu_s`` is the stage's CPU time in this process (on a
        loaded machine the wall time waits for a core, the CPU time does not; Ray workers' CPU is not in it)."""
        gc.collect()
        self.log(f"{name} ...")
        with PeakMemory() as mem:
            t0, c0 = time.perf_counter(), time.process_time()
            res = fn()
            s, self.cpu_s = time.perf_counter() - t0, time.process_time() - c0
        self.log(f"{name}: {s:.1f} s wall, {self.cpu_s:.1f} s CPU, peak RSS {mem.self_mb:,.0f} MB "
                 f"(with Ray/children {mem.total_mb:,.0f} MB)")
        return res, s, mem


# -- synthetic inputs (vectorised) ------------------------------------------------------------------------------
def vocabulary(n: int = 3000, seed: int = 0) -> np.ndarray:
    """``n`` distinct pronounceable words of letters only (the near-duplicate normaliser keeps them as they are)."""
    rng = np.random.default_rng(seed)
    syl = np.array([c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"])
    words: dict[str, None] = {}
    while len(words) < n:
        k = rng.integers(2, 5, 4 * n)
        parts = rng.integers(0, len(syl), (4 * n, 4))
        for row, kk in zip(parts.tolist(), k.tolist(), strict=True):
            words.setdefault("".join(syl[i] for i in row[:kk]), None)
    return np.array(list(words)[:n])


def synthetic_posts(n: int, seed: int = 0, spam_share: float = 0.05, words: int = 12) -> tuple[list[str], np.ndarray]:
    """``n`` posts of ``words`` random words; a ``spam_share`` of them are near-duplicates of n/2000 templates
    (one word changed). Returns the texts and each post's template (-1 for organic posts)."""
    rng = np.random.default_rng(seed)
    vocab = vocabulary(seed=seed)
    n_templates = max(1, n // 2000)
    templates = rng.integers(0, len(vocab), (n_templates, words))
    idx = rng.integers(0, len(vocab), (n, words))
    spam = rng.random(n) < spam_share
    tpl = np.where(spam, rng.integers(0, n_templates, n), -1)
    rows = np.flatnonzero(spam)
    idx[rows] = templates[tpl[rows]]
    idx[rows, rng.integers(0, words, len(rows))] = rng.integers(0, len(vocab), len(rows))
    return [" ".join(r) for r in vocab[idx].tolist()], tpl


def synthetic_memberships(accounts: int, memberships: int, seed: int = 0, farm_size: int = 12
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, list[np.ndarray]]:
    """Account-identifier memberships as CSR (``ptr``, ``acc``, family bits, number of accounts, planted farms).

    Each account holds ``memberships / accounts`` identifiers: most are its own or shared by a few accounts
    (a household's IP, a device sold second hand: Poisson-sized), some are popular (heavy-tailed: a carrier NAT,
    gmail.com - shared by more than ``infra_max_degree`` accounts, they link nobody). Identifier families cycle
    over network / device / email / avatar. Planted farms (one per 20k accounts, ``farm_size`` fresh accounts)
    share a device, an IP and a creation hour."""
    from bastion.detect.clusters.batch import FAMILY_BIT

    rng = np.random.default_rng(seed)
    n_farms = max(1, accounts // 20_000)
    n_real = accounts - n_farms * farm_size
    per = max(1, memberships // accounts)
    n_ids = max(1, memberships // 3)
    acc = np.repeat(np.arange(n_real, dtype=np.int64), per)
    popular = rng.random(len(acc)) < 0.1
    ident = rng.integers(0, n_ids, len(acc))                          # ~3 accounts per identifier
    tail = np.minimum((rng.pareto(0.8, len(acc)) * 20).astype(np.int64), n_ids - 1)
    ident = np.where(popular, (tail * 7919) % n_ids, ident)           # a heavy tail of popular identifiers
    fam_of = np.array([FAMILY_BIT[f] for f in ("network", "device", "email", "avatar")], np.uint8)
    farms = []
    f_acc, f_ident, f_fam = [], [], []
    for f in range(n_farms):
        members = n_real + f * farm_size + np.arange(farm_size)
        farms.append(members)
        for j, fam in enumerate(("device", "network", "created")):
            f_acc.append(members)
            f_ident.append(np.full(farm_size, n_ids + 3 * f + j))
            f_fam.append(FAMILY_BIT[fam])
    acc = np.concatenate([acc, *f_acc])
    ident = np.concatenate([ident, *f_ident])
    fam = np.concatenate([fam_of[np.arange(n_ids) % 4], np.array(f_fam, np.uint8)])
    pair = np.unique(ident * accounts + acc)                           # sorted by identifier, then account
    ident, acc = pair // accounts, pair % accounts
    used, counts = np.unique(ident, return_counts=True)
    ptr = np.zeros(len(used) + 1, np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr, acc, fam[used], accounts, farms


def synthetic_actions(accounts: int, actions: int, seed: int = 0, farm_size: int = 12
                      ) -> tuple[dict[str, set[str]], list[list[str]]]:
    """(target, bucket) items -> accounts for the batch lockstep job: ``actions`` actions of ``accounts`` accounts
    on heavy-tailed targets, plus planted farms (``farm_size`` accounts acting on the same 6 targets)."""
    rng = np.random.default_rng(seed)
    n_items = max(1, actions // 4)
    acc = rng.integers(0, accounts, actions)
    tgt = np.minimum((rng.pareto(1.1, actions) * 3).astype(np.int64), n_items - 1)
    tgt = np.where(tgt < 4, rng.integers(0, n_items, actions), (tgt * 7919) % n_items)
    pair = np.unique(tgt * accounts + acc)
    tgt, acc = pair // accounts, pair % accounts
    bounds = np.flatnonzero(np.diff(tgt)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(tgt)]])
    names = [f"u{a}" for a in range(accounts)]
    acc_l = acc.tolist()
    items: dict[str, set[str]] = {}
    for t, lo, hi in zip(tgt[starts].tolist(), starts.tolist(), ends.tolist(), strict=True):
        if hi - lo >= 2:   # an item one account used pairs nobody (the job drops items under cc_min_audience)
            items[f"post:{t}"] = {names[a] for a in acc_l[lo:hi]}
    farms = []
    for f in range(max(1, accounts // 20_000)):
        members = [f"farm{f}_{j}" for j in range(farm_size)]
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


def _groups_multi(groups: np.ndarray) -> int:
    return int((np.bincount(np.unique(groups, return_inverse=True)[1]) > 1).sum()) if len(groups) else 0


def run(events: int | None = None, quick: bool = False, progress: bool = True, ray: bool = True,
        accounts: int | None = None, memberships: int | None = None, sample: int | None = None) -> dict[str, Any]:
    """The benchmark; ``events`` is the number of posts; ``accounts``, ``memberships`` (also the number of
    lockstep actions) and ``sample`` override the other sizes (defaults: full size, or the quick sizes)."""
    from bastion.detect.clusters import ClusterConfig
    from bastion.detect.clusters.batch import (
        communities_arrays,
        exact_near_duplicate_jaccard,
        infrastructure_edges,
        lockstep_groups,
        near_duplicate_groups,
    )
    from bastion.detect.clusters.minhash import normalise, signatures

    st = Stages(progress)
    n_posts = events or (20_000 if quick else 1_000_000)
    n_acc = accounts or (20_000 if quick else 1_000_000)
    n_edges = memberships or (200_000 if quick else 10_000_000)
    n_actions = n_edges
    sample = sample or (2_000 if quick else 20_000)
    cfg = ClusterConfig(partitions=2)
    out: dict[str, Any] = {"posts": n_posts, "accounts": n_acc, "identifier_memberships": n_edges,
                           "lockstep_actions": n_actions, "exact_sample": sample, "cpus": os.cpu_count(),
                           "load_avg_start": round(os.getloadavg()[0], 1)}
    st.log(f"bench clusters: {n_posts:,} posts, {n_acc:,} accounts / {n_edges:,} memberships, "
           f"{n_actions:,} actions, exact sample {sample:,}")

    # -- near-duplicate posts
    (posts, tpl), s, _ = st.run("generate posts", lambda: synthetic_posts(n_posts))
    out["gen_posts_s"] = round(s, 1)
    probe = posts[:sample]
    norm, s_norm, _ = st.run(f"profile: normalise {len(probe):,} posts", lambda: [normalise(t) for t in probe])
    _, s_sig, _ = st.run(f"profile: signatures of {len(probe):,} posts", lambda: signatures(norm, 64, 5))
    out["normalise_us_per_post"] = round(1e6 * s_norm / len(probe), 1)
    out["signature_us_per_post"] = round(1e6 * s_sig / len(probe), 1)
    groups, s, mem = st.run("near-duplicates in-process", lambda: near_duplicate_groups(posts, partitions=2))
    spam = tpl >= 0
    out.update({"neardup_inprocess_s": round(s, 1), "neardup_inprocess_cpu_s": round(st.cpu_s, 1),
                "neardup_posts_per_s": round(n_posts / s),
                "neardup_groups_multi": _groups_multi(groups),
                "neardup_planted_grouped": round(float(np.mean([
                    len(np.unique(groups[spam & (tpl == t)])) == 1 for t in np.unique(tpl[spam])])), 4),
                "neardup_peak_rss_mb": round(mem.self_mb)})

    sub = posts[:sample]
    exact, s_exact, mem = st.run(f"exact pairwise Jaccard on {sample:,} posts",
                                 lambda: exact_near_duplicate_jaccard(sub, threshold=0.6))
    exact_cpu = st.cpu_s
    g_sub, s_lsh, _ = st.run(f"LSH on the same {sample:,} posts", lambda: near_duplicate_groups(sub, partitions=1))
    found = sum(1 for i, j in exact if g_sub[i] == g_sub[j])
    for lo in (0.7, 0.8):   # LSH's misses are pairs near the threshold (the signature estimate falls under it)
        above = [(i, j) for (i, j), v in exact.items() if v >= lo]
        out[f"recall_vs_exact_jaccard_ge_{lo}"] = (round(sum(1 for i, j in above if g_sub[i] == g_sub[j])
                                                         / len(above), 4) if above else None)
    out.update({"exact_pairs": len(exact), "exact_s": round(s_exact, 2), "exact_cpu_s": round(exact_cpu, 2),
                "exact_peak_rss_mb": round(mem.self_mb),
                "lsh_sample_s": round(s_lsh, 2), "lsh_sample_cpu_s": round(st.cpu_s, 2),
                "speedup_vs_exact": round(s_exact / max(s_lsh, 1e-9), 1),
                "speedup_vs_exact_cpu": round(exact_cpu / max(st.cpu_s, 1e-9), 1),
                "recall_vs_exact": round(found / len(exact), 4) if exact else None})

    # -- shared infrastructure
    (ptr, acc, fam, n, farms), s, _ = st.run("generate identifier memberships",
                                             lambda: synthetic_memberships(n_acc, n_edges))
    out["gen_memberships_s"] = round(s, 1)
    out["identifiers"] = len(ptr) - 1

    def infra(ray_address: str | None = None) -> tuple[list[np.ndarray], int]:
        src, dst, w, _ = infrastructure_edges(ptr, acc, fam, n, cfg, ray_address)
        return communities_arrays(src, dst, w, cfg.infra_kcore, cfg.min_size), len(src)

    (infra_groups, n_pairs), s, mem = st.run("infrastructure graph in-process", infra)
    planted = {int(x) for f in farms for x in f}
    got = {int(x) for g in infra_groups for x in g}
    out.update({"infra_inprocess_s": round(s, 1), "infra_inprocess_cpu_s": round(st.cpu_s, 1),
                "infra_edges_kept": n_pairs, "infra_clusters": len(infra_groups),
                "infra_planted_found": f"{len(planted & got)}/{len(planted)}",
                "infra_other_accounts": len(got - planted), "infra_peak_rss_mb": round(mem.self_mb)})

    # -- batch lockstep
    (acts, lfarms), s, _ = st.run("generate lockstep actions", lambda: synthetic_actions(n_acc, n_actions))
    out["gen_actions_s"] = round(s, 1)
    lock, s, mem = st.run("batch lockstep in-process", lambda: lockstep_groups(acts, cfg))
    lplanted = {m for f in lfarms for m in f}
    lfound = {m for g in lock for m in g[0]}
    out.update({"lockstep_inprocess_s": round(s, 1), "lockstep_inprocess_cpu_s": round(st.cpu_s, 1),
                "lockstep_groups": len(lock),
                "lockstep_planted_found": f"{len(lplanted & lfound)}/{len(lplanted)}",
                "lockstep_other_accounts": len(lfound - lplanted), "lockstep_peak_rss_mb": round(mem.self_mb)})
    exact_items, s_exact, _ = st.run("exact item pairs (account -> items index)", lambda: exact_item_pairs(acts, cfg))
    out["lockstep_exact_item_pairs_s"] = round(s_exact, 1)
    out["lockstep_exact_item_pairs_cpu_s"] = round(st.cpu_s, 1)
    out["lockstep_exact_item_pairs"] = len(exact_items)

    if not ray:
        return out
    try:
        import ray as ray_mod
    except ImportError:
        out["ray"] = "not installed (pip install 'bastion[ray]')"
        return out
    _, s, _ = st.run("start local Ray (2 workers)", lambda: ray_mod.init(
        num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False))
    out["ray_start_s"] = round(s, 1)
    try:
        g_ray, s, mem = st.run("near-duplicates on Ray", lambda: near_duplicate_groups(posts, partitions=2,
                                                                                       ray_address="local"))
        out.update({"neardup_ray_s": round(s, 1), "neardup_ray_same_groups": bool(np.array_equal(g_ray, groups)),
                    "neardup_ray_peak_rss_mb_driver": round(mem.self_mb),
                    "neardup_ray_peak_rss_mb_with_workers": round(mem.total_mb)})
        (ray_groups, _), s, mem = st.run("infrastructure graph on Ray", lambda: infra("local"))
        out.update({"infra_ray_s": round(s, 1), "infra_ray_same_clusters": len(ray_groups) == len(infra_groups)
                    and all(np.array_equal(a, b) for a, b in zip(ray_groups, infra_groups, strict=True)),
                    "infra_ray_peak_rss_mb_driver": round(mem.self_mb),
                    "infra_ray_peak_rss_mb_with_workers": round(mem.total_mb)})
        lock_ray, s, mem = st.run("batch lockstep on Ray", lambda: lockstep_groups(acts, cfg, ray_address="local"))
        out.update({"lockstep_ray_s": round(s, 1), "lockstep_ray_same_groups": lock_ray == lock,
                    "lockstep_ray_peak_rss_mb_with_workers": round(mem.total_mb)})
    finally:
        ray_mod.shutdown()
    out["load_avg_end"] = round(os.getloadavg()[0], 1)
    st.log("done")
    return out


def markdown(res: dict[str, Any], command: str, note: str = "") -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in res.items())
    return (f"## Coordinated clusters\n\nCommand: `{command}`. Times are wall-clock seconds on a shared 2-core, "
            f"24 GB machine whose load average from other jobs was {res.get('load_avg_start')} at the start and "
            f"{res.get('load_avg_end', '?')} at the end, so they are upper bounds: with the cores free they would be "
            "several times lower. `*_peak_rss_mb` is the stage's peak resident memory of the benchmark process; "
            "`*_with_workers` adds its descendants (the local Ray instance's raylet, object store and 2 workers; "
            "shared pages count once per process, so it is an upper bound).\n\n"
            f"| measure | value |\n|---|---|\n{rows}\n" + (f"\n{note.strip()}\n" if note.strip() else ""))
