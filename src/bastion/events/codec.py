"""Decoding and encoding of canonical events, with reasons fit for a dead-letter file."""

from __future__ import annotations

from typing import Any

import msgspec

from bastion.events.model import AnyEvent, BaseEvent, Event, GenericEvent

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


def decode_event(data: bytes | str) -> AnyEvent:
    """Decode one JSON event; raise :class:`BadEvent` with a readable reason when it is not valid.

    >>> decode_event('{"id":"x","type":"thing.new","ts":0,"actor":"a","colour":"red"}').fields
    {'colour': 'red'}
    >>> decode_event('{"id":"x","type":"graph.follow","ts":0}')
    Traceback (most recent call last):
    ...
    bastion.events.codec.BadEvent: Object missing required field `target`
    """
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        if msg.startswith("Invalid value") and msg.endswith("at `$.type`"):
            try:
                return _generic(msgspec.json.decode(data))
            except msgspec.DecodeError as exc2:
                raise BadEvent(f"invalid JSON: {exc2}") from None
        raise BadEvent(msg) from None
    except msgspec.DecodeError as exc:
        raise BadEvent(f"invalid JSON: {exc}") from None


def convert_event(obj: Any) -> AnyEvent:
    """Validate an already-decoded JSON object (HTTP ingest, broker payloads)."""
    try:
        event: AnyEvent = msgspec.convert(obj, Event)
        return event
    except msgspec.ValidationError as exc:
        msg = str(exc)
        if msg.startswith("Invalid value") and msg.endswith("at `$.type`"):
            return _generic(obj)
        raise BadEvent(msg) from None


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


__all__ = ["BadEvent", "BaseEvent", "convert_event", "decode_event", "encode_event", "to_dict"]
