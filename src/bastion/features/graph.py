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


def _sample(ids: set[str], k: int = MAX_NEIGHBOURS) -> list[str]:
    """The ``k`` smallest ids, in order: a set's iteration order depends on the process's string hash seed,
    and float sums taken in another order can differ in the last bit between an embedded run and a worker."""
    return sorted(ids)[:k]


def _id_max(state: Any, kind: str, values: list[str]) -> float:
    if not values:
        return NAN
    return math.log1p(max(state.identifiers.count(kind, v) for v in values))


def graph_features(acc: Account, state: Any, now_ms: int) -> dict[str, float]:
    """Follow-graph reciprocity, neighbour aggregates and identifier sharing of ``acc`` in ``state``."""
    graph = state.graph
    out = graph.out("follow", acc.id)
    inc = graph.into("follow", acc.id)
    n_out, n_in = len(out), len(inc)
    mutual = len(out & inc) if n_out and n_in else 0
    accounts = state.accounts

    def stats(ids: set[str]) -> tuple[list[float], list[float], list[float], list[float]]:
        fol, fng, age, ev = [], [], [], []
        for nid in _sample(ids):
            nb = accounts.get(nid)
            if nb is None:
                continue
            fol.append(math.log1p(nb.followers))
            fng.append(math.log1p(nb.following))
            age.append(math.log1p(max(0.0, (now_ms - nb.created_ms) / DAY_MS)) if nb.created_ms else NAN)
            ev.append(math.log1p(nb.activity.n_events))
        return fol, fng, age, ev

    ofol, ofng, oage, _ = stats(out) if n_out else ([], [], [], [])
    ifol, ifng, iage, iev = stats(inc) if n_in else ([], [], [], [])
    young = [a for a in iage if a == a]
    # two hops (follow farms): how many of my followees' followers are young accounts - a farm's members
    # follow the same few customers, whose follower lists fill with fresh accounts
    shares, counts = [], []
    if n_out:
        young_ms = now_ms - YOUNG_DAYS * DAY_MS
        for fid in _sample(out, MAX_HOP2[0]):
            k = y = 0
            for nid in _sample(graph.into("follow", fid), MAX_HOP2[1]):
                if nid == acc.id:
                    continue
                nb = accounts.get(nid)
                if nb is None or not nb.created_ms:
                    continue
                k += 1
                y += nb.created_ms >= young_ms
            if k:
                shares.append(y / k)
                counts.append(math.log1p(y))
    eng, eng_rel = [], []
    for pid in acc.activity.recent_engaged:
        post = state.posts.get(pid)
        if post is None:
            continue
        n_eng = post.likes + post.reposts
        author = accounts.get(post.author)
        eng.append(math.log1p(n_eng))
        eng_rel.append(math.log((n_eng + 1.0) / ((author.followers if author is not None else 0) + 1.0)))
    ips = list(acc.ips)
    devices = list(acc.devices)
    nets = sorted({ip_network(ip) for ip in ips}) if ips else []
    return {
        "g_log_out": math.log1p(n_out),
        "g_log_in": math.log1p(n_in),
        "g_recip_out": mutual / n_out if n_out else NAN,
        "g_recip_in": mutual / n_in if n_in else NAN,
        "g_log_mutual": math.log1p(mutual),
        "g_nb_out_log_followers": _mean(ofol),
        "g_nb_out_log_following": _mean(ofng),
        "g_nb_out_age": _mean(oage),
        "g_nb_in_log_followers": _mean(ifol),
        "g_nb_in_log_following": _mean(ifng),
        "g_nb_in_age": _mean(iage),
        "g_nb_in_log_events": _mean(iev),
        "g_nb_in_frac_new": sum(a < math.log1p(30.0) for a in young) / len(young) if young else NAN,
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
