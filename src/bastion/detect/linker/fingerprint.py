"""Per-account behaviour profiles (kept for every account, since anyone may be suspended later) and the frozen
fingerprint of a suspended account or of a young account being checked.

Both are msgspec structs so they persist in ``state.kv`` as msgpack bytes and survive a restart.
"""

from __future__ import annotations

import math

import msgspec

from bastion.detect.linker.text import FUNCTION_WORDS, STYLE_DIM, domain_of, link_of, style_counts
from bastion.events.model import AnyEvent, GraphFollow, MessageSend, PostCreate
from bastion.state.apply import ip_network
from bastion.state.model import Account
from bastion.state.protocols import State

MAX_TARGETS = 64
MAX_TAGS = 48
MAX_DOMAINS = 24
MAX_LINKS = 24
MAX_FIRST_FOLLOWS = 50
MAX_NEIGHBOURS = 300
VECTOR_DIM = STYLE_DIM + len(FUNCTION_WORDS) + 24


class Profile(msgspec.Struct, array_like=True, omit_defaults=True):
    """What the linker learns from an account's own actions (targets, tags, links, writing)."""

    targets: dict[str, int] = {}
    hashtags: dict[str, int] = {}
    domains: dict[str, int] = {}
    style: list[int] = msgspec.field(default_factory=lambda: [0] * STYLE_DIM)
    fw: list[int] = msgspec.field(default_factory=lambda: [0] * len(FUNCTION_WORDS))
    n_texts: int = 0
    n_words: int = 0
    first_follows: list[str] = []
    created: bool = False        # seen its account.create: a young account the linker watches
    actions: int = 0             # actions since creation
    scored: int = 0
    best_parent: str = ""
    best_score: float = 0.0
    links: dict[str, int] = {}   # whole links (host and path): a spam ring's own short links


def _bump(d: dict[str, int], key: str, cap: int) -> None:
    if key in d:
        d[key] += 1
    elif len(d) < cap:
        d[key] = 1


def observe(profile: Profile, event: AnyEvent) -> bool:
    """Fold one event into ``profile``; True when something changed that the fingerprint uses."""
    changed = False
    text = None
    if isinstance(event, PostCreate):
        body = event.post
        text = body.text
        for t in (body.reply_to_author, body.quote_of_author, *body.mentions):
            if t and t != event.actor:
                _bump(profile.targets, t, MAX_TARGETS)
                changed = True
        for tag in body.hashtags:
            _bump(profile.hashtags, tag.lower().lstrip("#"), MAX_TAGS)
            changed = True
        for url in body.urls:
            _bump(profile.domains, domain_of(url), MAX_DOMAINS)
            _bump(profile.links, link_of(url), MAX_LINKS)
            changed = True
    elif isinstance(event, MessageSend):
        text = event.text
        _bump(profile.targets, event.recipient, MAX_TARGETS)
        for url in event.urls:
            _bump(profile.domains, domain_of(url), MAX_DOMAINS)
            _bump(profile.links, link_of(url), MAX_LINKS)
        changed = True
    elif (isinstance(event, GraphFollow) and len(profile.first_follows) < MAX_FIRST_FOLLOWS
          and event.target not in profile.first_follows):
        profile.first_follows.append(event.target)
        changed = True
    if text:
        grams, fw, n = style_counts(text)
        profile.style = [a + b for a, b in zip(profile.style, grams, strict=True)]
        profile.fw = [a + b for a, b in zip(profile.fw, fw, strict=True)]
        profile.n_texts += 1
        profile.n_words += n
        changed = True
    return changed


class Fingerprint(msgspec.Struct, array_like=True, omit_defaults=True):
    """Everything the pair scorer compares, for one account at one moment."""

    id: str
    handle: str = ""
    name: str = ""
    bio: str = ""
    avatar: str = ""
    email_domain: str = ""
    devices: list[str] = []
    ips: list[str] = []
    nets: list[str] = []
    follows: list[str] = []
    followers: list[str] = []
    first_follows: list[str] = []
    targets: list[str] = []
    hashtags: list[str] = []
    domains: list[str] = []
    style: list[int] = []
    fw: list[int] = []
    hours: list[int] = []
    n_texts: int = 0
    n_words: int = 0
    created_ms: int = 0
    suspended_ms: int = 0
    reason: str = ""
    reports: int = 0
    posts: int = 0
    actions: int = 0
    links: list[str] = []


def build(state: State, acc: Account, profile: Profile | None, event: AnyEvent | None = None) -> Fingerprint:
    """The fingerprint of ``acc`` from state (as before ``event``) plus ``event`` itself, if given."""
    prof = profile or Profile()
    devices, ips = list(acc.devices), list(acc.ips)
    handle, name, bio, avatar, email = acc.handle, acc.display_name, acc.bio, acc.avatar, acc.email_domain
    follows = state.graph.out("follow", acc.id)
    hours = list(acc.activity.hours)
    if event is not None:
        if event.ctx is not None:
            if event.ctx.ip and event.ctx.ip not in ips:
                ips.append(event.ctx.ip)
            if event.ctx.device and event.ctx.device not in devices:
                devices.append(event.ctx.device)
        p = getattr(event, "profile", None)
        if p is not None:
            handle = p.handle or handle
            name = p.display_name or name
            bio = p.bio or bio
            avatar = p.avatar or avatar
            email = p.email_domain or email
        if isinstance(event, GraphFollow):
            follows = follows | {event.target}
        hours[(event.ts_ms // 3_600_000) % 24] += 1
    followers = state.graph.into("follow", acc.id)
    return Fingerprint(
        id=acc.id, handle=handle or "", name=name or "", bio=bio or "", avatar=avatar or "",
        email_domain=(email or "").lower(), devices=devices, ips=ips,
        nets=sorted({ip_network(ip) for ip in ips}),
        follows=sorted(follows)[:MAX_NEIGHBOURS], followers=sorted(followers)[:MAX_NEIGHBOURS],
        first_follows=list(prof.first_follows), targets=sorted(prof.targets, key=lambda t: -prof.targets[t]),
        hashtags=sorted(prof.hashtags), domains=sorted(prof.domains), style=list(prof.style), fw=list(prof.fw),
        hours=hours, n_texts=prof.n_texts, n_words=prof.n_words, created_ms=acc.created_ms or acc.first_seen_ms,
        suspended_ms=acc.status_ms or 0 if acc.status == "suspended" else 0, reason=acc.status_reason or "",
        reports=acc.reports_received, posts=acc.posts, actions=prof.actions, links=sorted(prof.links),
    )


def _unit(xs: list[float]) -> list[float]:
    n = math.sqrt(sum(x * x for x in xs))
    return [x / n for x in xs] if n > 0 else xs


def vector(fp: Fingerprint) -> list[float]:
    """The style-and-behaviour vector for nearest-neighbour retrieval (unit blocks, then unit overall)."""
    style = _unit([math.sqrt(x) for x in fp.style]) if fp.style else [0.0] * STYLE_DIM
    n = max(fp.n_words, 1)
    fw = _unit([x / n for x in fp.fw]) if fp.fw else [0.0] * len(FUNCTION_WORDS)
    hours = _unit([float(x) for x in fp.hours]) if fp.hours else [0.0] * 24
    out = [x * 0.75 for x in style] + [x * 0.45 for x in fw] + [x * 0.5 for x in hours]
    return _unit(out)
