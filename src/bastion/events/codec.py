"""Decoding and encoding of canonical events, with reasons fit for a dead-letter file."""

from __future__ import annotations

from typing import Any

import msgspec

from bastion.events import limits as _limits
from bastion.events.limits import Limits
from bastion.events.model import (
    AccountCreate,
    AccountStatus,
    AccountUpdate,
    AnyEvent,
    BaseEvent,
    Ctx,
    Event,
    GenericEvent,
    MessageSend,
    PostCreate,
    PostDelete,
    PostEngage,
    Profile,
    ReportCreate,
)

_ENVELOPE = frozenset({"id", "type", "ts", "actor", "platform", "ctx", "raw"})
_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)
_encoder = msgspec.json.Encoder()


class BadEvent(ValueError):
    """A line that is not a valid canonical event; ``reason`` is for humans and dead letters."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _generic(obj: Any) -> GenericEvent:
    if not isinstance(obj, dict):
        raise BadEvent("event is not a JSON object")
    extra = {k: v for k, v in obj.items() if k not in _ENVELOPE}
    env = {k: v for k, v in obj.items() if k in _ENVELOPE}
    env["fields"] = extra
    try:
        return msgspec.convert(env, GenericEvent)
    except msgspec.ValidationError as exc:
        raise BadEvent(str(exc)) from None


# -- limits (bastion.events.limits): every decoded event passes check_event before anyone sees it ----------
def _text(value: str | None, where: str, cap: int) -> None:
    if value is not None and len(value) > cap:
        raise BadEvent(f"{where} is {len(value)} characters, more than the limit of {cap}")


def _items(values: list[str], where: str, lim: Limits) -> None:
    if len(values) > lim.max_items:
        raise BadEvent(f"{where} has {len(values)} entries, more than the limit of {lim.max_items}")
    cap = lim.max_text
    for v in values:
        if len(v) > cap:
            raise BadEvent(f"an entry of {where} is {len(v)} characters, more than the limit of {cap}")


_CONTAINERS = (str, dict, list)


def _tree(value: Any, where: str, lim: Limits) -> None:
    """Depth, string length and container size of a free JSON value (``raw``, an unknown type's fields),
    walked without recursion."""
    if type(value) is dict and len(value) <= 16:  # the common case, {"backfill": true}: flat, no strings
        for x in value.values():
            if type(x) in _CONTAINERS:
                break
        else:
            return
    stack: list[tuple[Any, int]] = [(value, 1)]
    cap, depth_cap, items_cap = lim.max_text, lim.max_depth, lim.max_items * 10
    seen = 0
    while stack:
        v, d = stack.pop()
        if isinstance(v, str):
            if len(v) > cap:
                raise BadEvent(f"a string in {where} is {len(v)} characters, more than the limit of {cap}")
        elif isinstance(v, dict | list):
            if d > depth_cap:
                raise BadEvent(f"{where} is nested more than {depth_cap} levels deep")
            seen += len(v)
            if seen > items_cap:
                raise BadEvent(f"{where} holds more than {items_cap} values")
            if isinstance(v, dict):
                for k, x in v.items():
                    if isinstance(k, str) and len(k) > cap:
                        raise BadEvent(f"a key in {where} is {len(k)} characters, more than the limit of {cap}")
                    if isinstance(x, str | dict | list):
                        stack.append((x, d + 1))
            else:
                stack.extend((x, d + 1) for x in v if isinstance(x, str | dict | list))


def _ctx(ctx: Ctx, cap: int) -> None:
    for name in ("ip", "device", "ua", "client", "country"):
        _text(getattr(ctx, name), f"ctx.{name}", cap)
    if isinstance(ctx.asn, str):
        _text(ctx.asn, "ctx.asn", cap)


def _profile(p: Profile, lim: Limits) -> None:
    cap = lim.max_text
    for name in ("handle", "display_name", "bio", "avatar", "url", "lang", "email_domain"):
        _text(getattr(p, name), f"profile.{name}", cap)
    created: int | str | None = p.created_at
    if isinstance(created, int) and not lim.ts_ok(created):  # a string is normalised while decoding
        raise BadEvent(lim.ts_problem(created, "profile.created_at") or "profile.created_at is outside the window")


_PROFILED = (AccountCreate, AccountUpdate)


def check_event(event: AnyEvent, lim: Limits | None = None, texts: bool = True) -> AnyEvent:
    """``event`` when it is inside ``lim`` (the installed :func:`bastion.events.limits.current` when None),
    else :class:`BadEvent` with the reason. ``texts=False`` skips the string and list checks (the caller
    knows the encoded event is shorter than ``max_text``, so no string in it can be longer)."""
    if lim is None:
        lim = _limits.current()
    ts: int = event.ts  # type: ignore[assignment]  # normalised to epoch ms while decoding
    if not lim.ts_ok(ts):
        raise BadEvent(lim.ts_problem(ts, "ts") or f"ts {ts} is outside the accepted window")
    cls = type(event)
    if cls in _PROFILED and (texts or event.profile.created_at is not None):  # type: ignore[union-attr]
        _profile(event.profile, lim)  # type: ignore[union-attr]
    if texts:
        _texts(event, lim)
    if cls is GenericEvent and event.fields:  # type: ignore[union-attr]
        _tree(event.fields, "the event's fields", lim)  # type: ignore[union-attr]
    if event.raw is not None:
        _tree(event.raw, "raw", lim)
    return event


def _texts(event: AnyEvent, lim: Limits) -> None:
    cap = lim.max_text
    if event.ctx is not None:
        _ctx(event.ctx, cap)
    if isinstance(event, PostCreate):
        p = event.post
        for name in ("text", "reply_to", "reply_to_author", "root", "quote_of", "quote_of_author", "lang"):
            _text(getattr(p, name), f"post.{name}", cap)
        for name in ("mentions", "urls", "hashtags", "media"):
            _items(getattr(p, name), f"post.{name}", lim)
    elif isinstance(event, MessageSend):
        _text(event.text, "text", cap)
        _items(event.urls, "urls", lim)
    elif isinstance(event, ReportCreate):
        _text(event.text, "text", cap)
    elif isinstance(event, AccountStatus):
        _text(event.reason, "reason", cap)
    elif isinstance(event, PostDelete | PostEngage):
        _text(event.post.author, "post.author", cap)


def _too_deep(exc: RecursionError) -> BadEvent:
    return BadEvent("invalid JSON: nested too deeply")


def decode_event(data: bytes | str, limits: Limits | None = None) -> AnyEvent:
    """Decode one JSON event; raise :class:`BadEvent` with a readable reason when it is not valid or breaks
    ``limits`` (:mod:`bastion.events.limits`; the installed ones when None).

    >>> decode_event('{"id":"x","type":"thing.new","ts":1795132800000,"actor":"a","colour":"red"}').fields
    {'colour': 'red'}
    >>> decode_event('{"id":"x","type":"graph.follow","ts":1795132800000}')
    Traceback (most recent call last):
    ...
    bastion.events.codec.BadEvent: Object missing required field `target`
    """
    lim = limits or _limits.current()
    try:
        event: AnyEvent = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        if msg.startswith("Invalid value") and msg.endswith("at `$.type`"):
            try:
                event = _generic(msgspec.json.decode(data))
            except msgspec.DecodeError as exc2:
                raise BadEvent(f"invalid JSON: {exc2}") from None
            except RecursionError as exc2:
                raise _too_deep(exc2) from None
        else:
            raise BadEvent(msg) from None
    except msgspec.DecodeError as exc:
        raise BadEvent(f"invalid JSON: {exc}") from None
    except RecursionError as exc:
        raise _too_deep(exc) from None
    return check_event(event, lim, texts=len(data) > lim.max_text or len(data) > 3 * lim.max_items)


def convert_event(obj: Any, limits: Limits | None = None) -> AnyEvent:
    """Validate an already-decoded JSON object (HTTP ingest, broker payloads), limits included."""
    try:
        event: AnyEvent = msgspec.convert(obj, Event)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        if not (msg.startswith("Invalid value") and msg.endswith("at `$.type`")):
            raise BadEvent(msg) from None
        event = _generic(obj)
    except RecursionError as exc:
        raise _too_deep(exc) from None
    return check_event(event, limits)


def encode_event(event: AnyEvent) -> bytes:
    """Canonical JSON for an event (``ts`` as epoch milliseconds; unknown types flattened back)."""
    if isinstance(event, GenericEvent):
        obj = msgspec.to_builtins(event)
        fields = obj.pop("fields", {}) or {}
        obj.update(fields)
        return _encoder.encode(obj)
    return _encoder.encode(event)


def to_dict(event: AnyEvent) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.json.decode(encode_event(event))
    return out


__all__ = ["BadEvent", "BaseEvent", "check_event", "convert_event", "decode_event", "encode_event", "to_dict"]
