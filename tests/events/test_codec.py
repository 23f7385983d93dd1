from __future__ import annotations

import json

import pytest

from bastion.events.codec import BadEvent, convert_event, decode_event, encode_event
from bastion.events.model import GenericEvent, PostCreate, parse_ts
from bastion.events.schema import json_schema


def test_every_spec_example_is_accepted(spec_examples):
    assert len(spec_examples) == 8
    types = [decode_event(line).type for line in spec_examples]
    assert types == ["account.create", "post.create", "post.create", "graph.follow", "post.engage",
                     "report.create", "account.status", "message.send"]


def test_ts_forms_normalise_to_epoch_ms():
    a = decode_event('{"id":"a","type":"graph.follow","ts":"2026-11-20T09:03:00Z","actor":"u","target":"v"}')
    b = decode_event('{"id":"b","type":"graph.follow","ts":"2026-11-20T10:03:00+01:00","actor":"u","target":"v"}')
    c = decode_event('{"id":"c","type":"graph.follow","ts":1795165380000,"actor":"u","target":"v"}')
    assert a.ts == b.ts == c.ts == 1795165380000
    assert parse_ts(5) == 5


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "invalid JSON"),
        ('{"id":"x","type":"post.create","ts":1,"actor":"a"}', "missing required field `post`"),
        ('{"id":"x","type":"post.create","ts":"yesterday","actor":"a","post":{"id":"p"}}', "not an RFC 3339"),
        ('{"id":"x","type":"post.create","ts":"2026-11-20T09:00:00","actor":"a","post":{"id":"p"}}', "no UTC offset"),
        ('{"id":"","type":"graph.follow","ts":1,"actor":"a","target":"b"}', "$.id"),
        ('{"id":"x","type":"graph.follow","ts":1,"actor":"a","target":5}', "$.target"),
        ('{"id":"x","type":"report.create","ts":1,"actor":"a","subject":{"kind":"x","id":"p"},"reason":"spam"}',
         "$.subject.kind"),
        ('[1,2]', "Expected `object`"),
        ('{"type":"thing.new","ts":1,"actor":"a"}', "`id`"),
    ],
)
def test_bad_events_have_readable_reasons(line, reason):
    with pytest.raises(BadEvent) as exc:
        decode_event(line)
    assert reason in exc.value.reason


def test_unknown_type_is_kept_as_generic_event_with_its_fields():
    ev = decode_event('{"id":"g1","type":"live.start","ts":1795132800000,"actor":"a","stream":{"title":"hi"}}')
    assert isinstance(ev, GenericEvent)
    assert ev.type == "live.start" and ev.fields == {"stream": {"title": "hi"}}
    assert json.loads(encode_event(ev)) == {"id": "g1", "type": "live.start", "ts": 1795132800000, "actor": "a",
                                            "stream": {"title": "hi"}}


def test_round_trip_and_convert(spec_examples):
    for line in spec_examples:
        ev = decode_event(line)
        again = decode_event(encode_event(ev))
        assert again == ev
        assert convert_event(json.loads(line)) == ev
    assert isinstance(convert_event({"id": "x", "type": "post.create", "ts": 1795132800000, "actor": "a",
                                     "post": {"id": "p", "text": "hi"}}), PostCreate)


def test_json_schema_covers_every_type(spec_examples):
    schema = json_schema()
    text = json.dumps(schema)
    for t in ("account.create", "post.engage", "report.create", "message.send", "graph.mute"):
        assert t in text
