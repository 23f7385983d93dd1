"""Randomized worlds: the simulator's own parameters drawn from wide priors, seeded by a world number.

``bastion sim --world N`` first draws every parameter in :data:`PRIORS` from a generator seeded by ``N`` alone,
then draws the population with those parameters (the population seed is ``N`` too, unless ``--seed`` says
otherwise). The drawn values are written into ``truth.json`` (``world``). Without ``--world`` the simulator is
the default world, byte for byte as before.

The cross-world protocol splits world numbers into disjoint ranges: training and tuning worlds
(:data:`TRAIN_WORLDS`, their texts from the train split of every corpus) and test worlds (:data:`TEST_WORLDS`,
texts from the test split only) that no tuning choice may see. ``bastion eval --worlds`` reports per-world
figures and the worst world.

>>> draw_world(1001) == draw_world(1001)
True
>>> world_split(1001), world_split(7)
('test', 'train')
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# (distribution, low, high, what it sets). uniform / loguniform draw a float, int draws an integer in [low, high].
PRIORS: dict[str, tuple[str, float, float, str]] = {
    # ---- benign activity and archetypes
    "activity_median_daily": ("loguniform", 6.0, 40.0, "median background events per account per day"),
    "activity_sigma": ("uniform", 0.7, 1.6, "log-normal spread of per-account activity"),
    "lurker_share": ("uniform", 0.05, 0.45, "accounts with 3% of the usual activity"),
    "heavy_liker_share": ("uniform", 0.01, 0.12, "accounts whose background is mostly likes, at 3-10x the rate"),
    "heavy_liker_like_p": ("uniform", 0.6, 0.95, "share of a heavy liker's background events that are likes"),
    "empty_bio_share": ("uniform", 0.0, 0.4, "benign accounts with an empty bio"),
    "digit_handle_share": ("uniform", 0.0, 0.45, "benign handles rewritten as name plus 4-8 digits"),
    "default_avatar_share": ("uniform", 0.0, 0.35, "benign accounts with the default avatar"),
    "newcomer_share": ("uniform", 0.0, 0.03, "benign accounts created during the run that follow 20-300 "
                                             "accounts on day one"),
    "night_shift_share": ("uniform", 0.0, 0.12, "benign accounts active at night (rhythm shifted 12 hours)"),
    "scheduled_poster_share": ("uniform", 0.0, 0.02, "benign people posting on a fixed period (15-240 min)"),
    "celebrity_share": ("loguniform", 0.0003, 0.003, "news and celebrity accounts (popularity x50-500)"),
    "celebrity_fan_in": ("loguniform", 10.0, 150.0, "mean replies each celebrity post draws within the hour"),
    "fandoms_per_10k": ("uniform", 0.0, 8.0, "fan communities posting near-identical texts"),
    "fandom_size": ("int", 15, 120, "members of each fan community"),
    "viral_per_day": ("uniform", 0.3, 4.0, "organic viral moments per day"),
    "viral_share": ("uniform", 0.01, 0.12, "share of users joining each viral moment"),
    "heated_per_2k_day": ("uniform", 0.3, 4.0, "heated legitimate arguments per 2,000 users per day"),
    "heated_offensive_p": ("uniform", 0.05, 0.35, "share of rude (offensive-pool) replies in an argument"),
    "banter_pairs_per_1k": ("uniform", 0.0, 6.0, "friend pairs trading profanity and reclaimed slurs, not abuse"),
    "power_user_share": ("uniform", 0.005, 0.04, "power users at regular working hours"),
    "power_user_mult": ("uniform", 3.0, 10.0, "power users' activity multiplier"),
    "brand_share": ("loguniform", 0.001, 0.01, "brand and news accounts posting links on a schedule"),
    "offensive_base_p": ("loguniform", 0.004, 0.03, "ordinary users' share of offensive-pool posts"),
    "common_name_share": ("uniform", 0.0, 0.06, "accounts named after a handful of common names"),
    # ---- shared infrastructure
    "household_p": ("uniform", 0.35, 0.75, "household size is geometric(p), capped at 6 (smaller p: bigger homes)"),
    "shared_device_share": ("uniform", 0.0, 0.08, "household members who share a device with another member"),
    "worker_share": ("uniform", 0.15, 0.55, "accounts on an office network part of the time"),
    "users_per_office": ("loguniform", 15.0, 120.0, "users per office network (heavy-tailed office sizes)"),
    "student_share": ("uniform", 0.02, 0.2, "non-workers on a campus network"),
    "users_per_campus": ("loguniform", 1500.0, 8000.0, "users per campus network"),
    "carriers": ("int", 2, 8, "mobile carriers"),
    "users_per_carrier_ip": ("loguniform", 40.0, 500.0, "users per carrier NAT address (CGNAT sharing)"),
    "mobile_beta_a": ("uniform", 0.8, 4.0, "Beta(a, 2) share of an account's events on mobile"),
    "vpn_share": ("uniform", 0.0, 0.12, "benign accounts whose home traffic leaves through a VPN exit"),
    "vpn_exits": ("int", 3, 30, "VPN exit addresses (datacenter ranges)"),
    "mean_degree": ("loguniform", 8.0, 35.0, "mean follow out-degree"),
    "local_follow_p": ("uniform", 0.55, 0.95, "share of follows inside one's community"),
    "tz_skew": ("uniform", 0.0, 1.5, "log-normal noise on the time-zone weights (0: the default mix)"),
    # ---- adversaries
    "bad_scale": ("loguniform", 0.4, 2.5, "multiplies every default adversary cohort size"),
    "cohort_spread": ("uniform", 0.0, 1.2, "log-normal spread of each cohort's own size multiplier"),
    "difficulty_concentration": ("loguniform", 0.5, 5.0, "Dirichlet concentration around the obvious, moderate, "
                                                          "stealthy mix"),
    "adversary_rate_mult": ("loguniform", 0.4, 2.5, "spam and harassment activity multiplier"),
    "adversary_start_max": ("uniform", 0.2, 0.8, "latest campaign start (share of the run)"),
    "bot_profile_p": ("uniform", 0.1, 1.0, "obvious bots with bot-style profiles (else ordinary-looking)"),
    "stealth_benign_post_p": ("uniform", 0.2, 0.8, "stealthy spammers' share of ordinary posts (camouflage)"),
    "adversary_copy_benign": ("uniform", 0.0, 1.0, "adversaries given ordinary background activity "
                                                  "(copying benign behaviour)"),
    "harasser_hate_p": ("uniform", 0.1, 0.6, "harassers' abusive texts that come from the hate pool"),
    # ---- text and reply trees
    "whole_text_p": ("uniform", 0.0, 0.6, "benign posts that are one whole dataset text (else two spliced halves)"),
    "reply_share_mult": ("loguniform", 0.4, 2.5, "multiplies the share of replies in the background"),
    "like_share_mult": ("loguniform", 0.5, 2.0, "multiplies the share of likes in the background"),
    "reply_network_p": ("uniform", 0.3, 0.9, "replies to a followee's post (else the feed)"),
    "reply_to_root_p": ("uniform", 0.0, 0.8, "replies to a thread's root rather than its latest post (flat trees)"),
}

TRAIN_WORLDS = range(1, 1000)
"""Training and tuning worlds (texts from the train split)."""
TEST_WORLDS = range(1001, 2000)
"""Test worlds: no training or tuning choice may see them (texts from the test split)."""
STANDARD_TEST_WORLDS = range(1001, 1011)
"""The ten test worlds every cross-world figure is reported on."""


def world_split(world: int) -> str:
    """``train`` for a training world, ``test`` for a test world; other numbers are refused."""
    if world in TRAIN_WORLDS:
        return "train"
    if world in TEST_WORLDS:
        return "test"
    raise ValueError(f"world {world} is in neither range: training 1-999, test 1001-1999")


def draw_world(world: int) -> dict[str, Any]:
    """The parameters of world ``world``, drawn from :data:`PRIORS` by a generator seeded by the number alone."""
    if world < 1:
        raise ValueError("world numbers start at 1")
    rng = np.random.default_rng([16, int(world)])
    out: dict[str, Any] = {}
    for name, (dist, lo, hi, _) in PRIORS.items():
        if dist == "uniform":
            out[name] = float(rng.uniform(lo, hi))
        elif dist == "loguniform":
            out[name] = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        elif dist == "int":
            out[name] = int(rng.integers(int(lo), int(hi) + 1))
        else:  # pragma: no cover - the table is fixed
            raise ValueError(dist)
    base = np.array([0.4, 0.35, 0.25])
    out["difficulty_mix"] = [float(x) for x in rng.dirichlet(base * out["difficulty_concentration"] * 3)]
    from bastion.sim.engine import DEFAULT_COHORTS

    out["cohort_mult"] = {c: float(math.exp(rng.normal(0.0, out["cohort_spread"]))) for c in DEFAULT_COHORTS}
    out["tz_noise"] = [float(x) for x in rng.lognormal(0.0, max(out["tz_skew"], 1e-9), 15)]
    return out


def cohort_sizes(params: dict[str, Any], users: int) -> dict[str, int]:
    """Adversary accounts per cohort in a world of ``users`` accounts."""
    from bastion.sim.engine import DEFAULT_COHORTS

    return {c: int(round(rate * users * params["bad_scale"] * params["cohort_mult"][c]))
            for c, rate in DEFAULT_COHORTS.items()}


def priors_markdown() -> str:
    """The prior table as markdown (docs/simulator.md carries it)."""
    rows = ["| parameter | prior | range | what it sets |", "|---|---|---|---|"]
    for name, (dist, lo, hi, doc) in PRIORS.items():
        rng_txt = f"{int(lo)}-{int(hi)}" if dist == "int" else f"{lo:g}-{hi:g}"
        rows.append(f"| `{name}` | {dist} | {rng_txt} | {doc} |")
    return "\n".join(rows)
