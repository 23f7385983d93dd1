"""Pair similarities between a young account and a suspended one (the model's features) and the readable
evidence lines shown to reviewers.

Identifier matches are weighted by popularity: an IP, network, device or avatar used by many accounts (a
carrier NAT, a campus, a default avatar) contributes almost nothing, so it links no strangers. So are shared
follows: following accounts that a large share of the platform follows is weak evidence, so
``follow_overlap_weighted`` weights each followed account by its inverse global popularity
(:func:`~bastion.detect.linker.text.idf` over its followers). The neighbourhood join that retrieves candidates
(:meth:`~bastion.detect.linker.index.OffenderIndex.neighbour_join`) weights shared follows and targets the same
way, so it no longer turns two follows of popular accounts, or replies to a pile-on's victim, into a
retrieval channel (``nbr_hit``) of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from bastion.detect.linker.fingerprint import Fingerprint
from bastion.detect.linker.text import (
    cosine,
    digit_template,
    handle_similarity,
    handle_stem,
    idf,
    jaccard,
    normalise_name,
    tokens,
)

Popularity = Callable[[str, str], int]   # (kind, value) -> number of accounts seen with it

FEATURES = (
    "dev_shared", "dev_weight", "ip_shared", "ip_weight", "net_shared", "net_weight", "avatar_weight",
    "email_weight", "handle_sim", "handle_stem_same", "handle_template_same", "name_same", "name_weight",
    "name_jaccard", "bio_same", "bio_jaccard", "follow_overlap", "follow_overlap_weighted", "follow_common",
    "first_follow_overlap", "follows_parent_followers", "target_overlap", "target_common", "hashtag_jaccard",
    "domain_jaccard", "domain_common", "style_cos", "fw_cos", "hours_cos", "child_texts", "parent_texts",
    "child_follows", "hours_since_suspension", "child_actions", "has_ctx", "n_channels", "ann_hit", "nbr_hit",
    "link_jaccard", "link_common", "created_after_suspension",
)


def _weight(shared: list[str], kind: str, pop: Popularity) -> tuple[int, float]:
    """(how many shared, the strongest popularity weight 1/accounts among them)."""
    if not shared:
        return 0, 0.0
    return len(shared), max(1.0 / max(pop(kind, v), 1) for v in shared)


def features(child: Fingerprint, parent: Fingerprint, now_ms: int, pop: Popularity,
             followers_of: Callable[[str], int], channels: set[str] | None = None,
             n_accounts: int = 0) -> list[float]:
    """One row of :data:`FEATURES`. ``followers_of``: how many accounts follow an account; ``n_accounts``: the
    platform's size, for the inverse global popularity (idf) weights of shared follows in
    ``follow_overlap_weighted`` (0: the older 1 / log(2 + followers) weights)."""
    dev_n, dev_w = _weight([d for d in child.devices if d in parent.devices], "device", pop)
    ip_n, ip_w = _weight([i for i in child.ips if i in parent.ips], "ip", pop)
    net_n, net_w = _weight([n for n in child.nets if n in parent.nets], "ip_net", pop)
    avatar_w = 1.0 / max(pop("avatar", child.avatar), 1) if child.avatar and child.avatar == parent.avatar \
        and child.avatar != "default" else 0.0
    email_w = 1.0 / max(pop("email_domain", child.email_domain), 1) if child.email_domain and \
        child.email_domain == parent.email_domain else 0.0
    c_stem, p_stem = handle_stem(child.handle), handle_stem(parent.handle)
    c_name, p_name = normalise_name(child.name), normalise_name(parent.name)
    name_same = float(bool(c_name) and c_name == p_name)
    name_w = 1.0 / max(pop("name", c_name), 1) if name_same else 0.0
    c_bio, p_bio = child.bio.strip().lower(), parent.bio.strip().lower()
    c_follows = set(child.follows) | set(child.first_follows)
    p_follows = set(parent.follows) | set(parent.first_follows)
    common = c_follows & p_follows
    if c_follows:
        if n_accounts >= 2:
            f_idf = {x: idf(followers_of(x), n_accounts) for x in c_follows}
        else:
            f_idf = {x: 1.0 / math.log(2 + followers_of(x)) for x in c_follows}
        w_all = sum(f_idf.values())
        w_common = sum(f_idf[x] for x in common)
        follow_w = w_common / w_all if w_all else 0.0
    else:
        follow_w = 0.0
    first = child.first_follows
    first_overlap = sum(1 for x in first if x in p_follows) / len(first) if first else 0.0
    p_followers = set(parent.followers)
    into_followers = sum(1 for x in c_follows if x in p_followers) / len(c_follows) if c_follows else 0.0
    c_targets, p_targets = set(child.targets), set(parent.targets)
    t_common = c_targets & p_targets
    c_dom, p_dom = set(child.domains), set(parent.domains)
    hours_since = (now_ms - parent.suspended_ms) / 3_600_000 if parent.suspended_ms else -1.0
    # a returning account is made after the ban: 1, or 0 for an account older than the suspension (a ring mate
    # or a namesake who was already there), 0.5 when either time is unknown
    c_created = child.created_ms or now_ms
    after = 0.5 if not parent.suspended_ms or not c_created else float(c_created >= parent.suspended_ms)
    chans = channels or set()
    return [
        float(dev_n), dev_w, float(ip_n), ip_w, float(net_n), net_w, avatar_w, email_w,
        handle_similarity(child.handle, parent.handle), float(bool(c_stem) and c_stem == p_stem),
        float(bool(child.handle) and digit_template(child.handle) == digit_template(parent.handle)),
        name_same, name_w, jaccard(c_name.split(), p_name.split()), float(bool(c_bio) and c_bio == p_bio),
        jaccard(tokens(c_bio), tokens(p_bio)),
        len(common) / len(c_follows) if c_follows else 0.0, follow_w, float(len(common)), first_overlap,
        into_followers, len(t_common) / len(c_targets) if c_targets else 0.0, float(len(t_common)),
        jaccard(child.hashtags, parent.hashtags), jaccard(c_dom, p_dom), float(len(c_dom & p_dom)),
        cosine(child.style, parent.style) if child.n_texts and parent.n_texts else 0.0,
        cosine(child.fw, parent.fw) if child.n_words and parent.n_words else 0.0,
        cosine(child.hours, parent.hours), float(child.n_texts), float(parent.n_texts), float(len(c_follows)),
        hours_since, float(child.actions), float(bool(child.ips or child.devices)), float(len(chans)),
        float("ann" in chans), float("nbr" in chans),
        jaccard(child.links, parent.links), float(len(set(child.links) & set(parent.links))), after,
    ]


def ago(ms: int) -> str:
    """``3 days ago``, ``5 hours ago``, ``12 minutes ago``."""
    s = max(0, ms) / 1000
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size:
            n = int(s // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def evidence_lines(child: Fingerprint, parent: Fingerprint, row: list[float], now_ms: int,
                   pop: Popularity, limit: int = 5) -> list[str]:
    """The strongest readable reasons, most telling first."""
    f = dict(zip(FEATURES, row, strict=True))
    pid = parent.id
    when = f" (suspended {ago(now_ms - parent.suspended_ms)})" if parent.suspended_ms else ""
    lines: list[tuple[float, str]] = []
    shared_dev = [d for d in child.devices if d in parent.devices]
    if shared_dev and f["dev_weight"] >= 0.05:
        lines.append((10 + f["dev_weight"], f"same device as {pid}{when}"))
    shared_ip = [i for i in child.ips if i in parent.ips]
    if shared_ip and f["ip_weight"] >= 0.05:
        n = pop("ip", shared_ip[0])
        lines.append((8 + f["ip_weight"], f"same IP address {shared_ip[0]} as {pid} (used by {n} accounts)"))
    shared_net = [n for n in child.nets if n in parent.nets]
    if shared_net and not shared_ip and f["net_weight"] >= 0.05:
        n = pop("ip_net", shared_net[0])
        lines.append((6 + f["net_weight"], f"same network {shared_net[0]} as {pid} (used by {n} accounts)"))
    if f["avatar_weight"] >= 0.05:
        lines.append((7, f"same avatar as {pid}"))
    if f["handle_sim"] >= 0.6 and child.handle != parent.handle:
        lines.append((5 + f["handle_sim"], f"handle {child.handle} close to {parent.handle}"))
    if f["name_same"]:
        n = pop("name", normalise_name(child.name))
        lines.append((4 + f["name_weight"], f"same display name '{child.name}' as {pid}"
                      + (f" ({n} accounts use it)" if n > 1 else "")))
    if f["bio_same"]:
        lines.append((4.5, f"same bio as {pid}"))
    elif f["bio_jaccard"] >= 0.5:
        lines.append((3.5, f"bio {round(100 * f['bio_jaccard'])}% the same words as {pid}'s"))
    if f["target_common"]:
        common = [t for t in child.targets if t in set(parent.targets)]
        lines.append((6 + f["target_overlap"], f"{round(100 * f['target_overlap'])}% of the accounts it replied "
                      f"to or mentioned were {pid}'s targets ({', '.join(common[:3])})"))
    if f["follow_common"] >= 2:
        first = child.first_follows or child.follows
        p_follows = set(parent.follows) | set(parent.first_follows)
        k = sum(1 for x in first if x in p_follows)
        if k:
            lines.append((5 + f["follow_overlap"], f"{round(100 * k / len(first))}% of first follows "
                          f"({k} of {len(first)}) were accounts {pid} followed"))
    if f["follows_parent_followers"] >= 0.2:
        lines.append((3, f"{round(100 * f['follows_parent_followers'])}% of its follows were {pid}'s followers"))
    if f["domain_common"]:
        common_d = sorted(set(child.domains) & set(parent.domains))
        lines.append((3 + f["domain_jaccard"], f"links to the same sites as {pid} ({', '.join(common_d[:3])})"))
    if f["link_common"]:
        common_l = sorted(set(child.links) & set(parent.links))
        lines.append((4 + f["link_jaccard"], f"posted the same links as {pid} ({', '.join(common_l[:2])})"))
    if f["hashtag_jaccard"] >= 0.2:
        lines.append((2.5, f"uses the same hashtags as {pid} ({', '.join(sorted(set(child.hashtags) & set(parent.hashtags))[:3])})"))
    if f["style_cos"] >= 0.9 and child.n_texts >= 2:
        lines.append((2 + f["style_cos"], f"writing style like {pid}'s (similarity {f['style_cos']:.2f})"))
    if f["hours_cos"] >= 0.85 and sum(child.hours) >= 3:
        lines.append((1, f"active at the same hours as {pid}"))
    lines.sort(key=lambda x: -x[0])
    return [s for _, s in lines[:limit]]
