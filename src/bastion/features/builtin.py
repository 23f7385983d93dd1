"""Built-in features of the event, its actor, its target and their relationship.

Names are ``entity.feature``; every feature has a type and a doc string (``bastion rules features`` lists
them). They are computed only when something asks, at most once per event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bastion.events.model import (
    AccountCreate,
    AccountStatus,
    GenericEvent,
    GraphBlock,
    GraphFollow,
    GraphMute,
    GraphUnblock,
    GraphUnfollow,
    MessageSend,
    PostCreate,
    PostDelete,
    PostEngage,
    ReportCreate,
)
from bastion.features.registry import FeatureRegistry
from bastion.state.apply import ip_network, text_hash
from bastion.state.model import Account, Post

if TYPE_CHECKING:
    from bastion.engine import EvalContext

NEW_ACCOUNT_MS = 86_400_000


def target_id(ctx: EvalContext) -> str | None:
    """The account an event is aimed at: followed/blocked account, replied-to or quoted author, first
    mention, message recipient, engaged post's author, reported account (or reported post's author)."""
    ev = ctx.event
    if isinstance(ev, (GraphFollow, GraphUnfollow, GraphBlock, GraphUnblock, GraphMute)):
        return ev.target
    if isinstance(ev, PostCreate):
        p = ev.post
        return p.reply_to_author or p.quote_of_author or (p.mentions[0] if p.mentions else None)
    if isinstance(ev, MessageSend):
        return ev.recipient
    if isinstance(ev, PostEngage):
        if ev.post.author:
            return ev.post.author
        post = ctx.state.posts.get(ev.post.id)
        return post.author if post else None
    if isinstance(ev, ReportCreate):
        if ev.subject.kind == "account":
            return ev.subject.id
        post = ctx.state.posts.get(ev.subject.id)
        return post.author if post else None
    return None


def target_account(ctx: EvalContext) -> Account | None:
    return ctx.cached("_target_account", lambda: _lookup(ctx, target_id(ctx)))  # type: ignore[no-any-return]


def _lookup(ctx: EvalContext, account_id: str | None) -> Account | None:
    return ctx.state.accounts.get(account_id) if account_id else None


def event_text(ctx: EvalContext) -> str:
    ev = ctx.event
    if isinstance(ev, PostCreate):
        return ev.post.text or ""
    if isinstance(ev, (MessageSend, ReportCreate)):
        return ev.text or ""
    if isinstance(ev, AccountCreate):
        return ev.profile.bio or ""
    return ""


def event_urls(ctx: EvalContext) -> list[str]:
    ev = ctx.event
    if isinstance(ev, PostCreate):
        return ev.post.urls
    if isinstance(ev, MessageSend):
        return ev.urls
    return []


def domain_of(url: str) -> str:
    """The host of a URL, lower-cased, without ``www.`` (``"https://WWW.Example.com/x"`` -> ``example.com``)."""
    try:
        host = urlsplit(url if "//" in url else "//" + url).hostname or ""
    except ValueError:
        return ""
    return host[4:] if host.startswith("www.") else host


def account_age_s(acc: Account, now_ms: int) -> float:
    born = acc.created_ms if acc.created_ms is not None else acc.first_seen_ms
    return max(0.0, (now_ms - born) / 1000.0)


def build_registry() -> FeatureRegistry:
    reg = FeatureRegistry()
    f = reg.feature

    # -- event --------------------------------------------------------------------------------------------
    f("event.type", str, "the event type, e.g. post.create")(lambda c: c.event.type)
    f("event.id", str, "the event id")(lambda c: c.event.id)
    f("event.actor", str, "the acting account id")(lambda c: c.event.actor)
    f("event.ts", int, "event time, epoch milliseconds")(lambda c: c.now_ms)
    f("event.hour", int, "hour of day (UTC) of the event")(lambda c: (c.now_ms // 3_600_000) % 24)
    f("event.text", str, "post, message or report text ('' when none)")(event_text)
    f("event.text_len", int, "length of event.text in characters")(lambda c: len(event_text(c)))
    f("event.text_hash", str, "hash of the normalised text ('' when no text)")(
        lambda c: format(text_hash(t), "x") if (t := c.feature("event.text")) else "")
    f("event.urls", list, "URLs of the post or message")(event_urls)
    f("event.n_urls", int, "number of URLs")(lambda c: len(event_urls(c)))
    f("event.domains", list, "distinct domains of the URLs")(
        lambda c: sorted({d for u in c.feature("event.urls") if (d := domain_of(u))}))
    f("event.hashtags", list, "hashtags of the post")(
        lambda c: c.event.post.hashtags if isinstance(c.event, PostCreate) else [])
    f("event.mentions", list, "accounts mentioned by the post")(
        lambda c: c.event.post.mentions if isinstance(c.event, PostCreate) else [])
    f("event.n_mentions", int, "number of mentions")(
        lambda c: len(c.event.post.mentions) if isinstance(c.event, PostCreate) else 0)
    f("event.media", list, "media hashes of the post")(
        lambda c: c.event.post.media if isinstance(c.event, PostCreate) else [])
    f("event.is_reply", bool, "the post replies to another post")(
        lambda c: isinstance(c.event, PostCreate) and c.event.post.reply_to is not None)
    f("event.is_quote", bool, "the post quotes another post")(
        lambda c: isinstance(c.event, PostCreate) and c.event.post.quote_of is not None)
    f("event.is_message", bool, "a direct message")(lambda c: isinstance(c.event, MessageSend))
    f("event.post_id", str, "id of the created, deleted or engaged post ('' when none)")(
        lambda c: c.event.post.id if isinstance(c.event, (PostCreate, PostDelete, PostEngage)) else "")
    f("event.engage_kind", str, "like, repost, unlike or unrepost ('' otherwise)")(
        lambda c: c.event.kind if isinstance(c.event, PostEngage) else "")
    f("event.report_reason", str, "reason of a report ('' otherwise)")(
        lambda c: c.event.reason if isinstance(c.event, ReportCreate) else "")
    f("event.report_subject", str, "id of the reported account or post ('' otherwise)")(
        lambda c: c.event.subject.id if isinstance(c.event, ReportCreate) else "")
    f("event.report_subject_kind", str, "account or post ('' otherwise)")(
        lambda c: c.event.subject.kind if isinstance(c.event, ReportCreate) else "")
    f("event.status", str, "new account status of an account.status event ('' otherwise)")(
        lambda c: c.event.status if isinstance(c.event, AccountStatus) else "")
    f("event.ip", str, "request IP ('' when the platform does not send it)")(
        lambda c: (c.event.ctx.ip or "") if c.event.ctx else "")
    f("event.ip_net", str, "the /24 (IPv4) or /64 (IPv6) of the request IP")(
        lambda c: ip_network(ip) if (ip := c.feature("event.ip")) else "")
    f("event.device", str, "request device id ('')")(lambda c: (c.event.ctx.device or "") if c.event.ctx else "")
    f("event.client", str, "client name ('')")(lambda c: (c.event.ctx.client or "") if c.event.ctx else "")
    f("event.country", str, "request country ('')")(lambda c: (c.event.ctx.country or "") if c.event.ctx else "")
    f("event.has_ctx", bool, "the event carries request context (ip or device)")(
        lambda c: bool(c.event.ctx and (c.event.ctx.ip or c.event.ctx.device)))
    f("event.is_generic", bool, "the event type is not a v1 type")(lambda c: isinstance(c.event, GenericEvent))

    # -- actor --------------------------------------------------------------------------------------------
    f("actor.id", str, "actor account id")(lambda c: c.actor.id)
    f("actor.handle", str, "actor handle ('')")(lambda c: c.actor.handle or "")
    f("actor.display_name", str, "actor display name ('')")(lambda c: c.actor.display_name or "")
    f("actor.bio", str, "actor bio ('')")(lambda c: c.actor.bio or "")
    f("actor.email_domain", str, "actor e-mail domain ('')")(lambda c: c.actor.email_domain or "")
    f("actor.age_s", float, "seconds since the actor was created (or first seen)")(
        lambda c: account_age_s(c.actor, c.now_ms))
    f("actor.age_days", float, "days since the actor was created (or first seen)")(
        lambda c: c.feature("actor.age_s") / 86400.0)
    f("actor.is_new", bool, "actor is younger than one day")(lambda c: c.feature("actor.age_s") < 86400)
    f("actor.followers", int, "followers of the actor")(lambda c: c.actor.followers)
    f("actor.following", int, "accounts the actor follows")(lambda c: c.actor.following)
    f("actor.posts", int, "posts by the actor so far")(lambda c: c.actor.posts)
    f("actor.status", str, "active, suspended, deactivated or deleted")(lambda c: c.actor.status)
    f("actor.verified", bool, "actor is verified")(lambda c: c.actor.verified)
    f("actor.has_avatar", bool, "actor has an avatar")(lambda c: bool(c.actor.avatar))
    f("actor.has_bio", bool, "actor has a bio")(lambda c: bool(c.actor.bio))
    f("actor.reports_received", int, "reports filed against the actor or its posts")(
        lambda c: c.actor.reports_received)
    f("actor.reports_filed", int, "reports the actor has filed")(lambda c: c.actor.reports_filed)
    f("actor.follow_ratio", float, "followers / (following + 1)")(
        lambda c: c.actor.followers / (c.actor.following + 1))
    f("actor.labels", list, "active labels on the actor")(
        lambda c: [lb.label for lb in c.state.labels.active("account", c.actor.id, c.now_ms)])
    f("actor.n_devices", int, "distinct devices the actor used (bounded memory, up to 8)")(
        lambda c: len(c.actor.devices))
    f("actor.n_ips", int, "distinct IPs the actor used (up to 8)")(lambda c: len(c.actor.ips))

    # -- target -------------------------------------------------------------------------------------------
    f("target.id", str, "the account the event is aimed at ('' when none)")(lambda c: target_id(c) or "")
    f("target.exists", bool, "the target account is known")(lambda c: target_account(c) is not None)
    f("target.followers", int, "followers of the target (0 when unknown)")(
        lambda c: t.followers if (t := target_account(c)) else 0)
    f("target.age_days", float, "age of the target account in days (0 when unknown)")(
        lambda c: account_age_s(t, c.now_ms) / 86400.0 if (t := target_account(c)) else 0.0)
    f("target.status", str, "status of the target ('' when unknown)")(
        lambda c: t.status if (t := target_account(c)) else "")
    f("target.labels", list, "active labels on the target account")(
        lambda c: [lb.label for lb in c.state.labels.active("account", tid, c.now_ms)]
        if (tid := target_id(c)) else [])
    f("target.reports_received", int, "reports against the target")(
        lambda c: t.reports_received if (t := target_account(c)) else 0)

    # -- relationship between actor and target --------------------------------------------------------------
    def _rel(kind: str, reverse: bool):  # type: ignore[no-untyped-def]
        def fn(c: EvalContext) -> bool:
            tid = target_id(c)
            if not tid or tid == c.actor.id:
                return False
            src, dst = (tid, c.actor.id) if reverse else (c.actor.id, tid)
            return c.state.graph.has(kind, src, dst)

        return fn

    f("rel.target_follows_actor", bool, "the target follows the actor")(_rel("follow", True))
    f("rel.actor_follows_target", bool, "the actor follows the target")(_rel("follow", False))
    f("rel.mutual", bool, "they follow each other")(
        lambda c: c.feature("rel.target_follows_actor") and c.feature("rel.actor_follows_target"))
    def _stranger(c: EvalContext) -> bool:
        # read on most events by rules and models, so computed directly rather than through two sub-features
        tid = target_id(c)
        aid = c.actor.id
        if not tid or tid == aid:
            return False
        graph = c.state.graph
        return not graph.has("follow", tid, aid) and not graph.has("follow", aid, tid)

    f("rel.stranger", bool, "there is a target, it is not the actor, and neither follows the other")(_stranger)
    f("rel.blocked_by_target", bool, "the target has blocked the actor")(_rel("block", True))
    f("rel.muted_by_target", bool, "the target has muted the actor")(_rel("mute", True))
    f("rel.self", bool, "the actor targets itself")(lambda c: target_id(c) == c.actor.id)

    # -- identifiers ----------------------------------------------------------------------------------------
    def _ident_count(kind: str, feature: str):  # type: ignore[no-untyped-def]
        # Whether the actor is already counted is read from the actor's own recent identifiers (bounded), not
        # from the identifier's member list, which can hold a thousand accounts behind a carrier NAT.
        def seen_by_actor(c: EvalContext, value: str) -> bool:
            if kind == "ip":
                return value in c.actor.ips
            if kind == "device":
                return value in c.actor.devices
            return any(ip_network(ip) == value for ip in c.actor.ips)

        def fn(c: EvalContext) -> int:
            ctx = c.event.ctx
            if ctx is None:
                return 0
            if kind == "device":
                value = ctx.device
            elif kind == "ip":
                value = ctx.ip
            else:
                value = ip_network(ctx.ip) if ctx.ip else None
            if not value:
                return 0
            n = c.state.identifiers.count(kind, value)
            return n if seen_by_actor(c, value) else n + 1

        return fn

    def _ident_suspended(kind: str, feature: str):  # type: ignore[no-untyped-def]
        def fn(c: EvalContext) -> int:
            value = c.feature(feature)
            if not value:
                return 0
            n = 0
            for aid in c.state.identifiers.accounts(kind, value):
                acc = c.state.accounts.get(aid)
                if acc is not None and acc.status == "suspended" and aid != c.actor.id:
                    n += 1
            return n

        return fn

    f("ip.accounts", int, "accounts seen on this IP, the actor included")(_ident_count("ip", "event.ip"))
    f("ip_net.accounts", int, "accounts seen on this /24 or /64")(_ident_count("ip_net", "event.ip_net"))
    f("device.accounts", int, "accounts seen on this device, the actor included")(
        _ident_count("device", "event.device"))
    f("ip.suspended_accounts", int, "suspended accounts seen on this IP")(_ident_suspended("ip", "event.ip"))
    f("device.suspended_accounts", int, "suspended accounts seen on this device")(
        _ident_suspended("device", "event.device"))
    f("email_domain.accounts", int, "accounts with the actor's e-mail domain")(
        lambda c: c.state.identifiers.count("email_domain", d.lower()) if (d := c.actor.email_domain) else 0)

    # -- post (the replied-to, engaged or reported post) ----------------------------------------------------
    def _ref_post(c: EvalContext) -> Post | None:
        ev = c.event
        pid = None
        if isinstance(ev, PostCreate):
            pid = ev.post.reply_to or ev.post.quote_of
        elif isinstance(ev, (PostEngage, PostDelete)):
            pid = ev.post.id
        elif isinstance(ev, ReportCreate) and ev.subject.kind == "post":
            pid = ev.subject.id
        return c.state.posts.get(pid) if pid else None

    def ref_post(c: EvalContext) -> Post | None:
        return c.cached("_ref_post", lambda: _ref_post(c))  # type: ignore[no-any-return]

    f("post.age_s", float, "age of the replied-to, engaged or reported post in seconds (-1 unknown)")(
        lambda c: (c.now_ms - p.ts) / 1000.0 if (p := ref_post(c)) else -1.0)
    f("post.likes", int, "likes of that post")(lambda c: p.likes if (p := ref_post(c)) else 0)
    f("post.reposts", int, "reposts of that post")(lambda c: p.reposts if (p := ref_post(c)) else 0)
    f("post.replies", int, "replies to that post")(lambda c: p.replies if (p := ref_post(c)) else 0)
    f("post.reports", int, "reports against that post")(lambda c: p.reports if (p := ref_post(c)) else 0)
    f("post.author", str, "author of that post ('')")(lambda c: p.author if (p := ref_post(c)) else "")
    return reg
