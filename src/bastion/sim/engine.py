"""The simulation engine: hourly slices of vectorised background activity plus cohort events, written in time order.

Each slice (one hour) draws the benign background with numpy (Poisson counts per account from its rate, time
zone, daily and weekly rhythm; targets from the follower graph and a popularity-weighted feed), adds the events
the cohorts emit in Python (adversaries, look-alikes, enforcement, reports), sorts the slice by time and renders
JSON from pre-encoded fragments. Memory is bounded by one slice plus the account and post arrays.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from bastion.sim.data import load_pools
from bastion.sim.population import (
    DIURNAL,
    HOUR_MS,
    WEEKLY,
    GroupSampler,
    Population,
    build_graph,
    build_population,
)

START_MS = 1_795_132_800_000  # 2026-11-20T00:00:00Z, a Friday
START_DOW = 4

(K_LIKE, K_REPOST, K_POST, K_REPLY, K_FOLLOW, K_LOGIN, K_MSG, K_UNFOLLOW, K_BLOCK, K_MUTE, K_DELETE, K_REPORT,
 K_PRE, K_BF_PROFILE, K_BF_FOLLOW) = range(15)
_BG_KINDS = np.array([K_LIKE, K_REPOST, K_POST, K_REPLY, K_FOLLOW, K_LOGIN, K_MSG, K_UNFOLLOW, K_BLOCK, K_MUTE,
                      K_DELETE, K_REPORT])
_BG_P = np.array([0.44, 0.08, 0.13, 0.12, 0.035, 0.07, 0.06, 0.006, 0.002, 0.002, 0.004, 0.0012])
_BG_CUM = np.cumsum(_BG_P / _BG_P.sum())
REASONS = ("spam", "abuse", "harassment", "hate", "impersonation", "misinformation", "bot", "other")
_enc = msgspec.json.Encoder()


def js(value: Any) -> str:
    """JSON text of a value (strings quoted and escaped)."""
    return _enc.encode(value).decode()


DEFAULT_COHORTS: dict[str, float] = {
    "spam_bot": 0.015,
    "follow_farm": 0.006,
    "like_farm": 0.006,
    "harasser": 0.004,
    "pile_on": 0.005,
    "campaign": 0.01,
    "camouflaged_bot": 0.006,
    "ban_evader": 0.003,
    "report_brigade": 0.004,
}


@dataclass
class SimConfig:
    """Settings of one simulation. Cohort sizes are account counts (``cohorts``) or fractions of ``users``."""

    users: int = 20_000
    days: float = 2.0
    seed: int = 0
    ctx: bool = True
    text_split: str = "test"
    start_ms: int = START_MS
    cohorts: dict[str, int] = field(default_factory=dict)
    bad_scale: float = 1.0
    difficulty_mix: tuple[float, float, float] = (0.4, 0.35, 0.25)
    backfill: bool = True
    mean_degree: float = 15.0
    world: int = 0
    """0: the default world; N >= 1: parameters drawn from the priors of :mod:`bastion.sim.worlds`."""

    def cohort_size(self, name: str) -> int:
        if name in self.cohorts:
            return int(self.cohorts[name])
        return int(round(DEFAULT_COHORTS[name] * self.users * self.bad_scale))


class Simulator:
    """Build a world from a :class:`SimConfig` and stream it with :meth:`run`."""

    def __init__(self, cfg: SimConfig) -> None:
        from dataclasses import replace

        from bastion.sim import cohorts, worlds

        self.world: dict[str, Any] | None = None
        if cfg.world:
            split = worlds.world_split(cfg.world)
            if cfg.text_split != split:
                raise ValueError(f"world {cfg.world} is a {split} world: its texts come from the {split} split")
            self.world = worlds.draw_world(cfg.world)
            cfg = replace(cfg, cohorts={**worlds.cohort_sizes(self.world, cfg.users), **cfg.cohorts},
                          difficulty_mix=tuple(self.world["difficulty_mix"]),
                          mean_degree=self.world["mean_degree"])
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.prng = random.Random(cfg.seed)
        self.start = cfg.start_ms
        self.n_slices = max(1, math.ceil(cfg.days * 24))
        self.end = self.start + self.n_slices * HOUR_MS
        pools = load_pools(cfg.text_split)
        self.text: list[str] = []
        self.text_range: dict[str, tuple[int, int]] = {}
        for name in ("benign", "offensive", "hate", "spam"):
            enc = pools.encoded.get(name, [])
            self.text_range[name] = (len(self.text), len(self.text) + len(enc))
            self.text.extend(enc)
        self.raw_text = pools.texts
        self._fragments(pools.texts.get("benign", []))
        self.pop: Population = build_population(cfg.users, self.start, self.rng, self.prng, self.world)
        n = self.pop.n
        self.bg_cum = _BG_CUM
        self.like_p: np.ndarray | None = None
        if self.world:
            w = self.world
            bg_p = _BG_P.copy()
            bg_p[3] *= w["reply_share_mult"]
            bg_p[0] *= w["like_share_mult"]
            self.bg_cum = np.cumsum(bg_p / bg_p.sum())
            self.like_p = self.pop.like_p
        self.cohort = ["benign"] * n
        self.difficulty: dict[int, str] = {}
        self.acct_info: dict[int, dict[str, Any]] = {}
        self.off_p = np.full(n, self.wp("offensive_base_p", 0.012))
        self.extras: list[str] = []
        self.campaigns: dict[str, dict[str, Any]] = {}
        self.lookalikes: dict[str, Any] = {"viral": {}, "heated": [], "brands": [], "power_users": []}
        self.future: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
        self.slice_idx = 0
        # posts
        self.post_author = np.zeros(1 << 16, np.int32)
        self.post_root = np.zeros(1 << 16, np.int64)
        self.n_posts = 0
        self.last_post = np.full(n, -1, np.int64)
        self.pending_posts: list[tuple[int, int, int]] = []
        self.feed_post = np.zeros(0, np.int64)
        self.feed_ts = np.zeros(0, np.int64)
        self.feed_sampler: GroupSampler | None = None
        # truth
        self.bad_posts: dict[str, list[int]] = {"abusive": [], "spam": [], "hate": [], "campaign": []}
        self.campaigns_extra: dict[str, list[int]] = {}
        self.post_exposure: dict[int, float] = {}
        self.post_active: dict[int, int] = {}
        self.acct_exposure = np.zeros(n)
        self.reports: dict[str, list[int]] = defaultdict(list)
        self.suspended: dict[int, int] = {}
        self.first_ts = np.full(n, -1, np.int64)
        self.last_ts = np.full(n, -1, np.int64)
        self.evader_events: dict[int, list[tuple[str, int]]] = {}
        self.false_reports = 0
        self.counts: dict[str, int] = defaultdict(int)
        # cohorts choose members and fresh accounts before the graph exists
        self.groups = cohorts.setup(self)
        fresh = self.pop.created_ms >= self.start
        build_graph(self.pop, self.rng, fresh, cfg.mean_degree, self.wp("local_follow_p", 0.8))
        self.followers = self.pop.followers.astype(np.float64)
        self.acct_sampler = GroupSampler(
            self.pop.community, np.where(fresh, 0.0, self.pop.popularity), self.pop.n_communities
        )
        comm_tags = [f"#{t}" for t in self._community_topics()]
        self.comm_extra0 = len(self.extras)
        self.extras.extend(f',"hashtags":[{js(t[1:])}]' for t in comm_tags)
        self.news_extra0 = len(self.extras)
        self.extras.extend(
            f',"urls":[{js(f"https://news{i}.example.com/story/{self.prng.randrange(10**6)}")}]' for i in range(50)
        )
        self.is_bad = np.array([c != "benign" for c in self.cohort])
        self.is_evader = np.array([c == "ban_evader" for c in self.cohort])
        for g in self.groups:
            g.prepare(self)
        cohorts.schedule_enforcement(self)

    def _fragments(self, texts: list[str]) -> None:
        """Benign texts are rendered as the head of one real text plus the tail of another (pre-encoded JSON
        halves), so a large population does not repeat a few thousand texts verbatim."""
        heads, tails = [], []
        for t in texts:
            w = t.split()
            k = self.prng.randint(2, len(w) - 1) if len(w) >= 4 else len(w)
            heads.append(js(" ".join(w[:k]))[:-1])
            tails.append(js(" " + " ".join(w[k:]))[1:] if k < len(w) else '"')
        self.heads, self.tails = heads or ['"hello'], tails or ['"']

    def benign_text(self) -> str:
        return self.heads[self.prng.randrange(len(self.heads))] + self.tails[self.prng.randrange(len(self.tails))]

    def render_text(self, y: int) -> str:
        if y >= 0:
            return self.text[y]
        v = -y - 1
        return self.heads[v >> 20] + self.tails[v & 0xFFFFF]

    def _benign_codes(self, n: int) -> np.ndarray:
        h = self.rng.integers(0, len(self.heads), n)
        t = self.rng.integers(0, len(self.tails), n)
        codes = -((h << 20) + t) - 1
        if self.world and self.world["whole_text_p"] > 0:
            lo, hi = self.text_range["benign"]
            whole = self.rng.random(n) < self.world["whole_text_p"]
            if hi > lo:
                codes = np.where(whole, self.rng.integers(lo, hi, n), codes)
        return codes

    # ------------------------------------------------------------------ helpers used by cohorts
    def wp(self, name: str, default: float) -> float:
        """World parameter ``name``, or ``default`` in the default world."""
        return float(self.world[name]) if self.world else default

    def _community_topics(self) -> list[str]:
        from bastion.sim.textgen import TOPICS

        return [TOPICS[i % len(TOPICS)] for i in range(self.pop.n_communities)]

    def text_idx(self, pool: str) -> int:
        lo, hi = self.text_range[pool]
        return self.prng.randrange(lo, hi) if hi > lo else self.prng.randrange(0, len(self.text))

    def ctx(self, a: int) -> str:
        if not self.cfg.ctx:
            return ""
        p = self.pop
        r = self.prng.random()
        dev = int(p.dev[a])
        if r < p.mobile_p[a]:
            c = int(p.carrier[a])
            net = int(p.nets.carrier_start[c]) + self.prng.randrange(int(p.nets.carrier_size[c]))
            dev += 1
        elif r < p.mobile_p[a] + p.work_p[a] and p.work_net[a] >= 0:
            net = int(p.work_net[a])
        else:
            net = int(p.home_net[a])
        return f',"ctx":{{"ip":"{p.nets.ips[net]}","device":"d{dev:x}"}}'

    def alive(self, a: int, ts: int) -> bool:
        return bool(self.pop.created_ms[a] <= ts < self.pop.dead_ms[a]) and ts < self.end

    def emit(self, ts: int, a: int, etype: str, rest: str, ctx: bool = True) -> None:
        """Queue one event (any time from the current slice on); ``rest`` is its type-specific JSON members."""
        if ts >= self.end:
            return
        ts = max(ts, self.start + self.slice_idx * HOUR_MS)
        s = (ts - self.start) // HOUR_MS
        cx = self.ctx(a) if ctx else ""
        self.future[int(s)].append((int(ts), a, f',"type":"{etype}"{cx}{rest}'))

    def new_post_id(self, author: int, root: int = -1) -> int:
        pid = self.n_posts
        if pid >= len(self.post_author):
            self.post_author = np.concatenate([self.post_author, np.zeros_like(self.post_author)])
            self.post_root = np.concatenate([self.post_root, np.zeros_like(self.post_root)])
        self.post_author[pid] = author
        self.post_root[pid] = pid if root < 0 else root
        self.n_posts += 1
        return pid

    def views(self, author: int, parent_author: int = -1) -> float:
        v = 2.0 + 0.1 * self.followers[author]
        if parent_author >= 0:
            v += 1.0 + 0.02 * self.followers[parent_author]
        return float(v)

    def post(
        self, ts: int, a: int, text: int | str, *, reply_to: int = -1, mentions: tuple[int, ...] | list[int] = (),
        urls: tuple[str, ...] | list[str] = (), tags: tuple[str, ...] | list[str] = (), label: str | None = None,
        views: float | None = None,
    ) -> int:
        """A post.create; ``text`` is an index into the text table or already-encoded JSON. Returns the post."""
        if not self.alive(a, ts):
            return -1
        root = int(self.post_root[reply_to]) if reply_to >= 0 else -1
        pid = self.new_post_id(a, root)
        enc = self.text[text] if isinstance(text, int) else text
        parts = [f'"id":"p{pid}","text":{enc}']
        pa = -1
        if reply_to >= 0:
            pa = int(self.post_author[reply_to])
            parts.append(f'"reply_to":"p{reply_to}","reply_to_author":"{self.pop.ids[pa]}","root":"p{root}"')
            if pa not in mentions:
                mentions = [pa, *mentions]
        if mentions:
            parts.append('"mentions":[' + ",".join(f'"{self.pop.ids[m]}"' for m in mentions) + "]")
        if urls:
            parts.append(f'"urls":{js(list(urls))}')
        if tags:
            parts.append(f'"hashtags":{js(list(tags))}')
        self.emit(ts, a, "post.create", ',"post":{' + ",".join(parts) + "}")
        self.pending_posts.append((pid, a, ts))
        if label is None and isinstance(text, int):
            label = self.label_of(text)
        v = views if views is not None else self.views(a, pa) + len(mentions)
        if self.is_bad[a]:
            self.acct_exposure[a] += v
        if label:
            self.bad_posts["abusive" if label in ("offensive", "hate") else label].append(pid)
            if label == "hate":
                self.bad_posts["hate"].append(pid)
            self.post_exposure[pid] = v
            self.post_active[pid] = ts
        return pid

    def label_of(self, text_idx: int) -> str | None:
        for pool in ("offensive", "hate", "spam"):
            lo, hi = self.text_range[pool]
            if lo <= text_idx < hi:
                return pool
        return None

    def engage(self, ts: int, a: int, pid: int, kind: str = "like") -> None:
        if pid < 0 or not self.alive(a, ts):
            return
        self.emit(ts, a, "post.engage", f',"kind":"{kind}","post":{{"id":"p{pid}","author":"{self.pop.ids[self.post_author[pid]]}"}}')
        if self.is_bad[a]:
            self.acct_exposure[a] += 0.5

    def graph(self, ts: int, a: int, target: int, etype: str = "graph.follow") -> None:
        if self.alive(a, ts) and a != target:
            self.emit(ts, a, etype, f',"target":"{self.pop.ids[target]}"')
            if self.is_bad[a]:
                self.acct_exposure[a] += 0.5

    def message(self, ts: int, a: int, to: int, text: int | str, urls: tuple[str, ...] = ()) -> None:
        if not self.alive(a, ts):
            return
        enc = self.text[text] if isinstance(text, int) else text
        rest = f',"recipient":"{self.pop.ids[to]}","text":{enc}' + (f',"urls":{js(list(urls))}' if urls else "")
        self.emit(ts, a, "message.send", rest)
        if self.is_bad[a]:
            self.acct_exposure[a] += 1.0

    def report(self, ts: int, a: int, kind: str, subject: int, reason: str, text: str | None = None) -> None:
        if not self.alive(a, ts):
            return
        sid = f"p{subject}" if kind == "post" else self.pop.ids[subject]
        rest = f',"subject":{{"kind":"{kind}","id":"{sid}"}},"reason":"{reason}"' + (f',"text":{js(text)}' if text else "")
        self.emit(ts, a, "report.create", rest)
        if ts < self.end:
            self.reports[sid].append(int(ts))

    def profile_json(self, a: int, fields: tuple[str, ...] = ("handle", "display_name", "bio", "avatar")) -> str:
        p = self.pop
        vals = {"handle": p.handles[a], "display_name": p.names[a], "bio": p.bios[a], "avatar": p.avatars[a]}
        return js({k: vals[k] for k in fields})

    def feed_sample(self, n: int, community: np.ndarray | None = None) -> np.ndarray:
        if self.feed_sampler is None or n == 0:
            return np.full(n, -1, np.int64)
        idx = self.feed_sampler.sample(self.rng, community, n)
        return np.where(idx >= 0, self.feed_post[np.maximum(idx, 0)], -1)

    # ------------------------------------------------------------------ background
    def _alloc(self, authors: np.ndarray, roots: np.ndarray | None) -> np.ndarray:
        m = len(authors)
        while self.n_posts + m > len(self.post_author):
            self.post_author = np.concatenate([self.post_author, np.zeros_like(self.post_author)])
            self.post_root = np.concatenate([self.post_root, np.zeros_like(self.post_root)])
        pids = np.arange(self.n_posts, self.n_posts + m, dtype=np.int64)
        self.post_author[pids] = authors
        self.post_root[pids] = pids if roots is None else roots
        self.n_posts += m
        return pids

    def background(self, h: int, t0: int) -> dict[str, np.ndarray]:
        p, rng = self.pop, self.rng
        lh = (h + p.tz) % 24
        dow = ((h + p.tz) // 24 + START_DOW) % 7
        lam = p.bg_rate * DIURNAL[p.profile, lh] * WEEKLY[dow]
        cnt = rng.poisson(lam)
        actors = np.repeat(np.arange(p.n, dtype=np.int64), cnt)
        ts = t0 + rng.integers(0, HOUR_MS, len(actors))
        keep = (ts >= p.created_ms[actors]) & (ts < p.dead_ms[actors])
        actors, ts = actors[keep], ts[keep]
        e = len(actors)
        kind = _BG_KINDS[np.searchsorted(self.bg_cum, rng.random(e), "right").clip(0, len(_BG_KINDS) - 1)]
        if self.like_p is not None:  # heavy likers: most of their background is likes
            kind[rng.random(e) < self.like_p[actors]] = K_LIKE
        a = np.zeros(e, np.int64)
        b = np.zeros(e, np.int64)
        c = np.full(e, -1, np.int64)
        comm = p.community[actors]
        # replies: a followee's latest post, else the community feed; none -> an original post instead
        m = np.flatnonzero(kind == K_REPLY)
        par = self._network_post(actors[m], self.wp("reply_network_p", 0.6), comm[m])
        if self.world and len(par):
            flat = (rng.random(len(par)) < self.world["reply_to_root_p"]) & (par >= 0)
            par = np.where(flat, self.post_root[np.maximum(par, 0)], par)
        kind[m[par < 0]] = K_POST
        m, par = m[par >= 0], par[par >= 0]
        ol, oh = self.text_range["offensive"]
        if len(m):
            c[m] = par
            a[m] = self._alloc(actors[m], self.post_root[par])
            off = rng.random(len(m)) < self.off_p[actors[m]] * 1.5
            b[m] = np.where(off, rng.integers(ol, max(oh, ol + 1), len(m)), self._benign_codes(len(m)))
        mp = np.flatnonzero(kind == K_POST)
        if len(mp):
            a[mp] = self._alloc(actors[mp], None)
            r = rng.random(len(mp))
            off = r < self.off_p[actors[mp]]
            b[mp] = np.where(off, rng.integers(ol, max(oh, ol + 1), len(mp)), self._benign_codes(len(mp)))
            r2 = rng.random(len(mp))
            c[mp] = np.where(r2 < 0.2, self.comm_extra0 + comm[mp],
                             np.where(r2 < 0.24, self.news_extra0 + rng.integers(0, 50, len(mp)), -1))
        for k in (K_LIKE, K_REPOST):
            mk = np.flatnonzero(kind == k)
            a[mk] = self._network_post(actors[mk], 0.45, comm[mk])
        mk = np.flatnonzero(kind == K_FOLLOW)
        loc = rng.random(len(mk)) < self.wp("local_follow_p", 0.8)
        tgt = np.where(loc, self.acct_sampler.sample(rng, comm[mk]), self.acct_sampler.sample(rng, None, len(mk)))
        a[mk] = tgt
        for k in (K_UNFOLLOW, K_MSG):
            mk = np.flatnonzero(kind == k)
            f = self._random_followee(actors[mk])
            f = np.where(f < 0, self.acct_sampler.sample(rng, comm[mk]), f)
            a[mk] = f
            if k == K_MSG:
                b[mk] = self._benign_codes(len(mk))
        for k in (K_BLOCK, K_MUTE):
            mk = np.flatnonzero(kind == k)
            a[mk] = self.acct_sampler.sample(rng, comm[mk])
        mk = np.flatnonzero(kind == K_DELETE)
        a[mk] = self.last_post[actors[mk]]
        mk = np.flatnonzero(kind == K_REPORT)
        a[mk] = self.feed_sample(len(mk), comm[mk])
        b[mk] = rng.integers(0, len(REASONS), len(mk))
        needs_target = np.isin(kind, [K_LIKE, K_REPOST, K_FOLLOW, K_UNFOLLOW, K_MSG, K_BLOCK, K_MUTE, K_DELETE, K_REPORT])
        bad = needs_target & ((a < 0) | (np.isin(kind, [K_FOLLOW, K_UNFOLLOW, K_MSG, K_BLOCK, K_MUTE]) & (a == actors)))
        keep = ~bad
        out = {"ts": ts[keep], "kind": kind[keep], "actor": actors[keep], "a": a[keep], "b": b[keep], "c": c[keep]}
        self._background_truth(out)
        return out

    def _random_followee(self, actors: np.ndarray) -> np.ndarray:
        p = self.pop
        lo, hi = p.indptr[actors], p.indptr[actors + 1]
        deg = hi - lo
        pick = lo + (self.rng.random(len(actors)) * deg).astype(np.int64)
        return np.where(deg > 0, p.followees[np.minimum(pick, max(len(p.followees) - 1, 0))] if len(p.followees) else -1, -1)

    def _network_post(self, actors: np.ndarray, p_net: float, comm: np.ndarray) -> np.ndarray:
        n = len(actors)
        if n == 0:
            return np.zeros(0, np.int64)
        f = self._random_followee(actors)
        post = np.where(f >= 0, self.last_post[np.maximum(f, 0)], -1)
        use_net = self.rng.random(n) < p_net
        post = np.where(use_net, post, -1)
        need = post < 0
        glob = self.rng.random(n) < 0.2
        feed_c = self.feed_sample(n, comm)
        feed_g = self.feed_sample(n, None)
        fill = np.where(glob, feed_g, feed_c)
        fill = np.where(fill < 0, feed_g, fill)
        return np.where(need, fill, post)

    def _background_truth(self, ev: dict[str, np.ndarray]) -> None:
        kind, actors = ev["kind"], ev["actor"]
        m = np.flatnonzero((kind == K_POST) | (kind == K_REPLY))
        if not len(m):
            return
        au = actors[m]
        views = 2.0 + 0.1 * self.followers[au]
        rep = kind[m] == K_REPLY
        pa = np.where(rep, self.post_author[np.maximum(ev["c"][m], 0)], 0)
        views = views + np.where(rep, 1.0 + 0.02 * self.followers[pa], 0.0)
        bad = self.is_bad[au]
        np.add.at(self.acct_exposure, au[bad], views[bad])
        ol, oh = self.text_range["offensive"]
        off = (ev["b"][m] >= ol) & (ev["b"][m] < oh)
        for i in np.flatnonzero(off).tolist():
            pid = int(ev["a"][m[i]])
            self.bad_posts["abusive"].append(pid)
            self.post_exposure[pid] = float(views[i])
            self.post_active[pid] = int(ev["ts"][m[i]])
        for i in np.flatnonzero(kind == K_REPORT).tolist():
            self.reports[f"p{int(ev['a'][i])}"].append(int(ev["ts"][i]))

    def _update_feed(self, posts: np.ndarray, authors: np.ndarray, ts: np.ndarray, t1: int) -> None:
        order = np.argsort(ts, kind="stable")
        self.last_post[authors[order]] = posts[order]
        keep = self.feed_ts >= t1 - 24 * HOUR_MS
        self.feed_post = np.concatenate([self.feed_post[keep], posts])
        self.feed_ts = np.concatenate([self.feed_ts[keep], ts])
        fa = self.post_author[self.feed_post]
        w = (1.0 + self.followers[fa]) * np.exp(-(t1 - self.feed_ts) / (8 * HOUR_MS))
        self.feed_sampler = GroupSampler(self.pop.community[fa], w, self.pop.n_communities)

    # ------------------------------------------------------------------ writing
    def run(self, out_dir: Path, progress: bool = False) -> dict[str, Any]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        t_start = time.perf_counter()
        c_start = time.process_time()
        n_events = 0
        from bastion.progress import progress as progress_step

        with (out_dir / "events.jsonl").open("w", encoding="utf-8") as fh, \
                progress_step("simulate", self.n_slices, "hours", enabled=progress) as step:
            if self.cfg.backfill:
                n_events += self._write_backfill(fh)
            for h in range(self.n_slices):
                self.slice_idx = h
                t0 = self.start + h * HOUR_MS
                for g in self.groups:
                    g.step(self, h, t0, t0 + HOUR_MS)
                bg = self.background(h, t0)
                n_events += self._write_slice(fh, bg, self.future.pop(h, []), n_events, t0 + HOUR_MS)
                step.detail = f"{n_events:,} events"
                step.update(h + 1)
        wall = time.perf_counter() - t_start
        cpu = time.process_time() - c_start
        truth_path = out_dir / "truth.json"
        self.write_truth(truth_path)
        return {"events": n_events, "seconds": wall, "events_per_s": n_events / max(wall, 1e-9),
                "cpu_seconds": cpu, "events_per_cpu_s": n_events / max(cpu, 1e-9),
                "accounts": self.pop.n, "posts": self.n_posts, "out": str(out_dir)}

    def _write_backfill(self, fh: Any) -> int:
        p = self.pop
        pre = np.flatnonzero(p.created_ms < self.start)
        t0 = self.start - HOUR_MS
        ids = p.ids
        lines = []
        ts_prof = np.sort(t0 + self.rng.integers(0, HOUR_MS // 4, len(pre)))
        for i, (a, ts) in enumerate(zip(pre.tolist(), ts_prof.tolist(), strict=True)):
            lines.append(
                f'{{"id":"b{i}","type":"account.update","ts":{ts},"actor":"{ids[a]}","profile":'
                f'{self.profile_json(a)[:-1]},"created_at":{int(p.created_ms[a])}}},"raw":{{"backfill":true}}}}'
            )
        fh.write("\n".join(lines) + ("\n" if lines else ""))
        n = len(lines)
        src = np.repeat(np.arange(p.n), np.diff(p.indptr))
        dst = p.followees
        ts = t0 + HOUR_MS // 4 + self.rng.integers(0, 3 * HOUR_MS // 4, len(src))
        order = np.argsort(ts, kind="stable")
        chunk = 500_000
        for s in range(0, len(order), chunk):
            o = order[s : s + chunk]
            lines = [
                f'{{"id":"f{n + j}","type":"graph.follow","ts":{t},"actor":"{ids[x]}","target":"{ids[y]}","raw":{{"backfill":true}}}}'
                for j, (t, x, y) in enumerate(zip(ts[o].tolist(), src[o].tolist(), dst[o].tolist(), strict=True))
            ]
            n += len(lines)
            fh.write("\n".join(lines) + "\n")
        self.counts["backfill"] = n
        return n

    def _write_slice(self, fh: Any, bg: dict[str, np.ndarray], pre: list[tuple[int, int, str]], n0: int, t1: int) -> int:
        npre = len(pre)
        ts = np.concatenate([bg["ts"], np.array([x[0] for x in pre], np.int64)])
        kind = np.concatenate([bg["kind"], np.full(npre, K_PRE, np.int64)])
        actor = np.concatenate([bg["actor"], np.array([x[1] for x in pre], np.int64)])
        a = np.concatenate([bg["a"], np.arange(npre, dtype=np.int64)])
        b = np.concatenate([bg["b"], np.zeros(npre, np.int64)])
        c = np.concatenate([bg["c"], np.full(npre, -1, np.int64)])
        order = np.argsort(ts, kind="stable")
        ts, kind, actor, a, b, c = ts[order], kind[order], actor[order], a[order], b[order], c[order]
        e = len(ts)
        p = self.pop
        use_ctx = self.cfg.ctx
        if use_ctx:
            r = self.rng.random(e)
            mob = r < p.mobile_p[actor]
            work = (~mob) & (r < p.mobile_p[actor] + p.work_p[actor]) & (p.work_net[actor] >= 0)
            net = np.where(work, p.work_net[actor], p.home_net[actor])
            car = p.carrier[actor]
            mnet = p.nets.carrier_start[car] + (self.rng.random(e) * p.nets.carrier_size[car]).astype(np.int64)
            net = np.where(mob, mnet, net)
            dev = p.dev[actor] + mob
            ips = p.nets.ips
            cxs = [f',"ctx":{{"ip":"{ips[x]}","device":"d{d:x}"}}' for x, d in zip(net.tolist(), dev.tolist(), strict=True)]
        else:
            cxs = [""] * e
        # truth bookkeeping, vectorised
        if e:
            ua, first = np.unique(actor, return_index=True)
            unseen = self.first_ts[ua] < 0
            self.first_ts[ua[unseen]] = ts[first[unseen]]
            ra, rlast = np.unique(actor[::-1], return_index=True)
            self.last_ts[ra] = ts[::-1][rlast]
            for i in np.flatnonzero(self.is_evader[actor]).tolist():
                self.evader_events.setdefault(int(actor[i]), []).append((f"e{n0 + i}", int(ts[i])))
        ids, text, extras, rt = p.ids, self.text, self.extras, self.render_text
        pa = self.post_author
        lines = []
        app = lines.append
        for i, (t, k, u, x, y, z, cx) in enumerate(
            zip(ts.tolist(), kind.tolist(), actor.tolist(), a.tolist(), b.tolist(), c.tolist(), cxs, strict=True)
        ):
            head = f'{{"id":"e{n0 + i}","ts":{t},"actor":"{ids[u]}"'
            if k == K_LIKE:
                app(f'{head},"type":"post.engage"{cx},"kind":"like","post":{{"id":"p{x}","author":"{ids[pa[x]]}"}}}}')
            elif k == K_PRE:
                app(f"{head}{pre[x][2]}}}")
            elif k == K_POST:
                app(f'{head},"type":"post.create"{cx},"post":{{"id":"p{x}","text":{text[y] if y >= 0 else rt(y)}{extras[z] if z >= 0 else ""}}}}}')
            elif k == K_REPLY:
                au = ids[pa[z]]
                app(f'{head},"type":"post.create"{cx},"post":{{"id":"p{x}","text":{text[y] if y >= 0 else rt(y)},"reply_to":"p{z}",'
                    f'"reply_to_author":"{au}","root":"p{self.post_root[z]}","mentions":["{au}"]}}}}')
            elif k == K_REPOST:
                app(f'{head},"type":"post.engage"{cx},"kind":"repost","post":{{"id":"p{x}","author":"{ids[pa[x]]}"}}}}')
            elif k == K_FOLLOW:
                app(f'{head},"type":"graph.follow"{cx},"target":"{ids[x]}"}}')
            elif k == K_LOGIN:
                app(f'{head},"type":"account.login"{cx},"success":true}}')
            elif k == K_MSG:
                app(f'{head},"type":"message.send"{cx},"recipient":"{ids[x]}","text":{text[y] if y >= 0 else rt(y)}}}')
            elif k == K_UNFOLLOW:
                app(f'{head},"type":"graph.unfollow"{cx},"target":"{ids[x]}"}}')
            elif k == K_BLOCK:
                app(f'{head},"type":"graph.block"{cx},"target":"{ids[x]}"}}')
            elif k == K_MUTE:
                app(f'{head},"type":"graph.mute"{cx},"target":"{ids[x]}"}}')
            elif k == K_DELETE:
                app(f'{head},"type":"post.delete"{cx},"post":{{"id":"p{x}"}}}}')
            elif k == K_REPORT:
                app(f'{head},"type":"report.create"{cx},"subject":{{"kind":"post","id":"p{x}"}},"reason":"{REASONS[y]}"}}')
        if lines:
            fh.write("\n".join(lines) + "\n")
        # posts of this slice feed the next one
        m = (bg["kind"] == K_POST) | (bg["kind"] == K_REPLY)
        pend = [x for x in self.pending_posts if x[2] < t1]
        self.pending_posts = [x for x in self.pending_posts if x[2] >= t1]
        posts = np.concatenate([bg["a"][m], np.array([x[0] for x in pend], np.int64)])
        authors = np.concatenate([bg["actor"][m], np.array([x[1] for x in pend], np.int64)])
        pts = np.concatenate([bg["ts"][m], np.array([x[2] for x in pend], np.int64)])
        self._update_feed(posts, authors, pts, t1)
        return e

    # ------------------------------------------------------------------ truth
    def write_truth(self, path: Path) -> None:
        p = self.pop
        ids = p.ids
        out: dict[str, Any] = {}
        accounts: dict[str, Any] = {}
        for i in range(p.n):
            c = self.cohort[i]
            rec: dict[str, Any] = {"cohort": c, "bad": c != "benign"}
            info = self.acct_info.get(i)
            if info:
                rec.update(info)
            if i in self.difficulty:
                rec["difficulty"] = self.difficulty[i]
            if i in p.lookalike:
                rec["lookalike"] = p.lookalike[i]
            if i in self.suspended:
                rec["suspended_at"] = self.suspended[i]
            if p.created_ms[i] >= self.start:
                rec["created"] = int(p.created_ms[i])
            if self.first_ts[i] >= 0 and rec["bad"]:
                rec["start"] = int(self.first_ts[i])
                rec["end"] = int(min(self.last_ts[i], p.dead_ms[i]))
            accounts[ids[i]] = rec
        out["accounts"] = accounts
        out["posts"] = {k: [f"p{x}" for x in sorted(set(v))] for k, v in self.bad_posts.items()}
        out["post_count"] = self.n_posts
        out["campaigns"] = self.campaigns
        exposure: dict[str, float] = {}
        for i in np.flatnonzero(self.is_bad).tolist():
            exposure[ids[i]] = round(float(self.acct_exposure[i]), 2)
        for pid, v in self.post_exposure.items():
            exposure[f"p{pid}"] = round(float(v), 2)
        out["exposure"] = exposure
        out["post_ts"] = {f"p{k}": v for k, v in self.post_active.items()}
        out["reports"] = dict(self.reports)
        out["suspended"] = {ids[a]: t for a, t in sorted(self.suspended.items(), key=lambda kv: kv[1])}
        out["evader_events"] = {
            ids[a]: {"ids": [x[0] for x in evs], "ts": [x[1] for x in evs]} for a, evs in self.evader_events.items()
        }
        out["lookalikes"] = self.lookalikes
        if self.world:
            from bastion.sim.worlds import world_split

            out["world"] = {"id": self.cfg.world, "split": world_split(self.cfg.world), "params": self.world}
        out["meta"] = {
            "version": 1, "users": p.n, "days": self.cfg.days, "seed": self.cfg.seed, "start": self.start,
            "end": self.end, "ctx": self.cfg.ctx, "text_split": self.cfg.text_split, "posts": self.n_posts,
            "backfill": self.cfg.backfill,
        }
        if self.world:
            out["meta"]["world"] = self.cfg.world
        path.write_bytes(msgspec.json.encode(out))


def simulate(cfg: SimConfig, out_dir: Path | str, progress: bool = False) -> dict[str, Any]:
    """Run one simulation into ``out_dir`` (events.jsonl and truth.json); returns counts and timing."""
    from bastion.progress import progress as progress_step

    t0 = time.perf_counter()
    with progress_step("simulate (population, texts)", enabled=progress):
        sim = Simulator(cfg)
    setup = time.perf_counter() - t0
    stats = sim.run(Path(out_dir), progress=progress)
    stats["setup_seconds"] = setup
    stats["total_seconds"] = time.perf_counter() - t0
    return stats
