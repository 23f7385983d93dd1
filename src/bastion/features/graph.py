"""Graph and shared-identifier features of one account for the behaviour bot model (issue 6).

They read the engine's state (follow graph, identifier index, neighbours' accounts) as it stands, so the
same function serves training (the final state of a replayed simulation) and the live engine. Neighbour
aggregates follow Deep Entity Classification: statistics of the accounts at the other end of the account's
follow edges, over at most ``MAX_NEIGHBOURS`` of them (the smallest ids, so the sample is deterministic).
The ``eng_post_*`` features read the posts of the account's engagement ring (at most 8) as they stand now.
Missing information is ``nan``.

>>> from bastion.state.memory import MemoryState
>>> from bastion.state.model import Account
>>> st = MemoryState()
>>> for a in ("a", "b", "c"):
...     st.accounts.put(Account(id=a))
>>> _ = st.graph.add("follow", "a", "b", 1); _ = st.graph.add("follow", "b", "a", 1); _ = st.graph.add("follow", "a", "c", 1)
>>> f = graph_features(st.accounts.get("a"), st, 0)
>>> f["g_recip_out"], f["g_recip_in"]
(0.5, 1.0)
"""

from __future__ import annotations

import heapq
import math
from typing import Any

from bastion.state.apply import ip_network
from bastion.state.model import Account

NAN = float("nan")
DAY_MS = 86_400_000
MAX_NEIGHBOURS = 64
MAX_HOP2 = (16, 32)  # two-hop aggregates: followees sampled, followers of each sampled
YOUNG_DAYS = 3.0

GRAPH_SCHEMA: tuple[str, ...] = (
    "g_log_out", "g_log_in", "g_recip_out", "g_recip_in", "g_log_mutual",
    "g_nb_out_log_followers", "g_nb_out_log_following", "g_nb_out_age",
    "g_nb_in_log_followers", "g_nb_in_log_following", "g_nb_in_age", "g_nb_in_log_events",
    "g_nb_in_frac_new", "g_nb2_young_share", "g_nb2_log_young",
    "id_ip_max", "id_device_max", "id_ip_net_max", "id_n_ips", "id_n_devices",
    # the account's last engaged posts as they stand now (like farms: a small account's post that many
    # accounts liked within minutes): their likes + reposts, and those relative to the author's followers
    "eng_post_log_eng", "eng_post_eng_vs_author",
)


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return sum(xs) / len(xs) if xs else NAN


#: from this many ids on, ``heapq.nsmallest`` (one pass, a heap of k) beats sorting the whole set
HEAP_FROM = 800


def _sample(ids: set[str], k: int = MAX_NEIGHBOURS) -> list[str]:
    """The ``k`` smallest ids, in order: a set's iteration order depends on the process's string hash seed,
    and float sums taken in another order can differ in the last bit between an embedded run and a worker.
    (``heapq.nsmallest`` returns exactly ``sorted(ids)[:k]``; it is only faster on large sets.)"""
    n = len(ids)
    if n > HEAP_FROM:
        return heapq.nsmallest(k, ids)
    return sorted(ids)[:k] if n > k else sorted(ids)


def _id_max(state: Any, kind: str, values: list[str]) -> float:
    if not values:
        return NAN
    return math.log1p(max(state.identifiers.count(kind, v) for v in values))


def graph_features(acc: Account, state: Any, now_ms: int) -> dict[str, float]:
    """Follow-graph reciprocity, neighbour aggregates and identifier sharing of ``acc`` in ``state``."""
    graph = state.graph
    acc_id = acc.id
    out = graph.out("follow", acc_id)
    inc = graph.into("follow", acc_id)
    n_out, n_in = len(out), len(inc)
    mutual = len(out & inc) if n_out and n_in else 0
    accounts = state.accounts
    get = getattr(accounts, "getter", None) or accounts.get   # MemoryAccounts: the dict's get when it can
    log1p = math.log1p
    # the sorted samples of the follower sets, cached by the graph until the set changes (MemoryGraph);
    # otherwise sorted here (the same lists)
    smallest_into = getattr(graph, "smallest_into", None)

    # neighbour statistics (the lists _mean averages, in sample order, so the same sums)
    ofol: list[float] = []
    ofng: list[float] = []
    oage: list[float] = []
    out_sorted = _sample(out) if n_out else []   # the 64 smallest; its first 16 are the two-hop sample
    for nid in out_sorted:
        nb = get(nid)
        if nb is None:
            continue
        ofol.append(log1p(nb.followers))
        ofng.append(log1p(nb.following))
        created = nb.created_ms
        oage.append(log1p(max(0.0, (now_ms - created) / DAY_MS)) if created else NAN)
    ifol: list[float] = []
    ifng: list[float] = []
    iage: list[float] = []
    iev: list[float] = []
    if n_in:
        for nid in (smallest_into("follow", acc_id, MAX_NEIGHBOURS) if smallest_into is not None
                    else _sample(inc)):
            nb = get(nid)
            if nb is None:
                continue
            ifol.append(log1p(nb.followers))
            ifng.append(log1p(nb.following))
            created = nb.created_ms
            iage.append(log1p(max(0.0, (now_ms - created) / DAY_MS)) if created else NAN)
            iev.append(log1p(nb.activity.n_events))
    young = [a for a in iage if a == a]
    # two hops (follow farms): how many of my followees' followers are young accounts - a farm's members
    # follow the same few customers, whose follower lists fill with fresh accounts
    shares: list[float] = []
    counts: list[float] = []
    if n_out:
        young_ms = now_ms - YOUNG_DAYS * DAY_MS
        k_hop, k_fol = MAX_HOP2
        into = graph.into
        for fid in out_sorted[:k_hop]:
            if smallest_into is not None:
                followers = smallest_into("follow", fid, k_fol)
            else:
                followers = _sample(into("follow", fid), k_fol)
            k = y = 0
            for nid in followers:
                if nid == acc_id:
                    continue
                nb = get(nid)
                if nb is None:
                    continue
                created = nb.created_ms
                if not created:
                    continue
                k += 1
                y += created >= young_ms
            if k:
                shares.append(y / k)
                counts.append(log1p(y))
    eng: list[float] = []
    eng_rel: list[float] = []
    posts = state.posts
    for pid in acc.activity.recent_engaged:
        post = posts.get(pid)
        if post is None:
            continue
        n_eng = post.likes + post.reposts
        author = get(post.author)
        eng.append(log1p(n_eng))
        eng_rel.append(math.log((n_eng + 1.0) / ((author.followers if author is not None else 0) + 1.0)))
    ips = list(acc.ips)
    devices = list(acc.devices)
    nets = sorted({ip_network(ip) for ip in ips}) if ips else []
    return {
        "g_log_out": log1p(n_out),
        "g_log_in": log1p(n_in),
        "g_recip_out": mutual / n_out if n_out else NAN,
        "g_recip_in": mutual / n_in if n_in else NAN,
        "g_log_mutual": log1p(mutual),
        "g_nb_out_log_followers": _mean(ofol),
        "g_nb_out_log_following": _mean(ofng),
        "g_nb_out_age": _mean(oage),
        "g_nb_in_log_followers": _mean(ifol),
        "g_nb_in_log_following": _mean(ifng),
        "g_nb_in_age": _mean(iage),
        "g_nb_in_log_events": _mean(iev),
        "g_nb_in_frac_new": sum(a < log1p(30.0) for a in young) / len(young) if young else NAN,
        "g_nb2_young_share": _mean(shares),
        "g_nb2_log_young": _mean(counts),
        "id_ip_max": _id_max(state, "ip", ips),
        "id_device_max": _id_max(state, "device", devices),
        "id_ip_net_max": _id_max(state, "ip_net", nets),
        "id_n_ips": float(len(ips)) if ips else NAN,
        "id_n_devices": float(len(devices)) if devices else NAN,
        "eng_post_log_eng": _mean(eng),
        "eng_post_eng_vs_author": _mean(eng_rel),
    }
