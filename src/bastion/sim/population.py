"""The simulated population: accounts, communities, time zones, networks, devices and the follower graph.

Everything here is numpy arrays indexed by account number (0..M-1); the string id of account ``i`` is
``ids[i]`` (``u`` plus a shuffled number, so id order says nothing about cohort).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.sim import textgen

DAY_MS = 86_400_000
HOUR_MS = 3_600_000

# Local-hour activity profiles (mean 1): 0 = ordinary people, 1 = power users at regular working hours.
_HUMAN = np.array(
    [0.35, 0.2, 0.12, 0.08, 0.07, 0.1, 0.25, 0.55, 0.8, 0.9, 0.95, 1.0,
     1.05, 1.0, 0.95, 0.95, 1.0, 1.1, 1.25, 1.4, 1.5, 1.45, 1.1, 0.7]
)
_REGULAR = np.where((np.arange(24) >= 8) & (np.arange(24) < 20), 1.0, 0.04)
DIURNAL = np.stack([_HUMAN / _HUMAN.mean(), _REGULAR / _REGULAR.mean()])
WEEKLY = np.array([1.0, 0.97, 0.97, 1.0, 1.05, 1.15, 1.1])  # Monday..Sunday
TZ_CHOICES = np.array([-8, -7, -6, -5, -4, -3, 0, 1, 2, 3, 5, 7, 8, 9, 10])
TZ_WEIGHTS = np.array([8, 3, 6, 12, 2, 4, 10, 12, 5, 3, 8, 3, 6, 5, 3], dtype=float)


@dataclass
class Networks:
    """IP addresses by network number; mobile carriers own contiguous pools (CGNAT)."""

    ips: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    carrier_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    carrier_size: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def add(self, rng: np.random.Generator, n: int, kind: str, prefix: tuple[int, ...] | None = None) -> int:
        """Add ``n`` networks, return the first number. ``prefix`` fixes the leading octets (a datacenter /16)."""
        first = len(self.ips)
        octs = rng.integers(1, 255, size=(n, 4))
        if prefix:
            for i, p in enumerate(prefix):
                octs[:, i] = p
        else:
            octs[:, 0] = rng.choice(np.array([24, 31, 49, 62, 73, 77, 82, 89, 94, 98, 101, 109, 151, 176, 188, 203]), n)
        self.ips.extend(f"{a}.{b}.{c}.{d}" for a, b, c, d in octs.tolist())
        self.kinds.extend([kind] * n)
        return first


@dataclass
class Population:
    n: int
    ids: list[str]
    community: np.ndarray
    tz: np.ndarray
    profile: np.ndarray  # diurnal profile index
    bg_rate: np.ndarray  # background events per hour (mean over the day)
    created_ms: np.ndarray
    dead_ms: np.ndarray
    home_net: np.ndarray
    work_net: np.ndarray
    carrier: np.ndarray
    mobile_p: np.ndarray
    work_p: np.ndarray
    dev: np.ndarray
    popularity: np.ndarray
    handles: list[str]
    names: list[str]
    bios: list[str]
    avatars: list[str]
    lookalike: dict[int, list[str]]
    nets: Networks
    n_communities: int
    # follower graph (CSR of followees) and in-degree
    indptr: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    followees: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    followers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    like_p: np.ndarray | None = None  # per-account share of background events forced to likes (worlds only)


def build_population(
    n: int, start_ms: int, rng: np.random.Generator, prng: random.Random, world: dict[str, Any] | None = None
) -> Population:
    """A benign-looking population of ``n`` accounts; cohorts later overwrite parts of it.

    ``world`` holds the parameters drawn by :func:`bastion.sim.worlds.draw_world`; without it the constants
    below are the default world's (and the random draws are exactly those of the default world)."""
    w = world or {}
    n_comm = int(np.clip(n // 250, 8, 400))
    comm_size = rng.pareto(1.3, n_comm) + 1.0
    community = rng.choice(n_comm, size=n, p=comm_size / comm_size.sum()).astype(np.int32)
    tz_w = TZ_WEIGHTS * np.array(w["tz_noise"]) if w else TZ_WEIGHTS
    tz = rng.choice(TZ_CHOICES, size=n, p=tz_w / tz_w.sum()).astype(np.int64)
    # communities are partly regional: half the members share the community's time zone
    comm_tz = rng.choice(TZ_CHOICES, size=n_comm, p=tz_w / tz_w.sum())
    same = rng.random(n) < 0.5
    tz[same] = comm_tz[community[same]]
    profile = np.zeros(n, np.int64)
    sigma = w.get("activity_sigma", 1.1)
    if w:
        daily = rng.lognormal(np.log(w["activity_median_daily"]), sigma, n)
    else:
        daily = rng.lognormal(np.log(18.0) - sigma**2 / 2, sigma, n)
    daily = np.minimum(daily, 400.0)
    bg_rate = daily / 24.0
    age_days = rng.exponential(700.0, n) + 5
    created_ms = (start_ms - age_days * DAY_MS).astype(np.int64)
    dead_ms = np.full(n, np.iinfo(np.int64).max, np.int64)
    popularity = (rng.pareto(1.1, n) + 1.0) * (0.5 + daily / daily.mean())

    nets = Networks()
    # households of 1-5 people share a home IP
    hh_size = np.minimum(rng.geometric(w.get("household_p", 0.55), n), 6)
    cuts = np.cumsum(hh_size)
    n_hh = int(np.searchsorted(cuts, n, side="left")) + 1
    hh_first = nets.add(rng, n_hh, "household")
    household = np.searchsorted(cuts, np.arange(n), side="right")
    home_net = (hh_first + household).astype(np.int64)
    # offices (heavy-tailed sizes) and a few large campuses
    n_off = max(1, int(n // w.get("users_per_office", 40)))
    off_first = nets.add(rng, n_off, "office")
    off_w = rng.pareto(1.2, n_off) + 1
    n_campus = max(1, int(n // w.get("users_per_campus", 5000)))
    campus_first = nets.add(rng, n_campus, "campus")
    work_net = np.full(n, -1, np.int64)
    worker = rng.random(n) < w.get("worker_share", 0.35)
    work_net[worker] = off_first + rng.choice(n_off, size=int(worker.sum()), p=off_w / off_w.sum())
    student = (~worker) & (rng.random(n) < w.get("student_share", 0.08))
    work_net[student] = campus_first + rng.integers(0, n_campus, int(student.sum()))
    # mobile carriers: CGNAT pools shared by thousands
    n_car = int(w.get("carriers", 5))
    pool = max(8, int(n // w.get("users_per_carrier_ip", 150)))
    car_w = rng.dirichlet(np.full(n_car, 2.0)) if w else np.array([0.35, 0.25, 0.2, 0.12, 0.08])
    starts = [nets.add(rng, pool, "carrier") for _ in range(n_car)]
    nets.carrier_start = np.array(starts, np.int64)
    nets.carrier_size = np.full(n_car, pool, np.int64)
    carrier = rng.choice(n_car, size=n, p=car_w).astype(np.int64)
    mobile_p = rng.beta(w.get("mobile_beta_a", 2), 2, n)
    work_p = np.where(work_net >= 0, 0.35, 0.0)
    dev = rng.integers(1 << 36, 1 << 44, n, dtype=np.int64) * 2

    codes = rng.permutation(n) + 1
    ids = [f"u{c}" for c in codes.tolist()]
    handles, names, bios, avatars = [], [], [], []
    seen: set[str] = set()
    lookalike: dict[int, list[str]] = {}
    common = [("john", "smith"), ("maria", "garcia"), ("david", "lee"), ("mohammed", "khan"), ("anna", "ivanova")]
    comm_topic = [textgen.TOPICS[i % len(textgen.TOPICS)] for i in range(n_comm)]
    for i in range(n):
        if prng.random() < w.get("common_name_share", 0.02):
            f, last = prng.choice(common)
            h, name = f"{f}_{last}", f"{f.title()} {last.title()}"
            lookalike.setdefault(i, []).append("common_name")
        else:
            h, name = textgen.handle_for(prng)
        base = h
        while h in seen:
            h = f"{base}{prng.randrange(1, 10000)}"
        seen.add(h)
        handles.append(h)
        names.append(name)
        bios.append(textgen.bio_for(prng, comm_topic[community[i]]))
        avatars.append(f"av{prng.getrandbits(48):012x}")
    counts = np.bincount(home_net - hh_first)
    for i in np.flatnonzero(counts[home_net - hh_first] >= 3).tolist():
        lookalike.setdefault(i, []).append("household")
    pop = Population(
        n=n, ids=ids, community=community, tz=tz, profile=profile, bg_rate=bg_rate, created_ms=created_ms,
        dead_ms=dead_ms, home_net=home_net, work_net=work_net, carrier=carrier, mobile_p=mobile_p, work_p=work_p,
        dev=dev, popularity=popularity, handles=handles, names=names, bios=bios, avatars=avatars,
        lookalike=lookalike, nets=nets, n_communities=n_comm,
    )
    if w:
        _world_archetypes(pop, w, rng, prng, household, np.concatenate([[0], cuts]), seen)
    return pop


def _world_archetypes(
    pop: Population, w: dict[str, Any], rng: np.random.Generator, prng: random.Random, household: np.ndarray,
    hh_start: np.ndarray, seen: set[str],
) -> None:
    """A drawn world's benign archetypes and shared infrastructure (profile cues, lurkers, heavy likers, night
    shift, VPN exits, shared devices). Cohorts later overwrite what their members need."""
    n = pop.n

    def pick(share: float) -> np.ndarray:
        return np.flatnonzero(rng.random(n) < share)

    def tag(idx: np.ndarray, name: str) -> None:
        for i in idx.tolist():
            pop.lookalike.setdefault(i, []).append(name)

    lurk = pick(w["lurker_share"])
    pop.bg_rate[lurk] *= 0.03
    tag(lurk, "lurker")
    likers = pick(w["heavy_liker_share"])
    pop.bg_rate[likers] *= rng.uniform(3.0, 10.0, len(likers))
    pop.like_p = np.zeros(n)
    pop.like_p[likers] = w["heavy_liker_like_p"]
    tag(likers, "heavy_liker")
    night = pick(w["night_shift_share"])
    pop.tz[night] += 12
    tag(night, "night_shift")
    for i in pick(w["empty_bio_share"]).tolist():
        pop.bios[i] = ""
        pop.lookalike.setdefault(i, []).append("empty_bio")
    for i in pick(w["default_avatar_share"]).tolist():
        pop.avatars[i] = "default"
        pop.lookalike.setdefault(i, []).append("default_avatar")
    for i in pick(w["digit_handle_share"]).tolist():
        stem = pop.handles[i].rstrip("0123456789_")[:12] or "user"
        h = f"{stem}{prng.randrange(1000, 10**8)}"
        while h in seen:
            h = f"{stem}{prng.randrange(10**7, 10**8)}"
        seen.add(h)
        pop.handles[i] = h
        pop.lookalike.setdefault(i, []).append("digit_handle")
    # VPN exits: a few datacenter addresses shared by many ordinary people
    vpn = pick(w["vpn_share"])
    if len(vpn):
        first = pop.nets.add(rng, int(w["vpn_exits"]), "vpn", prefix=(int(rng.choice([104, 138, 146, 159, 193])),))
        pop.home_net[vpn] = first + rng.integers(0, int(w["vpn_exits"]), len(vpn))
        tag(vpn, "vpn")
    # shared devices: a household member uses the first member's device
    first_member = hh_start[household]
    sh = pick(w["shared_device_share"])
    sh = sh[first_member[sh] != sh]
    pop.dev[sh] = pop.dev[first_member[sh]]
    tag(sh, "shared_device")
    tag(np.unique(first_member[sh]), "shared_device")


class GroupSampler:
    """Sample items within a group (community) with probability proportional to a weight, vectorised."""

    def __init__(self, groups: np.ndarray, weights: np.ndarray, n_groups: int) -> None:
        order = np.argsort(groups, kind="stable")
        self.order = order
        g = groups[order]
        self.cw = np.cumsum(weights[order].astype(np.float64))
        self.lo_idx = np.searchsorted(g, np.arange(n_groups), "left")
        self.hi_idx = np.searchsorted(g, np.arange(n_groups), "right")
        self.n = len(order)

    def sample(self, rng: np.random.Generator, query: np.ndarray | None, size: int | None = None) -> np.ndarray:
        """One item per query group (-1 where the group is empty); ``query=None`` samples globally."""
        if self.n == 0:
            return np.full(size if query is None else len(query), -1, np.int64)
        if query is None:
            u = rng.random(size) * self.cw[-1]
            pos = np.minimum(np.searchsorted(self.cw, u, "right"), self.n - 1)
            return self.order[pos]
        lo_i, hi_i = self.lo_idx[query], self.hi_idx[query]
        empty = hi_i <= lo_i
        lo = np.where(lo_i > 0, self.cw[np.maximum(lo_i - 1, 0)], 0.0)
        hi = self.cw[np.maximum(hi_i - 1, 0)]
        u = lo + rng.random(len(query)) * (hi - lo)
        pos = np.clip(np.searchsorted(self.cw, u, "right"), lo_i, np.maximum(hi_i - 1, lo_i))
        out = self.order[np.minimum(pos, self.n - 1)].astype(np.int64)
        out[empty] = -1
        return out


def build_graph(
    pop: Population, rng: np.random.Generator, exclude: np.ndarray, mean_degree: float = 15.0,
    local_p: float = 0.8,
) -> None:
    """Heavy-tailed follower graph: 80% of follows inside one's community, targets by popularity.

    ``exclude`` marks accounts that do not exist yet when the stream starts (no edges either way)."""
    n = pop.n
    sigma = 1.0
    deg = rng.lognormal(np.log(mean_degree) - sigma**2 / 2, sigma, n)
    deg = np.clip(deg * (0.6 + 0.4 * pop.bg_rate / pop.bg_rate.mean()), 1, min(2000, n - 1)).astype(np.int64)
    deg[exclude] = 0
    src = np.repeat(np.arange(n), deg)
    sampler = GroupSampler(pop.community, np.where(exclude, 0.0, pop.popularity), pop.n_communities)
    local = rng.random(len(src)) < local_p
    dst = np.empty(len(src), np.int64)
    dst[local] = sampler.sample(rng, pop.community[src[local]])
    dst[~local] = sampler.sample(rng, None, int((~local).sum()))
    ok = (dst >= 0) & (dst != src)
    key = np.unique(src[ok] * n + dst[ok])
    src, dst = key // n, key % n
    pop.indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))]).astype(np.int64)
    pop.followees = dst.astype(np.int32)
    pop.followers = np.bincount(dst, minlength=n).astype(np.int64)
