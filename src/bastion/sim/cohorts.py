"""Adversary cohorts, benign look-alikes and platform enforcement.

Each group picks its accounts in :func:`setup` (before the follower graph exists, so fresh accounts get no history),
finishes in ``prepare`` (targets, texts) and emits its events hour by hour in ``step``. Difficulty is per group
(per account for harassers and evaders): ``obvious``, ``moderate`` or ``stealthy``; parameters are indexed by it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.sim import textgen
from bastion.sim.population import DAY_MS, DIURNAL, HOUR_MS

if TYPE_CHECKING:
    from bastion.sim.engine import Simulator

DIFFS = ("obvious", "moderate", "stealthy")
MIN_MS = 60_000
CAMPAIGN_KIND = {
    "spam_bot": "spam_ring",
    "follow_farm": "follow_farm",
    "like_farm": "like_farm",
    "camouflaged_bot": "bot_farm",
    "campaign": "campaign",
    "pile_on": "pile_on",
    "report_brigade": "report_brigade",
}
GROUP_SIZE = {
    "spam_bot": (8, 25),
    "follow_farm": (15, 40),
    "like_farm": (15, 40),
    "camouflaged_bot": (10, 30),
    "campaign": (20, 60),
    "pile_on": (8, 20),
    "report_brigade": (10, 25),
}
SUSPEND_REASON = {
    "spam_bot": "spam",
    "follow_farm": "fake engagement",
    "like_farm": "fake engagement",
    "camouflaged_bot": "platform manipulation",
    "campaign": "coordinated inauthentic behaviour",
    "harasser": "harassment",
    "pile_on": "harassment",
    "ban_evader": "ban evasion",
    "report_brigade": "abuse of reporting",
}
_REPORT_TEXTS = ("this account is spamming", "hate speech, ban them", "fake account", "harassing people", "bot",
                 "scam", "posting misinformation")
_SIGNATURES = ("smh", "lol", "!!", "🤡", "pathetic", "clown", "ok boomer", "cope")


class Group:
    cohort = ""

    def __init__(self, sim: Simulator, key: str, members: list[int], diff: int) -> None:
        self.key = key
        self.members = members
        self.diff = diff
        self.start_ms = sim.start
        self.targets: list[int] = []
        for a in members:
            sim.cohort[a] = self.cohort
            sim.difficulty[a] = DIFFS[diff]
            if self.kind:
                sim.acct_info[a] = {"campaign": key}

    @property
    def kind(self) -> str | None:
        return CAMPAIGN_KIND.get(self.cohort)

    def prepare(self, sim: Simulator) -> None:
        pass

    def step(self, sim: Simulator, h: int, t0: int, t1: int) -> None:
        pass

    def truth(self, sim: Simulator) -> dict[str, Any]:
        return {
            "kind": self.kind, "members": [sim.pop.ids[a] for a in self.members], "difficulty": DIFFS[self.diff],
            "start": int(self.start_ms), "targets": [sim.pop.ids[t] for t in self.targets],
        }

    # helpers
    def hourly(self, sim: Simulator, a: int, rate: float, h: int, human: bool) -> int:
        if human:
            p = sim.pop
            rate *= DIURNAL[0, (h + int(p.tz[a])) % 24]
        return int(sim.rng.poisson(rate))


def _fresh(sim: Simulator, a: int, created: int, style: str) -> None:
    """Turn account ``a`` into one created during the simulation (account.create emitted at ``created``)."""
    p = sim.pop
    created = max(int(created), sim.start + 1)
    p.created_ms[a] = created
    if style == "bot" and sim.world and sim.prng.random() > sim.world["bot_profile_p"]:
        return  # this world's obvious bots keep an ordinary-looking profile
    if style == "bot":
        h, name = textgen.handle_for(sim.prng, "bot")
        p.handles[a], p.names[a] = h, name
        p.bios[a] = sim.prng.choice(("", "DM for promo", "follow back 100%", "crypto | deals | giveaways"))
        p.avatars[a] = "default"


def _emit_create(sim: Simulator, a: int) -> None:
    p = sim.pop
    prof = sim.profile_json(a)[:-1] + f',"lang":"en","email_domain":{textgen_email(sim, a)}}}'
    sim.emit(int(p.created_ms[a]) - 1, a, "account.create", f',"profile":{prof}')


def textgen_email(sim: Simulator, a: int) -> str:
    if sim.cohort[a] in ("spam_bot", "follow_farm", "like_farm", "camouflaged_bot") and sim.difficulty.get(a) == "obvious":
        return '"mailinator.com"'
    return '"' + sim.prng.choice(("gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com")) + '"'


def _datacenter(sim: Simulator, members: list[int], diff: int, shared_dev: bool) -> None:
    """Obvious groups share a few datacenter IPs (and one emulator device); moderate ones own proxies."""
    p, rng = sim.pop, sim.rng
    if diff == 0:
        first = p.nets.add(rng, 3, "datacenter", prefix=(45, 83, int(rng.integers(0, 255))))
        dev = int(rng.integers(1 << 36, 1 << 44)) * 2
        for i, a in enumerate(members):
            p.home_net[a] = first + i % 3
            if shared_dev:
                p.dev[a] = dev
    elif diff == 1:
        first = p.nets.add(rng, len(members), "datacenter", prefix=(185, 220))
        for i, a in enumerate(members):
            p.home_net[a] = first + i
    else:
        return
    for a in members:
        p.mobile_p[a] = 0.0
        p.work_p[a] = 0.0


class SpamRing(Group):
    cohort = "spam_bot"
    RATE = (5.0, 2.0, 0.5)

    def __init__(self, sim: Simulator, key: str, members: list[int], diff: int) -> None:
        super().__init__(sim, key, members, diff)
        dur = sim.end - sim.start
        self.start_ms = sim.start + int(sim.rng.uniform(0.02, sim.wp("adversary_start_max", 0.4)) * dur)
        self.member_start: dict[int, int] = {}
        for a in members:
            if diff == 2:
                sim.pop.bg_rate[a] *= 0.3
                self.member_start[a] = self.start_ms
                continue
            spread = 30 * MIN_MS if diff == 0 else 12 * HOUR_MS
            created = self.start_ms - int(sim.rng.uniform(0, spread))
            _fresh(sim, a, created, "bot" if diff == 0 else "person")
            sim.pop.bg_rate[a] = 0.0 if diff == 0 else 0.1
            self.member_start[a] = int(sim.pop.created_ms[a]) + int(sim.rng.uniform(1, 20) * MIN_MS)
        _datacenter(sim, members, diff, shared_dev=True)

    def prepare(self, sim: Simulator) -> None:
        pr = sim.prng
        spam = sim.raw_text.get("spam") or ["win a free prize now"]
        domain = pr.choice(textgen.SPAM_DOMAINS)
        n_var = (15, 40, 80)[self.diff]
        self.urls = [f"https://{domain if self.diff == 0 else pr.choice(textgen.SHORTENERS)}/{pr.getrandbits(24):06x}"
                     for _ in range((1, 4, 12)[self.diff])]
        self.variants: list[str] = []
        for base in pr.sample(spam, min(len(spam), (1, 2, 4)[self.diff])):
            for v in textgen.spam_variants(pr, base, pr.choice(self.urls), n_var, heavy=self.diff > 0):
                self.variants.append(sim_js(v))
        for a in self.members:
            if sim.pop.created_ms[a] >= sim.start:
                _emit_create(sim, a)

    def step(self, sim: Simulator, h: int, t0: int, t1: int) -> None:
        pr, d = sim.prng, self.diff
        n_acc = sim.pop.n
        for a in self.members:
            ms = self.member_start.get(a, self.start_ms)
            if ms >= t1 or not sim.alive(a, max(t0, ms)):
                continue
            if d == 0 and pr.random() < 0.5:
                continue
            n = self.hourly(sim, a, self.RATE[d] * (2 if d == 0 else 1) * sim.wp("adversary_rate_mult", 1.0), h,
                            human=d == 2)
            burst0 = max(t0, ms) + pr.randrange(0, max(1, t1 - max(t0, ms)))
            for _ in range(n):
                ts = burst0 + pr.randrange(0, 10 * MIN_MS) if d == 0 else max(t0, ms) + pr.randrange(0, max(1, t1 - max(t0, ms)))
                ts = min(ts, t1 - 1)
                r = pr.random()
                text = pr.choice(self.variants)
                urls = (pr.choice(self.urls),) if pr.random() < (1.0, 0.8, 0.6)[d] else ()
                if d == 2 and pr.random() < sim.wp("stealth_benign_post_p", 0.45):
                    sim.post(ts, a, sim.benign_text())
                elif r < 0.45:
                    par = int(sim.feed_sample(1, None)[0])
                    if par >= 0 and sim.post_author[par] != a:
                        pid = sim.post(ts, a, text, reply_to=par, urls=urls, label="spam")
                        if pid >= 0:
                            self._maybe_report(sim, ts, int(sim.post_author[par]), "post", pid)
                elif r < 0.7:
                    ment = [int(x) for x in sim.rng.integers(0, n_acc, pr.randint(2, 4))]
                    pid = sim.post(ts, a, text, mentions=ment, urls=urls, label="spam")
                    if pid >= 0:
                        self._maybe_report(sim, ts, ment[0], "post", pid)
                elif r < 0.9:
                    to = int(sim.rng.integers(0, n_acc))
                    if to != a:
                        sim.message(ts, a, to, text, urls)
                        self._maybe_report(sim, ts, to, "account", a)
                else:
                    sim.post(ts, a, text, urls=urls, label="spam")

    def _maybe_report(self, sim: Simulator, ts: int, reporter: int, kind: str, subject: int) -> None:
        if sim.prng.random() < 0.04:
            sim.report(ts + int(sim.rng.exponential(30 * MIN_MS)) + 1000, reporter, kind, subject, "spam")


def sim_js(text: str) -> str:
    from bastion.sim.engine import js

    return js(text)


class Farm(Group):
    """Follower or like farm: members act in lockstep on paid targets (customers)."""

    WINDOW = (120_000, 15 * MIN_MS, 3 * HOUR_MS)
    PART = (1.0, 0.85, 0.6)

    def __init__(self, sim: Simulator, key: str, members: list[int], diff: int) -> None:
        super().__init__(sim, key, members, diff)
        dur = sim.end - sim.start
        self.start_ms = sim.start + int(sim.rng.uniform(0.03, sim.wp("adversary_start_max", 0.3)) * dur)
        for a in members:
            if diff == 2:
                sim.pop.bg_rate[a] *= 0.2
                continue
            created = self.start_ms - int(sim.rng.uniform(10 * MIN_MS, 2 * HOUR_MS if diff == 0 else 20 * HOUR_MS))
            _fresh(sim, a, created, "bot" if diff == 0 else "person")
            sim.pop.bg_rate[a] = 0.0 if diff == 0 else 0.05
        _datacenter(sim, members, diff, shared_dev=True)

    def prepare(self, sim: Simulator) -> None:
        rng = sim.rng
        cand = np.flatnonzero((sim.pop.followers < np.median(sim.pop.followers) + 5) & ~sim.is_bad
                              & (sim.pop.created_ms < sim.start))
        self.targets = [int(x) for x in rng.choice(cand, size=min(len(cand), int(rng.integers(3, 7))), replace=False)]
        gap = (4 * HOUR_MS, 6 * HOUR_MS, 9 * HOUR_MS)[self.diff]
        self.orders = []
        t = self.start_ms
        while t < sim.end and self.targets:
            self.orders.append((t, self.targets[len(self.orders) % len(self.targets)]))
            t += int(gap * sim.rng.uniform(0.6, 1.4))
        for a in self.members:
            if sim.pop.created_ms[a] >= sim.start:
                _emit_create(sim, a)

    def step(self, sim: Simulator, h: int, t0: int, t1: int) -> None:
        pr, d = sim.prng, self.diff
        for ot, cust in self.orders:
            if not t0 <= ot < t1:
                continue
            pid = -1
            if self.cohort == "like_farm":
                pid = sim.post(max(t0, ot - pr.randrange(5, 30) * MIN_MS), cust, sim.benign_text())
            offs = sorted(pr.randrange(1000, self.WINDOW[d]) for _ in self.members)
            for a, off in zip(self.members, offs, strict=True):
                if pr.random() > self.PART[d]:
                    continue
                if self.cohort == "follow_farm":
                    sim.graph(ot + off, a, cust)
                elif pid >= 0:
                    sim.engage(ot + off, a, pid, "repost" if pr.random() < (0.3, 0.15, 0.05)[d] else "like")
        if d == 2:  # camouflage: follow popular accounts, like popular posts
            for a in self.members:
                if not sim.alive(a, t0):
                    continue
                for _ in range(self.hourly(sim, a, 0.8, h, True)):
                    ts = t0 + pr.randrange(HOUR_MS)
                    if pr.random() < 0.5:
                        sim.graph(ts, a, int(sim.acct_sampler.sample(sim.rng, None, 1)[0]))
                    else:
                        sim.engage(ts, a, int(sim.feed_sample(1, None)[0]))


class FollowFarm(Farm):
    cohort = "follow_farm"


class LikeFarm(Farm):
    cohort = "like_farm"


class Harasser(Group):
    cohort = "harasser"
    RATE = (2.5, 1.0, 0.35)
    ABUSIVE = (0.9, 0.7, 0.45)

    def __init__(self, sim: Simulator, key: str, members: list[int], diff: int, parent: Harasser | None = None) -> None:
        super().__init__(sim, key, members, diff)
        self.parent = parent
        self.style: list[str] = []

    def prepare(self, sim: Simulator) -> None:
        pr, p = sim.prng, sim.pop
        a = self.members[0]
        if self.parent is not None:
            self.targets, self.style = self.parent.targets, self.parent.style
            return
        comm = int(p.community[a])
        pool = np.flatnonzero(~sim.is_bad & (p.created_ms < sim.start))
        if self.diff == 2:
            same = pool[p.community[pool] == comm]
            pool = same if len(same) > 10 else pool
        else:
            other = pool[p.community[pool] != comm]
            pool = other if len(other) > 10 else pool
        k = pr.randint(2, 5)
        self.targets = [int(x) for x in sim.rng.choice(pool, size=min(k, len(pool)), replace=False)]
        sig = pr.choice(_SIGNATURES)
        texts = (sim.raw_text.get("offensive", []) + sim.raw_text.get("hate", [])) or ["you are pathetic"]
        picks = pr.sample(texts, min(30, len(texts)))
        self.style = [sim_js(f"{t} {sig}" if pr.random() < 0.5 else t) for t in picks]

    def step(self, sim: Simulator, h: int, t0: int, t1: int) -> None:
        pr, d = sim.prng, self.diff
        a = self.members[0]
        lo = max(t0, int(sim.pop.created_ms[a]) + 5 * MIN_MS)
        if lo >= t1 or not sim.alive(a, lo) or not self.targets:
            return
        for _ in range(self.hourly(sim, a, self.RATE[d] * sim.wp("adversary_rate_mult", 1.0), h, True)):
            ts = lo + pr.randrange(max(1, t1 - lo))
            v = pr.choice(self.targets)
            abusive = pr.random() < self.ABUSIVE[d]
            text: int | str = pr.choice(self.style) if abusive else sim.benign_text()
            hate_p = sim.wp("harasser_hate_p", 0.3)
            label = ("hate" if "hate" in sim.raw_text and abusive and pr.random() < hate_p else "offensive") if abusive else None
            r = pr.random()
            lp = int(sim.last_post[v])
            if r < 0.55 and lp >= 0:
                pid = sim.post(ts, a, text, reply_to=lp, label=label, views=2.0)
                subj = ("post", pid)
            elif r < 0.8:
                pid = sim.post(ts, a, text, mentions=[v], label=label, views=1.0 + 0.05 * sim.followers[a])
                subj = ("post", pid)
            else:
                sim.message(ts, a, v, text)
                subj = ("account", a)
            if abusive and subj[1] >= 0 and pr.random() < 0.3:
                reason = pr.choice(("harassment", "abuse", "hate"))
                sim.report(ts + pr.randrange(2 * MIN_MS, 90 * MIN_MS), v, subj[0], subj[1], reason)
            if abusive and pr.random() < 0.05:
                sim.graph(ts + pr.randrange(MIN_MS, 30 * MIN_MS), v, a, "graph.block")


class PileOn(Group):
    cohort = "pile_on"
    WINDOW = (15 * MIN_MS, HOUR_MS, 4 * HOUR_MS)

    def prepare(self, sim: Simulator) -> None:
        p, pr = sim.pop, sim.prng
        cand = np.flatnonzero(~sim.is_bad & (p.created_ms < sim.start) & (p.followers > np.median(p.followers)))
        self.targets = [int(sim.rng.choice(cand))] if len(cand) else []
        dur = sim.end - sim.start
        n_ep = max(1, int(dur / DAY_MS))
        self.episodes = sorted(sim.start + int(pr.uniform(0.05, 0.9) * dur) for _ in range(n_ep))
        self.start_ms = self.episodes[0]
        texts = (sim.raw_text.get("offensive", []) + sim.raw_text.get("hate", [])) or ["you are pathetic"]
        self.texts = [sim_js(t) for t in pr.sample(texts, min(60, len(texts)))]
        self.tag = f"{p.handles[self.targets[0]]}isover" if self.targets else "isover"

    def step(self, sim: Simulator, h: int, t0: int, t1: int) -> None:
        pr, d = sim.prng, self.diff
        for ep in self.episodes:
            if not t0 <= ep < t1 or not self.targets:
                continue
            v = self.targets[0]
            trigger = sim.post(ep, v, sim.benign_text())
            for a in self.members:
                if pr.random() > (0.95, 0.8, 0.6)[d]:
                    continue
                for _ in range(pr.randint(1, 4)):
                    ts = ep + pr.randrange(MIN_MS, self.WINDOW[d])
                    abusive = pr.random() < (0.95, 0.8, 0.6)[d]
                    text: int | str = pr.choice(self.texts) if abusive else sim.benign_text()
                    label = "offensive" if abusive else None
                    tags = (self.tag,) if d == 0 else ()
                    r = pr.random()
                    if r < 0.7 and trigger >= 0:
                        pid = sim.post(ts, a, text, reply_to=trigger, tags=tags, label=label, views=3.0)
                    elif r < 0.85:
                        pid = sim.post(ts, a, text, mentions=[v], tags=tags, label=label)
                    else:
                        sim.message(ts, a, v, text)
                        pid = -1
                    if pid >= 0 and abusive and pr.random() < 0.15:
                        sim.report(ts + pr.randrange(MIN_MS, HOUR_MS), v, "post", pid, "harassment")


class Campaign(Group):
    cohort = "campaign"
    WINDOW = (3 * MIN_MS, 20 * MIN_MS, 2 * HOUR_MS)

    def __init__(self, sim: Simulator, key: str, members: list[int], diff: int) -> None:
        super().__init__(sim, key, members, diff)
        dur = sim.end - sim.start
        self.start_ms = sim.start + int(sim.rng.uniform(0.05, sim.wp("adversary_start_max", 0.4)) * dur)
        aged = (0.2, 0.5, 0.8)[diff]
        self.bought: list[int] = []
        for a in members:
            if sim.rng.random() < aged:
                self.bought.append(a)
                sim.acct_info[a]["bought"] = True
            else:
                spread = HOUR_MS if diff == 0 else 24 * HOUR_MS
                _fresh(sim, a, self.start_ms - int(sim.rng.uniform(10 * MIN_MS, spread)), "person")
                sim.pop.bg_rate[a] = (0.05, 0.2, 0.5)[diff]
        _datacenter(sim, members, diff, shared_dev=False)

    def prepare(self, sim: Simulator) -> None:
        pr = sim.prng
        thing = pr.choice(("election", "vaccine", "water supply", "bank collapse", "wildfire", "5g towers", "stadium deal"))
        brand = pr.choice(("MegaCorp", "BigPharma", "CityBank", "NewsNet", "AgriCo"))
        stem = thing.replace(" ", "")
        self.tags = [f"{stem}{w}" for w in pr.sample(("truth", "scandal", "exposed", "gate", "lies", "now"), 3)]
        dom = f"{stem}-{pr.choice(('truth', 'facts', 'leaks'))}.{pr.choice(('info', 'net', 'org', 'news'))}"
        self.urls = [f"https://{dom}/a/{pr.randrange(10**5)}" for _ in range((1, 3, 8)[self.diff])]
        self.variants = [sim_js(t) for t in textgen.narrative_variants(
            pr, (6, 25, 80)[self.diff], thing, brand, self.tags, heavy=self.diff == 0)]
        gap = (3 * HOUR_MS, 5 * HOUR_MS, 8 * HOUR_MS)[self.diff]
        self.waves = []
        t = self.start_ms
        while t < sim.end:
            self.waves.append(t)
            t += int(gap * pr.uniform(0.7, 1.3))
        for a in self.members:
            if sim.pop.created_ms[a] >= sim.start:
                _emit_create(sim, a)
            elif self.diff < 2 and (self.diff == 0 or pr.random() < 0.5):  # a bought account is rebranded
                h, name = textgen.handle_for(pr)
                sim.pop.handles[a], sim.pop.names[a] = f"{h}_{self.tags[0][:6]}", name
                sim.pop.bios[a] = f"patriot. truth seeker. #{self.tags[0]}"
                sim.emit(self.start_ms - pr.randrange(MIN_MS, 2 * HOUR_MS), a, "account.update",
                         f',"profile":{sim.profile_json(a, ("handle", "display_name", "bio"))}')

    def step(self, sim: Simulator, h: int, t0: int, t1: int) -> None:
        pr, d = sim.prng, self.diff
        for w in self.waves:
            if not t0 <= w < t1:
                continue
            posts: list[tuple[int, int]] = []
            for a in self.members:
                if pr.random() > (0.95, 0.75, 0.5)[d]:
                    continue
                for _ in range(2 if d == 0 else 1):
                    ts = w + pr.randrange(1000, self.WINDOW[d])
                    urls = (pr.choice(self.urls),) if pr.random() < (1.0, 0.7, 0.4)[d] else ()
                    tags = tuple(pr.sample(self.tags, pr.randint(1, 3))) if pr.random() < (1.0, 0.8, 0.6)[d] else ()
                    pid = sim.post(ts, a, pr.choice(self.variants), urls=urls, tags=tags, label="campaign",
                                   views=2.0 + 0.1 * sim.followers[a] + 10.0 * len(tags))
                    if pid >= 0:
                        posts.append((pid, ts))
            for a in self.members:
                if posts and pr.random() < 0.4:
                    pid, ts = pr.choice(posts)
                    if sim.post_author[pid] != a:
                        sim.engage(ts + pr.randrange(1000, self.WINDOW[d]), a, pid, "repost")


class BotFarm(Group):
    """Camouflaged bots: human-like content, follow popular accounts, amplify their operator's targets."""

    cohort = "camouflaged_bot"
    PERIOD = (10 * MIN_MS, 20 * MIN_MS, 0)

    def __init__(self, sim: Simulator, key: str, members: list[int], diff: int) -> None:
        super().__init__(sim, key, members, diff)
        for a in members:
            if diff == 0:
                _fresh(sim, a, sim.start + int(sim.rng.uniform(0, 6 * HOUR_MS)), "person")
            sim.pop.bg_rate[a] = 0.0 if diff < 2 else sim.pop.bg_rate[a] * 0.5
        self.start_ms = sim.start
        _datacenter(sim, members, diff, shared_dev=False)

    def prepare(self, sim: Simulator) -> None:
        p = sim.pop
        cand = np.flatnonzero(~sim.is_bad & (p.created_ms < sim.start))
        self.targets = [int(x) for x in sim.rng.choice(cand, size=min(3, len(cand)), replace=False)]
        self.phase = {a: sim.prng.randrange(self.PERIOD[0] or 1) for a in self.members}
        for a in self.members:
            if p.created_ms[a] >= sim.start:
                _emit_create(sim, a)

    def _act(self, sim: Simulator, ts: int, a: int) -> None:
        pr = sim.prng
        r = pr.random()
        if r < 0.4:
            sim.engage(ts, a, int(sim.feed_sample(1, None)[0]), "like")
        elif r < 0.6:
            t = pr.choice(self.targets) if self.targets else -1
            if t >= 0:
                sim.engage(ts, a, int(sim.last_post[t]), pr.choice(("repost", "like")))
        elif r < 0.8:
            sim.graph(ts, a, int(sim.acct_sampler.sample(sim.rng, None, 1)[0]))
        else:
            sim.post(ts, a, sim.benign_text())

    def step(self, sim: Simulator, h: int, t0: int, t1: int) -> None:
        pr, d = sim.prng, self.diff
        for a in self.members:
            if not sim.alive(a, t0) and not sim.alive(a, t1 - 1):
                continue
            if d == 2:
                for _ in range(self.hourly(sim, a, 2.0, h, True)):
                    self._act(sim, t0 + pr.randrange(HOUR_MS), a)
                continue
            if d == 1 and (h + int(sim.pop.tz[a])) % 24 < 7:
                continue  # a scheduled "sleep"
            per = self.PERIOD[d]
            jit = 1000 if d == 0 else 120_000
            k0 = math.ceil((t0 - sim.start - self.phase[a]) / per)
            t = sim.start + self.phase[a] + k0 * per
            while t < t1:
                ts = min(t1 - 1, max(t0, t + pr.randrange(-jit, jit + 1)))
                if sim.alive(a, ts):
                    self._act(sim, ts, a)
                t += per


class ReportBrigade(Group):
    cohort = "report_brigade"
    WINDOW = (10 * MIN_MS, HOUR_MS, 6 * HOUR_MS)

    def prepare(self, sim: Simulator) -> None:
        p, pr = sim.pop, sim.prng
        cand = np.flatnonzero(~sim.is_bad & (p.created_ms < sim.start) & (p.followers > np.median(p.followers)))
        self.targets = [int(x) for x in sim.rng.choice(cand, size=min(2, len(cand)), replace=False)]
        dur = sim.end - sim.start
        # an episode starts early enough for its whole report window to fall inside the run (reports past the
        # end were lost, so a late episode left most of a brigade silent)
        span = max(dur - self.WINDOW[-1], dur // 2)
        self.episodes = sorted(sim.start + int(pr.uniform(0.05, 0.9) * span) for _ in range(max(1, int(dur / DAY_MS))))
        self.start_ms = self.episodes[0]
        self.reason = pr.choice(("spam", "hate", "harassment", "bot"))
        self.text = pr.choice(_REPORT_TEXTS)

    def step(self, sim: Simulator, h: int, t0: int, t1: int) -> None:
        pr, d = sim.prng, self.diff
        for ep in self.episodes:
            if not t0 <= ep < t1:
                continue
            for t in self.targets:
                for a in self.members:
                    if pr.random() > (1.0, 0.8, 0.6)[d]:
                        continue
                    ts = ep + pr.randrange(1000, self.WINDOW[d])
                    if d == 0:
                        reason, text = self.reason, self.text
                    elif d == 1:
                        reason, text = pr.choice((self.reason, "abuse")), pr.choice(_REPORT_TEXTS[:3])
                    else:
                        reason, text = pr.choice(("spam", "abuse", "harassment", "hate", "bot", "other")), pr.choice(_REPORT_TEXTS)
                    lp = int(sim.last_post[t])
                    if lp >= 0 and pr.random() < 0.6:
                        sim.report(ts, a, "post", lp, reason, text)
                    else:
                        sim.report(ts, a, "account", t, reason, text)
                    sim.false_reports += 1
                    sim.acct_exposure[a] += 10.0


class Evader(Group):
    """A ban evader: a new account after its parent's suspension, acting like the parent."""

    cohort = "ban_evader"

    def __init__(self, sim: Simulator, key: str, members: list[int], diff: int, parent: int, parent_group: Group) -> None:
        super().__init__(sim, key, members, diff)
        self.parent = parent
        self.parent_group = parent_group
        a = members[0]
        sim.acct_info[a] = {"evades": sim.pop.ids[parent], "parent_cohort": parent_group.cohort}
        if parent_group.kind:
            sim.acct_info[a]["campaign"] = parent_group.key
        self.inner: Group | None = None

    def setup_identity(self, sim: Simulator, created: int) -> None:
        p, pr, a, par = sim.pop, sim.prng, self.members[0], self.parent
        _fresh(sim, a, created, "person")
        p.community[a] = p.community[par]
        p.tz[a] = p.tz[par]
        if self.diff < 2:
            p.handles[a] = textgen.similar_handle(pr, p.handles[par])
            p.names[a] = p.names[par]
            p.bios[a] = p.bios[par] if self.diff == 0 else p.bios[par] + " (back)"
            p.home_net[a] = p.home_net[par]
            p.carrier[a] = p.carrier[par]
            if self.diff == 0:
                p.avatars[a] = p.avatars[par]
                p.dev[a] = p.dev[par]
                p.mobile_p[a] = p.mobile_p[par]
        else:
            p.home_net[a] = p.nets.add(sim.rng, 1, "household")
        p.bg_rate[a] = max(float(p.bg_rate[par]), 0.2) if self.parent_group.cohort == "harasser" else 0.05

    def prepare(self, sim: Simulator) -> None:
        a, par, pr = self.members[0], self.parent, sim.prng
        _emit_create(sim, a)
        created = int(sim.pop.created_ms[a])
        fe = sim.pop.followees[sim.pop.indptr[par]: sim.pop.indptr[par + 1]].tolist()
        frac = (0.8, 0.5, 0.3)[self.diff]
        for t in pr.sample(fe, min(len(fe), 50))[: max(1, int(len(fe) * frac))] if fe else []:
            sim.graph(created + pr.randrange(MIN_MS, 3 * HOUR_MS), a, int(t))
        g = self.parent_group
        if isinstance(g, Harasser):
            inner = Harasser.__new__(Harasser)
            inner.members, inner.diff, inner.targets, inner.style = [a], self.diff, g.targets, g.style
            inner.parent, inner.key, inner.start_ms = g, self.key, created
            self.inner = inner
        elif isinstance(g, SpamRing):
            g.members.append(a)
            g.member_start[a] = created + pr.randrange(5 * MIN_MS, 60 * MIN_MS)
            sim.campaigns_extra.setdefault(g.key, []).append(a)

    def step(self, sim: Simulator, h: int, t0: int, t1: int) -> None:
        if self.inner is not None:
            Harasser.step(self.inner, sim, h, t0, t1)  # type: ignore[arg-type]


class Brands(Group):
    """Brand and news accounts posting on a schedule, with links: a benign look-alike of bots."""

    cohort = "benign"

    def __init__(self, sim: Simulator, key: str, members: list[int], diff: int) -> None:
        self.key, self.members, self.diff, self.targets = key, members, diff, []
        taken = set(sim.pop.handles)
        for a in members:
            h, name = textgen.handle_for(sim.prng, "brand")
            while h in taken:
                h += str(sim.prng.randrange(10))
            taken.add(h)
            sim.pop.handles[a], sim.pop.names[a] = h, name
            sim.pop.bios[a] = f"Official account of {name}."
            sim.pop.popularity[a] *= 40
            sim.pop.bg_rate[a] = 0.05
            sim.pop.lookalike.setdefault(a, []).append("brand")
        self.period = {a: sim.prng.choice((30, 60)) * MIN_MS for a in members}
        self.offset = {a: sim.prng.randrange(0, 30) * MIN_MS for a in members}
        sim.lookalikes["brands"] = [sim.pop.ids[a] for a in members]

    def step(self, sim: Simulator, h: int, t0: int, t1: int) -> None:
        pr = sim.prng
        for a in self.members:
            per, off = self.period[a], self.offset[a]
            t = t0 + (off - (t0 - sim.start)) % per
            while t < t1:
                ts = min(t1 - 1, t + pr.randrange(0, 3000))
                sim.post(ts, a, sim.benign_text(), urls=(f"https://{sim.pop.handles[a]}.com/p/{pr.randrange(10**6)}",),
                         tags=(textgen.TOPICS[int(sim.pop.community[a]) % len(textgen.TOPICS)],) if pr.random() < 0.5 else ())
                t += per


class Viral(Group):
    """Organic viral moments: thousands of ordinary accounts post one hashtag and link within minutes."""

    cohort = "benign"

    def __init__(self, sim: Simulator, key: str, members: list[int], diff: int) -> None:
        self.key, self.members, self.diff, self.targets = key, members, diff, []
        dur = sim.end - sim.start
        self.moments = []
        self.share = sim.wp("viral_share", 0.06)
        if sim.world:
            k = int(sim.rng.poisson(sim.world["viral_per_day"] * dur / DAY_MS))
            self.moments = sorted(sim.start + int(sim.prng.uniform(0.0, max(0.0, dur - HOUR_MS))) for _ in range(k))
        for d in range(0 if sim.world else max(1, int(dur / DAY_MS))):
            t = sim.start + d * DAY_MS + int(sim.prng.uniform(10, 22) * HOUR_MS)
            if t < sim.end - HOUR_MS:
                self.moments.append(t)

    def step(self, sim: Simulator, h: int, t0: int, t1: int) -> None:
        pr, p = sim.prng, sim.pop
        for i, t in enumerate(self.moments):
            if not t0 <= t < t1:
                continue
            vid = f"v{i + 1}"
            word = pr.choice(("goal", "eclipse", "verdict", "earthquake", "finale", "launch", "upset"))
            tag = f"{word}{pr.randrange(10, 99)}"
            url = f"https://news{pr.randrange(50)}.example.com/live/{pr.randrange(10**6)}"
            src = int(np.argmax(np.where(sim.is_bad, -1.0, sim.followers)))
            orig = sim.post(t, src, sim.benign_text(), urls=(url,), tags=(tag,))
            k = min(3000, max(20, int(self.share * p.n)))
            cand = sim.rng.choice(p.n, size=min(p.n, k * 2), replace=False)
            members = [int(a) for a in cand if not sim.is_bad[a] and sim.alive(int(a), t)][:k]
            for a in members:
                ts = t + int(min(sim.rng.exponential(15 * MIN_MS), 90 * MIN_MS)) + 1000
                if pr.random() < 0.3 and orig >= 0:
                    sim.engage(ts, a, orig, "repost")
                else:
                    r = pr.random()
                    sim.post(ts, a, sim.benign_text(), urls=(url,) if r < 0.85 else (), tags=(tag,) if r > 0.15 else ())
                p.lookalike.setdefault(a, []).append("viral")
            sim.lookalikes["viral"][vid] = {"hashtag": tag, "url": url, "start": t,
                                             "members": [p.ids[a] for a in members]}


class Heated(Group):
    """Heated arguments between people who know each other: many fast replies, some rude, not abuse."""

    cohort = "benign"

    def __init__(self, sim: Simulator, key: str, members: list[int], diff: int) -> None:
        self.key, self.members, self.diff, self.targets = key, members, diff, []
        dur = sim.end - sim.start
        n = max(1, int(sim.pop.n / 2000 * dur / DAY_MS * sim.wp("heated_per_2k_day", 1.0)))
        self.off_p = sim.wp("heated_offensive_p", 0.12)
        self.times = sorted(sim.start + int(sim.prng.uniform(0.02, 0.95) * dur) for _ in range(n))

    def step(self, sim: Simulator, h: int, t0: int, t1: int) -> None:
        pr, p = sim.prng, sim.pop
        for t in self.times:
            if not t0 <= t < t1:
                continue
            for _ in range(20):
                a = int(sim.rng.integers(0, p.n))
                fe = p.followees[p.indptr[a]: p.indptr[a + 1]]
                if not sim.is_bad[a] and len(fe) and sim.alive(a, t):
                    b = int(pr.choice(fe.tolist()))
                    if not sim.is_bad[b] and sim.alive(b, t):
                        break
            else:
                continue
            pid = sim.post(t, a, sim.benign_text())
            ts = t
            for j in range(pr.randint(8, 25)):
                ts += pr.randrange(20_000, 6 * MIN_MS)
                who = b if j % 2 == 0 else a
                text = sim.text_idx("offensive") if pr.random() < self.off_p else sim.benign_text()
                nxt = sim.post(ts, who, text, reply_to=pid)
                pid = nxt if nxt >= 0 else pid
            for x in (a, b):
                p.lookalike.setdefault(x, []).append("heated")
            sim.lookalikes["heated"].append([p.ids[a], p.ids[b]])


COHORT_CLASSES: dict[str, type[Group]] = {
    "spam_bot": SpamRing,
    "follow_farm": FollowFarm,
    "like_farm": LikeFarm,
    "camouflaged_bot": BotFarm,
    "campaign": Campaign,
    "pile_on": PileOn,
    "report_brigade": ReportBrigade,
}


def setup(sim: Simulator) -> list[Group]:
    """Choose every cohort's accounts and the look-alikes; returns the groups in step order."""
    cfg, rng, pr = sim.cfg, sim.rng, sim.prng
    n = sim.pop.n
    free = [int(x) for x in rng.permutation(n)]
    mix = np.array(cfg.difficulty_mix, float)
    mix = mix / mix.sum()
    sim.campaigns_extra = {}

    def take(k: int) -> list[int]:
        k = min(k, len(free))
        out = free[-k:] if k else []
        del free[len(free) - k:]
        return out

    def diff() -> int:
        return int(rng.choice(3, p=mix))

    groups: list[Group] = []
    counter = 0
    for cohort, cls in COHORT_CLASSES.items():
        total = cfg.cohort_size(cohort)
        lo, hi = GROUP_SIZE[cohort]
        while total > 0:
            size = min(total, pr.randint(lo, hi))
            if total - size < lo // 2:
                size = total
            counter += 1
            members = take(size)
            if not members:
                break
            groups.append(cls(sim, f"k{counter}", members, diff()))
            total -= size
    harassers: list[Harasser] = []
    for _ in range(cfg.cohort_size("harasser")):
        counter += 1
        members = take(1)
        if not members:
            break
        h = Harasser(sim, f"h{counter}", members, diff())
        harassers.append(h)
        groups.append(h)
    # ban evaders: parents are harassers and spam-ring members, suspended early enough to come back
    dur = sim.end - sim.start
    parents: list[tuple[int, Group]] = [(h.members[0], h) for h in harassers]
    parents += [(a, g) for g in groups if isinstance(g, SpamRing) for a in g.members]
    pr.shuffle(parents)
    evaders: list[Evader] = []
    for parent, g in parents[: cfg.cohort_size("ban_evader")]:
        base = g.member_start.get(parent, g.start_ms) if isinstance(g, SpamRing) else sim.start
        latest = sim.end - 8 * HOUR_MS
        if base + HOUR_MS >= latest:
            continue
        susp = int(base + pr.uniform(HOUR_MS, max(HOUR_MS * 1.5, min(0.45 * dur, latest - base - HOUR_MS))))
        members = take(1)
        if not members:
            break
        d = diff()
        counter += 1
        ev = Evader(sim, f"x{counter}", members, d, parent, g)
        created = susp + int(pr.uniform(*((HOUR_MS, 6 * HOUR_MS), (3 * HOUR_MS, 12 * HOUR_MS), (6 * HOUR_MS, 24 * HOUR_MS))[d]))
        ev.setup_identity(sim, min(created, sim.end - 2 * HOUR_MS))
        sim.suspended[parent] = susp
        sim.pop.dead_ms[parent] = susp
        evaders.append(ev)
    groups.extend(evaders)
    # benign look-alikes
    n_brand = max(3, int(sim.wp("brand_share", 0.003) * n))
    groups.append(Brands(sim, "brands", take(n_brand), 0))
    for a in take(max(1, int(sim.wp("power_user_share", 0.015) * n))):
        sim.pop.bg_rate[a] *= sim.wp("power_user_mult", 6)
        sim.pop.profile[a] = 1
        sim.pop.lookalike.setdefault(a, []).append("power_user")
        sim.lookalikes["power_users"].append(sim.pop.ids[a])
    groups.append(Viral(sim, "viral", [], 0))
    groups.append(Heated(sim, "heated", [], 0))
    if sim.world:
        groups.extend(_world_groups(sim, take))
    return groups


def _world_groups(sim: Simulator, take: Any) -> list[Group]:
    """The extra benign archetypes of a drawn world, and adversaries that copy ordinary background activity."""
    w, n, pr = sim.world or {}, sim.pop.n, sim.prng
    out: list[Group] = [
        Newcomers(sim, "newcomers", take(int(round(w["newcomer_share"] * n))), 0),
        Scheduled(sim, "scheduled", take(int(round(w["scheduled_poster_share"] * n))), 0),
        Celebrities(sim, "celebrities", take(max(1, int(round(w["celebrity_share"] * n)))), 0),
    ]
    for i in range(int(sim.rng.poisson(w["fandoms_per_10k"] * n / 10_000))):
        out.append(Fandom(sim, f"fandom{i + 1}", take(min(int(w["fandom_size"]), max(2, n // 20))), 0))
    out.append(Banter(sim, "banter", [], 0))
    benign_rates = sim.pop.bg_rate[[c == "benign" for c in sim.cohort]]
    for a in range(n):
        if sim.cohort[a] != "benign" and pr.random() < w["adversary_copy_benign"]:
            sim.pop.bg_rate[a] = max(float(sim.pop.bg_rate[a]), float(pr.choice(benign_rates.tolist())))
    return out


def _benign_members(sim: Simulator, members: list[int], tag: str) -> None:
    for a in members:
        sim.pop.lookalike.setdefault(a, []).append(tag)
    sim.lookalikes.setdefault(tag, []).extend(sim.pop.ids[a] for a in members)


class Newcomers(Group):
    """Brand-new people who follow many accounts on their first day (onboarding suggestions)."""

    cohort = "benign"

    def __init__(self, sim: Simulator, key: str, members: list[int], diff: int) -> None:
        self.key, self.members, self.diff, self.targets = key, members, diff, []
        dur = sim.end - sim.start
        for a in members:
            _fresh(sim, a, sim.start + int(sim.prng.uniform(0.0, 0.8) * dur), "person")
            if sim.prng.random() < 0.5:
                sim.pop.bios[a] = ""
            if sim.prng.random() < 0.5:
                sim.pop.avatars[a] = "default"
        _benign_members(sim, members, "newcomer")

    def prepare(self, sim: Simulator) -> None:
        pr = sim.prng
        for a in self.members:
            _emit_create(sim, a)
            created = int(sim.pop.created_ms[a])
            k = int(min(300, max(20, pr.lognormvariate(math.log(60), 0.8))))
            targets = sim.acct_sampler.sample(sim.rng, None, k)
            for t in set(targets.tolist()):
                sim.graph(created + int(sim.rng.exponential(2 * HOUR_MS)) + 1000, a, int(t))


class Scheduled(Group):
    """Ordinary people who post on a fixed period (an app, a routine): regular like a bot, not one."""

    cohort = "benign"

    def __init__(self, sim: Simulator, key: str, members: list[int], diff: int) -> None:
        self.key, self.members, self.diff, self.targets = key, members, diff, []
        self.period = {a: sim.prng.randrange(15, 241) * MIN_MS for a in members}
        self.offset = {a: sim.prng.randrange(0, 15) * MIN_MS for a in members}
        _benign_members(sim, members, "scheduled")

    def step(self, sim: Simulator, h: int, t0: int, t1: int) -> None:
        pr = sim.prng
        for a in self.members:
            per, off = self.period[a], self.offset[a]
            t = t0 + (off - (t0 - sim.start)) % per
            while t < t1:
                sim.post(min(t1 - 1, t + pr.randrange(0, 90_000)), a, sim.benign_text())
                t += per


class Celebrities(Group):
    """News and celebrity accounts: very popular, and every post draws a fast fan-in of replies."""

    cohort = "benign"

    def __init__(self, sim: Simulator, key: str, members: list[int], diff: int) -> None:
        self.key, self.members, self.diff, self.targets = key, members, diff, []
        for a in members:
            sim.pop.popularity[a] *= sim.prng.uniform(50, 500)
            sim.pop.bg_rate[a] = max(float(sim.pop.bg_rate[a]), 0.5)
        self.fan_in = (sim.world or {}).get("celebrity_fan_in", 30.0)
        _benign_members(sim, members, "celebrity")

    def step(self, sim: Simulator, h: int, t0: int, t1: int) -> None:
        pr, p = sim.prng, sim.pop
        for a in self.members:
            for _ in range(int(sim.rng.poisson(0.4))):
                t = t0 + pr.randrange(HOUR_MS)
                pid = sim.post(t, a, sim.benign_text(), urls=(f"https://news{pr.randrange(50)}.example.com/s/"
                                                           f"{pr.randrange(10**6)}",) if pr.random() < 0.5 else ())
                if pid < 0:
                    continue
                fans = sim.rng.integers(0, p.n, int(sim.rng.poisson(self.fan_in)))
                for f in fans.tolist():
                    if sim.is_bad[f] or f == a:
                        continue
                    ts = t + int(min(sim.rng.exponential(10 * MIN_MS), 55 * MIN_MS)) + 1000
                    text: int | str = sim.text_idx("offensive") if pr.random() < 0.03 else sim.benign_text()
                    sim.post(ts, f, text, reply_to=pid)


class Fandom(Group):
    """A fan community posting near-identical texts (stream the single, vote, trend the tag) together."""

    cohort = "benign"

    def __init__(self, sim: Simulator, key: str, members: list[int], diff: int) -> None:
        self.key, self.members, self.diff, self.targets = key, members, diff, []
        pr = sim.prng
        idol = pr.choice(textgen.FIRST) + pr.choice(("", "_official", "band", "tv"))
        self.tag = f"{idol}{pr.choice(('day', 'comeback', 'vote', 'stream', 'forever'))}"
        base = (f"stream the new {idol} single now", f"vote for {idol} today", f"{idol} deserves this win",
                f"we love you {idol}", f"happy {idol} day everyone")
        self.texts = [sim_js(f"{pr.choice(base)} {'!' * pr.randint(0, 3)} {pr.choice(('💜', '✨', '🔥', ''))}")
                      for _ in range(12)]
        comm = int(sim.pop.community[members[0]]) if members else 0
        for a in members:
            sim.pop.community[a] = comm
        dur = sim.end - sim.start
        self.waves = sorted(sim.start + int(pr.uniform(0.0, 0.95) * dur)
                            for _ in range(max(1, int(dur / DAY_MS * pr.uniform(1, 4)))))
        _benign_members(sim, members, "fandom")
        sim.lookalikes.setdefault("fandoms", {})[key] = {"hashtag": self.tag, "members": [sim.pop.ids[a] for a in members]}

    def step(self, sim: Simulator, h: int, t0: int, t1: int) -> None:
        pr = sim.prng
        for w in self.waves:
            if not t0 <= w < t1:
                continue
            for a in self.members:
                if pr.random() < 0.7:
                    ts = w + int(min(sim.rng.exponential(20 * MIN_MS), 3 * HOUR_MS))
                    sim.post(ts, a, pr.choice(self.texts), tags=(self.tag,) if pr.random() < 0.8 else ())


class Banter(Group):
    """Friends trading profanity and reclaimed slurs: offensive-pool words, not abuse (no target harmed)."""

    cohort = "benign"

    def __init__(self, sim: Simulator, key: str, members: list[int], diff: int) -> None:
        self.key, self.members, self.diff, self.targets = key, members, diff, []
        self.pairs: list[tuple[int, int]] = []
        self.rate = 0.3

    def prepare(self, sim: Simulator) -> None:
        p = sim.pop
        n_pairs = int(round((sim.world or {}).get("banter_pairs_per_1k", 0.0) * p.n / 1000))
        for a in sim.rng.integers(0, p.n, n_pairs * 3).tolist():
            if len(self.pairs) >= n_pairs:
                break
            cands = [int(b) for b in p.followees[p.indptr[a]: p.indptr[a + 1]].tolist() if not sim.is_bad[b]]
            if sim.is_bad[a] or not cands:
                continue
            self.pairs.append((a, sim.prng.choice(cands)))
        for a, b in self.pairs:
            for x in (a, b):
                sim.pop.lookalike.setdefault(x, []).append("banter")
        sim.lookalikes["banter"] = [[sim.pop.ids[a], sim.pop.ids[b]] for a, b in self.pairs]

    def step(self, sim: Simulator, h: int, t0: int, t1: int) -> None:
        pr = sim.prng
        for a, b in self.pairs:
            if sim.rng.random() > self.rate:
                continue
            t = t0 + pr.randrange(HOUR_MS)
            pid = sim.post(t, a, sim.benign_text())
            for j in range(pr.randint(2, 8)):
                t += pr.randrange(30_000, 10 * MIN_MS)
                who = b if j % 2 == 0 else a
                text: int | str = sim.text_idx("offensive") if pr.random() < 0.5 else sim.benign_text()
                # label "": the words are in the offensive pool, the exchange is friendly (not abusive truth)
                nxt = sim.post(t, who, text, reply_to=pid, label="")
                pid = nxt if nxt >= 0 else pid


def schedule_enforcement(sim: Simulator) -> None:
    """Late platform suspensions with misses; evaders' parents were scheduled in :func:`setup`."""
    pr = sim.prng
    for g in sim.groups:
        if g.kind:
            sim.campaigns[g.key] = g.truth(sim)
        if g.cohort == "benign":
            continue
        for a in g.members:
            if a in sim.suspended:
                continue
            d = DIFFS.index(sim.difficulty.get(a, "moderate"))
            p_detect = (0.6, 0.3, 0.08)[d] * (0.3 if g.cohort == "report_brigade" else 1.0)
            if pr.random() > p_detect:
                continue
            base = max(int(sim.pop.created_ms[a]), g.start_ms, sim.start)
            delay = pr.lognormvariate(math.log((6, 18, 40)[d] * HOUR_MS), 0.5)
            susp = int(base + delay)
            if susp < sim.end:
                sim.suspended[a] = susp
                sim.pop.dead_ms[a] = susp
    for key, extra in sim.campaigns_extra.items():
        if key in sim.campaigns:
            sim.campaigns[key]["members"].extend(sim.pop.ids[a] for a in extra)
    for a, ts in sim.suspended.items():
        reason = SUSPEND_REASON.get(sim.cohort[a], "terms of service")
        if sim.cohort[a] == "ban_evader":
            reason = "ban evasion"
        elif a in {e.parent for e in sim.groups if isinstance(e, Evader)}:
            reason = SUSPEND_REASON.get(sim.cohort[a], "abuse")
        sim.emit(ts, a, "account.status", f',"status":"suspended","by":"platform","reason":"{reason}"')
