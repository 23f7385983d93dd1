"""How one canonical event changes entity state. Called by the engine after detectors have evaluated the
event against the state as it was before it (so features such as "reply to a stranger" see the past)."""

from __future__ import annotations

from collections.abc import Callable
from hashlib import blake2b

from bastion.events.model import (
    AccountCreate,
    AccountLogin,
    AccountStatus,
    AccountUpdate,
    AnyEvent,
    GraphBlock,
    GraphFollow,
    GraphMute,
    GraphUnblock,
    GraphUnfollow,
    MessageSend,
    PostCreate,
    PostDelete,
    PostEngage,
    Profile,
    ReportCreate,
)
from bastion.state.model import Account, Post, Report
from bastion.state.protocols import State

MAX_IDENTIFIERS_PER_ACCOUNT = 8
PROFILE_FIELDS = ("handle", "display_name", "bio", "avatar", "url", "lang", "email_domain")


def text_hash(text: str) -> int:
    """A stable 63-bit hash of whitespace- and case-normalised text (the `text hash` entity).

    >>> text_hash("Buy  NOW ") == text_hash("buy now")
    True
    """
    norm = " ".join(text.lower().split())
    return int.from_bytes(blake2b(norm.encode(), digest_size=8).digest(), "little") >> 1


def ip_network(ip: str) -> str:
    """The /24 of an IPv4 address or the /64 of an IPv6 one (the unit a carrier or campus shares)."""
    if ":" in ip:
        parts = ip.split(":")
        return ":".join(parts[:4]) + "::/64"
    head, _, _ = ip.rpartition(".")
    return head + ".0/24" if head else ip


def _merge_profile(acc: Account, profile: Profile) -> None:
    for name in PROFILE_FIELDS:
        value = getattr(profile, name)
        if value is not None:
            setattr(acc, name, value)
    if profile.verified is not None:
        acc.verified = profile.verified
    if isinstance(profile.created_at, int):  # strings were normalised to epoch ms while decoding
        acc.created_ms = profile.created_at


def _remember(values: list[str], value: str) -> bool:
    if values and values[0] == value:
        return False
    if value in values:
        values.remove(value)
        values.insert(0, value)
        return False
    values.insert(0, value)
    del values[MAX_IDENTIFIERS_PER_ACCOUNT:]
    return True


# (actor, event, state, hash of the post's or message's text or None): the text is hashed once per event
Observer = Callable[[Account, AnyEvent, State, int | None], None]


def apply_event(state: State, event: AnyEvent, actor: Account, observe: Observer | None = None) -> None:
    """Apply ``event`` (already accepted as new) to ``state``; ``actor`` is the actor's account record."""
    ts = event.ts_ms
    if ts > actor.last_seen_ms:
        actor.last_seen_ms = ts
    ctx = event.ctx
    if ctx is not None:
        if ctx.ip:
            state.identifiers.add("ip", ctx.ip, actor.id, ts)
            state.identifiers.add("ip_net", ip_network(ctx.ip), actor.id, ts)
            _remember(actor.ips, ctx.ip)
        if ctx.device:
            state.identifiers.add("device", ctx.device, actor.id, ts)
            _remember(actor.devices, ctx.device)
    if isinstance(event, PostCreate):
        hashed: int | None = text_hash(event.post.text) if event.post.text else None
    elif isinstance(event, MessageSend) and observe is not None:  # only the observer reads a message's hash
        hashed = text_hash(event.text) if event.text else None
    else:
        hashed = None
    if observe is not None:
        observe(actor, event, state, hashed)

    if isinstance(event, PostCreate):
        body = event.post
        post = Post(
            id=body.id,
            author=event.actor,
            ts=ts,
            text_hash=hashed or 0,
            reply_to=body.reply_to,
            reply_to_author=body.reply_to_author,
            root=body.root,
            quote_of=body.quote_of,
            quote_of_author=body.quote_of_author,
        )
        state.posts.put(post)
        actor.posts += 1
        if body.reply_to:
            parent = state.posts.get(body.reply_to)
            if parent is not None:
                parent.replies += 1
                state.posts.put(parent)
    elif isinstance(event, PostEngage):
        post_ref = state.posts.get(event.post.id)
        delta = 1 if event.kind in ("like", "repost") else -1
        if post_ref is not None:
            if event.kind in ("like", "unlike"):
                post_ref.likes = max(0, post_ref.likes + delta)
            else:
                post_ref.reposts = max(0, post_ref.reposts + delta)
            state.posts.put(post_ref)
        if event.kind in ("like", "unlike"):
            actor.likes_given = max(0, actor.likes_given + delta)
    elif isinstance(event, GraphFollow):
        if state.graph.add("follow", event.actor, event.target, ts):
            actor.following += 1
            tgt = state.accounts.get_or_create(event.target, ts)
            tgt.followers += 1
            state.accounts.put(tgt)
    elif isinstance(event, GraphUnfollow):
        if state.graph.remove("follow", event.actor, event.target):
            actor.following = max(0, actor.following - 1)
            tgt_acc = state.accounts.get(event.target)
            if tgt_acc is not None:
                tgt_acc.followers = max(0, tgt_acc.followers - 1)
                state.accounts.put(tgt_acc)
    elif isinstance(event, GraphBlock):
        state.graph.add("block", event.actor, event.target, ts)
    elif isinstance(event, GraphUnblock):
        state.graph.remove("block", event.actor, event.target)
    elif isinstance(event, GraphMute):
        state.graph.add("mute", event.actor, event.target, ts)
    elif isinstance(event, AccountCreate):
        actor.created_ms = ts
        _merge_profile(actor, event.profile)
        _index_profile(state, actor, ts)
    elif isinstance(event, AccountUpdate):
        _merge_profile(actor, event.profile)
        _index_profile(state, actor, ts)
    elif isinstance(event, AccountStatus):
        actor.status = event.status
        actor.status_ms = ts
        actor.status_reason = event.reason
    elif isinstance(event, ReportCreate):
        state.reports.add(
            Report(event_id=event.id, reporter=event.actor, subject_kind=event.subject.kind,
                   subject_id=event.subject.id, reason=event.reason, ts=ts)
        )
        actor.reports_filed += 1
        if event.subject.kind == "account":
            subj = state.accounts.get_or_create(event.subject.id, ts)
            subj.reports_received += 1
            state.accounts.put(subj)
        else:
            reported = state.posts.get(event.subject.id)
            if reported is not None:
                reported.reports += 1
                state.posts.put(reported)
                author = state.accounts.get(reported.author)
                if author is not None:
                    author.reports_received += 1
                    state.accounts.put(author)
    elif isinstance(event, PostDelete):
        deleted = state.posts.get(event.post.id)
        if deleted is not None:
            deleted.deleted = True
            state.posts.put(deleted)
    elif isinstance(event, (MessageSend, AccountLogin)):
        pass
    state.accounts.put(actor)


def _index_profile(state: State, acc: Account, ts: int) -> None:
    if acc.email_domain:
        state.identifiers.add("email_domain", acc.email_domain.lower(), acc.id, ts)
    if acc.avatar:
        state.identifiers.add("avatar", acc.avatar, acc.id, ts)
