"""The canonical event union as pydantic v2 models - only to measure pydantic against msgspec (the choice
documented in docs/events.md); Bastion itself decodes with msgspec."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter


class _Ctx(BaseModel):
    ip: str | None = None
    device: str | None = None
    ua: str | None = None
    client: str | None = None
    country: str | None = None
    asn: str | int | None = None


class _Env(BaseModel):
    id: Annotated[str, Field(min_length=1, max_length=128)]
    ts: int | str
    actor: Annotated[str, Field(min_length=1, max_length=256)]
    platform: str | None = None
    ctx: _Ctx | None = None
    raw: Any = None


class _Profile(BaseModel):
    handle: str | None = None
    display_name: str | None = None
    bio: str | None = None
    avatar: str | None = None
    url: str | None = None
    lang: str | None = None
    email_domain: str | None = None
    verified: bool | None = None


class _Post(BaseModel):
    id: str
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


class _Ref(BaseModel):
    id: str
    author: str | None = None


class _Subj(BaseModel):
    kind: Literal["account", "post"]
    id: str


class AccountCreate(_Env):
    type: Literal["account.create"]
    profile: _Profile = _Profile()


class AccountUpdate(_Env):
    type: Literal["account.update"]
    profile: _Profile = _Profile()


class AccountLogin(_Env):
    type: Literal["account.login"]
    success: bool = True


class AccountStatus(_Env):
    type: Literal["account.status"]
    status: Literal["active", "suspended", "deactivated", "deleted"]
    by: Literal["platform", "user"] | None = None
    reason: str | None = None


class PostCreate(_Env):
    type: Literal["post.create"]
    post: _Post


class PostDelete(_Env):
    type: Literal["post.delete"]
    post: _Ref


class PostEngage(_Env):
    type: Literal["post.engage"]
    kind: Literal["like", "repost", "unlike", "unrepost"]
    post: _Ref


class Graph(_Env):
    type: Literal["graph.follow", "graph.unfollow", "graph.block", "graph.unblock", "graph.mute"]
    target: str


class MessageSend(_Env):
    type: Literal["message.send"]
    recipient: str
    text: str | None = None
    urls: list[str] = []


class ReportCreate(_Env):
    type: Literal["report.create"]
    subject: _Subj
    reason: str
    text: str | None = None


Event = Annotated[
    AccountCreate | AccountUpdate | AccountLogin | AccountStatus | PostCreate | PostDelete | PostEngage | Graph
    | MessageSend | ReportCreate,
    Field(discriminator="type"),
]
_adapter: TypeAdapter[Any] = TypeAdapter(Event)


def pydantic_validate_seconds(lines: list[bytes]) -> float:
    validate = _adapter.validate_json
    t0 = time.process_time()
    for line in lines:
        validate(line)
    return time.process_time() - t0
