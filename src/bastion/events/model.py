"""Canonical events, version 1 (../shared/spec/events-v1.md) as msgspec structs.

Decoding is a tagged union on ``type``; an unknown type decodes as :class:`GenericEvent` so rules can still
match it. ``ts`` arrives as an RFC 3339 string with offset or as epoch milliseconds and is normalised to
epoch milliseconds (``int``) while decoding, so every consumer sees one representation.

>>> from bastion.events.codec import decode_event
>>> ev = decode_event(b'{"id":"e4","type":"graph.follow","ts":"2026-11-20T09:03:00Z","actor":"u3","target":"u1"}')
>>> type(ev).__name__, ev.ts, ev.target
('GraphFollow', 1795165380000, 'u1')
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Actor = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


def parse_ts(value: int | str, field: str = "ts") -> int:
    """Epoch milliseconds from an int (already ms) or an RFC 3339 string that carries an offset."""
    if isinstance(value, int):
        return value
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{field} {value!r} is not an RFC 3339 timestamp") from exc
    if dt.tzinfo is None:
        raise ValueError(f"{field} {value!r} has no UTC offset")
    try:
        return int(dt.timestamp() * 1000)
    except (OverflowError, ValueError) as exc:  # the offset moves it outside what a datetime can hold
        raise ValueError(f"{field} {value!r} is outside the representable range") from exc


class Ctx(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=False):
    """Request context; every field optional (Bluesky-like platforms expose none of them)."""

    ip: str | None = None
    device: str | None = None
    ua: str | None = None
    client: str | None = None
    country: str | None = None
    asn: str | int | None = None


class Profile(msgspec.Struct, omit_defaults=True):
    handle: str | None = None
    display_name: str | None = None
    bio: str | None = None
    avatar: str | None = None
    url: str | None = None
    lang: str | None = None
    email_domain: str | None = None
    verified: bool | None = None
    created_at: int | str | None = None  # additive: when the account was created (backfills of older accounts)

    def __post_init__(self) -> None:
        if isinstance(self.created_at, str):
            self.created_at = parse_ts(self.created_at, "created_at")


class PostBody(msgspec.Struct, omit_defaults=True):
    id: Ref
    text: str | None = None
    reply_to: str | None = None
    reply_to_author: str | None = None
    root: str | None = None
    quote_of: str | None = None
    quote_of_author: str | None = None
    mentions: list[str] = []
    urls: list[str] = []
    hashtags: list[str] = []
    lang: str | None = None
    media: list[str] = []


class PostRef(msgspec.Struct, omit_defaults=True):
    id: Ref
    author: str | None = None


class ReportSubject(msgspec.Struct):
    kind: Literal["account", "post"]
    id: Ref


class BaseEvent(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="type"):
    """The envelope shared by every event type."""

    id: Id
    ts: int | str
    actor: Actor
    platform: str | None = None
    ctx: Ctx | None = None
    raw: Any = None

    type_name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if not isinstance(self.ts, int):
            self.ts = parse_ts(self.ts)

    @property
    def ts_ms(self) -> int:
        ts = self.ts
        assert isinstance(ts, int)
        return ts

    @property
    def type(self) -> str:
        return self.type_name


class AccountCreate(BaseEvent, tag="account.create"):
    profile: Profile = msgspec.field(default_factory=Profile)


class AccountUpdate(BaseEvent, tag="account.update"):
    profile: Profile = msgspec.field(default_factory=Profile)


class AccountLogin(BaseEvent, tag="account.login"):
    success: bool = True


class AccountStatus(BaseEvent, tag="account.status"):
    status: Literal["active", "suspended", "deactivated", "deleted"]
    by: Literal["platform", "user"] | None = None
    reason: str | None = None


class PostCreate(BaseEvent, tag="post.create"):
    post: PostBody


class PostDelete(BaseEvent, tag="post.delete"):
    post: PostRef


class PostEngage(BaseEvent, tag="post.engage"):
    kind: Literal["like", "repost", "unlike", "unrepost"]
    post: PostRef


class GraphFollow(BaseEvent, tag="graph.follow"):
    target: Actor


class GraphUnfollow(BaseEvent, tag="graph.unfollow"):
    target: Actor


class GraphBlock(BaseEvent, tag="graph.block"):
    target: Actor


class GraphUnblock(BaseEvent, tag="graph.unblock"):
    target: Actor


class GraphMute(BaseEvent, tag="graph.mute"):
    target: Actor


class MessageSend(BaseEvent, tag="message.send"):
    recipient: Actor
    text: str | None = None
    urls: list[str] = []


class ReportCreate(BaseEvent, tag="report.create"):
    subject: ReportSubject
    reason: Literal["spam", "abuse", "harassment", "hate", "impersonation", "misinformation", "bot", "other"]
    text: str | None = None


class GenericEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An event whose type this version does not know: kept whole (its extra fields in ``fields``)."""

    id: Id
    type_: str = msgspec.field(name="type")
    ts: int | str
    actor: Actor
    platform: str | None = None
    ctx: Ctx | None = None
    raw: Any = None
    fields: dict[str, Any] = {}

    def __post_init__(self) -> None:
        if not isinstance(self.ts, int):
            self.ts = parse_ts(self.ts)

    @property
    def ts_ms(self) -> int:
        ts = self.ts
        assert isinstance(ts, int)
        return ts

    @property
    def type(self) -> str:
        return self.type_


KNOWN_TYPES: tuple[type[BaseEvent], ...] = (
    AccountCreate,
    AccountUpdate,
    AccountLogin,
    AccountStatus,
    PostCreate,
    PostDelete,
    PostEngage,
    GraphFollow,
    GraphUnfollow,
    GraphBlock,
    GraphUnblock,
    GraphMute,
    MessageSend,
    ReportCreate,
)

for _cls in KNOWN_TYPES:
    _cls.type_name = _cls.__struct_config__.tag  # type: ignore[assignment]

TYPE_NAMES: frozenset[str] = frozenset(c.type_name for c in KNOWN_TYPES)

Event = (
    AccountCreate
    | AccountUpdate
    | AccountLogin
    | AccountStatus
    | PostCreate
    | PostDelete
    | PostEngage
    | GraphFollow
    | GraphUnfollow
    | GraphBlock
    | GraphUnblock
    | GraphMute
    | MessageSend
    | ReportCreate
)
AnyEvent = Event | GenericEvent
