"""Hostile events at decode: timestamps outside the window, text past the cap, JSON nested past the limits, and
property tests that the decoders raise nothing but BadEvent (issue 19)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.app import event_limits
from bastion.commands.runner import replay_file
from bastion.events.codec import BadEvent, check_event, convert_event, decode_event, encode_event
from bastion.events.jetstream import JetstreamMapper
from bastion.events.limits import Limits
from bastion.events.model import AccountCreate, PostCreate
from bastion.settings import Settings, SettingsError
from bastion.sources.files import items

T0 = 1_795_132_800_000  # 2026-11-20T00:00:00Z, where the simulator starts
DAY = 86_400_000
CLOCK = Limits(clock=lambda: (T0 + 18 * DAY) / 1000)  # "now" = 2026-12-08T00:00:00Z


def follow(ts: object, **extra: object) -> bytes:
    return json.dumps({"id": "e1", "type": "graph.follow", "ts": ts, "actor": "a", "target": "b", **extra}).encode()


def post(text: str, ts: int = T0, **post_fields: object) -> dict[str, object]:
    return {"id": "p", "type": "post.create", "ts": ts, "actor": "a", "post": {"id": "p1", "text": text, **post_fields}}


def reason(data: bytes | dict[str, object], limits: Limits = CLOCK) -> str:
    with pytest.raises(BadEvent) as exc:
        if isinstance(data, dict):
            convert_event(data, limits)
        else:
            decode_event(data, limits)
    return exc.value.reason


# -- 1. timestamps --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("ts", "expected"), [
    ("9999-12-31T23:59:59Z", "after the clock"),
    (2**62, "past the largest representable time"),
    (2**64 + 5, "past the largest representable time"),
    (-(2**62), "before the accepted window"),
    ("0001-01-01T00:00:00+01:00", "before the accepted window"),
    ("9999-12-31T23:59:59-14:00", "past the largest representable time"),
    (0, "before the accepted window (2000-01-01T00:00:00.000Z)"),
    (T0 + 20 * DAY, "more than 86400 s after the clock (2026-12-08T00:00:00.000Z)"),
])
def test_timestamps_outside_the_window_are_refused_at_decode(ts, expected):
    assert expected in reason(follow(ts))
    assert expected in reason(json.loads(follow(ts)))


def test_the_window_admits_history_and_clock_skew_and_is_configurable():
    for ts in (T0, 946_684_800_000, T0 + 18 * DAY + DAY - 1, "2026-11-20T09:00:00Z", "2003-05-01T00:00:00+02:00"):
        assert decode_event(follow(ts), CLOCK).id == "e1"
    wide = Limits(min_ts_ms=0, max_future_ms=30 * DAY, clock=CLOCK.clock)
    assert decode_event(follow(0), wide).ts == 0
    assert decode_event(follow(T0 + 40 * DAY), wide).ts == T0 + 40 * DAY
    assert "after the clock" in reason(follow(T0 + 49 * DAY), wide)


def test_profile_created_at_is_bounded_too():
    ev = {"id": "c", "type": "account.create", "ts": T0, "actor": "a", "profile": {"created_at": "9999-01-01T00:00:00Z"}}
    assert "profile.created_at" in reason(ev) and "after the clock" in reason(ev)
    ev["profile"] = {"created_at": 2**62}
    assert "profile.created_at" in reason(ev)
    ev["profile"] = {"created_at": "2019-03-01T00:00:00Z"}
    assert isinstance(convert_event(ev, CLOCK), AccountCreate)


def test_settings_reach_the_decoders():
    s = Settings.load(env={"BASTION_EVENT_MIN_TS": "2020-01-01", "BASTION_EVENT_MAX_FUTURE_S": "60",
                           "BASTION_EVENT_MAX_TEXT": "10", "BASTION_EVENT_MAX_DEPTH": "3"})
    lim = event_limits(s)
    assert (lim.min_ts_ms, lim.max_future_ms, lim.max_text, lim.max_depth) == (1_577_836_800_000, 60_000, 10, 3)
    assert event_limits(Settings.load(env={"BASTION_EVENT_MIN_TS": "946684800000"})).min_ts_ms == 946_684_800_000
    with pytest.raises(SettingsError, match="event_min_ts"):
        event_limits(Settings.load(env={"BASTION_EVENT_MIN_TS": "last tuesday"}))
    with pytest.raises(SettingsError, match="event_max_text"):
        event_limits(Settings.load(env={"BASTION_EVENT_MAX_TEXT": "0"}))


# -- 2. nesting -----------------------------------------------------------------------------------------
def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("where", ["raw", "colour"])
def test_json_nested_past_the_decoder_limit_is_a_bad_event(where):
    for etype in ("graph.follow", "thing.new"):
        line = f'{{"id":"x","type":"{etype}","ts":{T0},"actor":"a","target":"b","{where}":{nested(1000)}}}'
        assert reason(line.encode()) == "invalid JSON: nested too deeply"


def test_nesting_is_capped_below_the_decoder_limit():
    line = f'{{"id":"x","type":"graph.follow","ts":{T0},"actor":"a","target":"b","raw":{nested(100)}}}'
    assert reason(line.encode()) == "raw is nested more than 64 levels deep"
    line = f'{{"id":"x","type":"live.start","ts":{T0},"actor":"a","stream":{nested(100)}}}'
    assert reason(line.encode()) == "the event's fields is nested more than 64 levels deep"
    obj = {"id": "x", "type": "graph.follow", "ts": T0, "actor": "a", "target": "b", "raw": json.loads(nested(900))}
    assert reason(obj) == "raw is nested more than 64 levels deep"
    ok = f'{{"id":"x","type":"graph.follow","ts":{T0},"actor":"a","target":"b","raw":{nested(60)}}}'
    assert decode_event(ok.encode(), CLOCK).raw is not None


# -- 3. text length -------------------------------------------------------------------------------------
def test_ten_megabytes_of_text_is_refused_quickly():
    big = "x" * 10_000_000
    t0 = time.perf_counter()
    assert reason(post(big)) == "post.text is 10000000 characters, more than the limit of 65536"
    assert reason(json.dumps(post(big)).encode()) == "post.text is 10000000 characters, more than the limit of 65536"
    assert time.perf_counter() - t0 < 2.0
    assert isinstance(convert_event(post("x" * 65_536), CLOCK), PostCreate)


@pytest.mark.parametrize(("event", "where"), [
    ({"type": "message.send", "recipient": "b", "text": "y" * 70_000}, "text is 70000"),
    ({"type": "account.create", "profile": {"bio": "y" * 70_000}}, "profile.bio"),
    ({"type": "account.update", "profile": {"display_name": "y" * 70_000}}, "profile.display_name"),
    ({"type": "report.create", "subject": {"kind": "post", "id": "p"}, "reason": "spam", "text": "y" * 70_000},
     "text is 70000"),
    ({"type": "account.status", "status": "suspended", "reason": "y" * 70_000}, "reason is 70000"),
    ({"type": "graph.follow", "target": "b", "ctx": {"ua": "y" * 70_000}}, "ctx.ua"),
    ({"type": "live.start", "title": "y" * 70_000}, "a string in the event's fields"),
    ({"type": "graph.follow", "target": "b", "raw": {"k": ["y" * 70_000]}}, "a string in raw"),
    ({"type": "post.create", "post": {"id": "p", "urls": ["u"] * 5000}}, "post.urls has 5000 entries"),
    ({"type": "post.create", "post": {"id": "p", "hashtags": ["y" * 70_000]}}, "an entry of post.hashtags"),
])
def test_every_free_text_is_capped(event, where):
    obj = {"id": "x", "ts": T0, "actor": "a", **event}
    assert where in reason(obj)
    assert where in reason(json.dumps(obj).encode())


def test_the_text_cap_is_configurable():
    small = Limits(max_text=10, clock=CLOCK.clock)
    assert "post.text is 11 characters, more than the limit of 10" in reason(post("x" * 11), small)
    assert check_event(convert_event(post("x" * 10), small), small).post.text == "x" * 10  # type: ignore[union-attr]


# -- dead letters: files and Jetstream keep the reason and go on ------------------------------------------
def test_replay_dead_letters_hostile_lines_with_their_reason_and_goes_on(tmp_path: Path):
    good = [json.dumps({"id": f"g{i}", "type": "graph.follow", "ts": T0 + i * 1000, "actor": f"u{i}", "target": "v"})
            for i in range(3)]
    hostile = [
        follow("9999-12-31T23:59:59Z").decode().replace('"e1"', '"future"'),
        follow(2**62).decode().replace('"e1"', '"overflow"'),
        f'{{"id":"deep","type":"graph.follow","ts":{T0},"actor":"a","target":"b","raw":{nested(2000)}}}',
        json.dumps(post("z" * 200_000)),
    ]
    lines = [good[0], *hostile, good[1], good[2]]
    src = tmp_path / "events.jsonl"
    src.write_text("\n".join(lines) + "\n")
    summary = replay_file(Settings.load(env={}, db_path=tmp_path / "r.db"), src, tmp_path / "out", rules_dir=False,
                          progress=False)
    dead = [json.loads(x) for x in (tmp_path / "out" / "dead_letters.jsonl").read_text().splitlines()]
    assert [d["line"] for d in dead] == [2, 3, 4, 5]
    reasons = [d["error"] for d in dead]
    assert "after the clock" in reasons[0] and "largest representable" in reasons[1]
    assert reasons[2] == "invalid JSON: nested too deeply" and "post.text is 200000 characters" in reasons[3]
    assert summary["events"] == 3


def test_jetstream_items_dead_letter_hostile_messages(tmp_path: Path):
    now_us = int(time.time() * 1_000_000)
    msgs = [
        {"did": "did:plc:a", "time_us": now_us, "kind": "identity", "identity": {"handle": "a.test", "seq": 1}},
        {"did": "did:plc:b", "time_us": 2**62, "kind": "identity", "identity": {"handle": "b.test", "seq": 2}},
        {"did": "did:plc:c", "time_us": now_us, "kind": "commit", "commit": {
            "rev": "r", "operation": "create", "collection": "app.bsky.feed.post", "rkey": "k",
            "record": {"text": "t" * 100_000, "facets": 5, "tags": 7}}},
    ]
    src = tmp_path / "js.jsonl"
    src.write_text("\n".join(json.dumps(m) for m in msgs) + "\n" + nested(3000) + "\n")
    got = list(items(src, "jetstream"))
    ok = [i.event.type for i in got if i.event is not None]
    bad = [(i.line, i.error) for i in got if i.event is None]
    assert ok == ["account.create", "account.update", "account.create"]
    assert [b[0] for b in bad] == [2, 2, 3, 4]  # line 2: the first sight of the DID and its identity
    assert "largest representable" in bad[0][1] and "largest representable" in bad[1][1]
    assert "post.text is 100000 characters" in bad[2][1]
    assert bad[3] == (4, "invalid JSON: nested too deeply")


def test_jetstream_mapper_takes_any_shape():
    m = JetstreamMapper()
    rec = {"did": "did:plc:a", "time_us": 1_790_000_000_000_000, "kind": "commit", "commit": {
        "rev": "r", "operation": "create", "collection": "app.bsky.feed.post", "rkey": "k",
        "record": {"text": "hi", "facets": [{"features": 3}, 5], "tags": "abc", "embed": {
            "$type": "app.bsky.embed.images", "images": 9}}}}
    assert [e["type"] for e in m.map(rec)] == ["account.create", "post.create"]
    assert m.map({"did": "did:plc:b", "time_us": 1, "kind": "account", "account": {"active": False,
                                                                                  "status": {"x": 1}}})
    assert m.ignored["account status \"{'x': 1}\""] == 1


# -- 7. properties --------------------------------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=20,
)
TYPES = st.sampled_from(["post.create", "graph.follow", "account.create", "account.update", "message.send",
                         "report.create", "account.status", "post.engage", "post.delete", "thing.new"])
ENVELOPE_ISH = st.fixed_dictionaries(
    {"id": st.text(max_size=5), "type": TYPES,
     "ts": st.one_of(st.integers(min_value=-(2**66), max_value=2**66), st.text(max_size=30),
                     st.datetimes().map(lambda d: d.isoformat() + "+00:00")),
     "actor": st.text(max_size=5)},
    optional={"post": JSON, "target": JSON, "profile": JSON, "raw": JSON, "ctx": JSON, "text": JSON,
              "subject": JSON, "reason": JSON, "status": JSON, "kind": JSON, "recipient": JSON})
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def only_bad_event(fn, value) -> None:
    try:
        fn(value)
    except BadEvent as exc:
        assert isinstance(exc.reason, str) and exc.reason


@FAST
@given(st.one_of(JSON, ENVELOPE_ISH))
def test_convert_event_raises_only_bad_event(value):
    only_bad_event(lambda v: convert_event(v, CLOCK), value)


@FAST
@given(st.one_of(JSON, ENVELOPE_ISH))
def test_decode_event_of_any_json_raises_only_bad_event(value):
    only_bad_event(lambda v: decode_event(msgspec.json.encode(v), CLOCK), value)


@FAST
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_decode_event_of_any_bytes_raises_only_bad_event(data):
    only_bad_event(lambda v: decode_event(v, CLOCK), data)


JETSTREAM = st.fixed_dictionaries(
    {"did": st.sampled_from(["did:plc:a", "did:plc:b"]) | st.text(max_size=5),
     "time_us": st.integers(min_value=-(2**64), max_value=2**64),
     "kind": st.sampled_from(["commit", "account", "identity", "x"])},
    optional={"commit": st.fixed_dictionaries(
        {"operation": st.sampled_from(["create", "update", "delete"]) | JSON,
         "collection": st.sampled_from(["app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.graph.follow",
                                        "app.bsky.actor.profile", "app.bsky.graph.block"]) | JSON,
         "rkey": st.text(max_size=4) | JSON, "rev": JSON},
        optional={"record": JSON | st.fixed_dictionaries(
            {}, optional={"text": JSON, "facets": JSON, "tags": JSON, "embed": JSON, "reply": JSON,
                          "subject": JSON, "langs": JSON, "displayName": JSON, "avatar": JSON})}),
              "account": JSON, "identity": JSON})


@FAST
@given(st.lists(st.one_of(JETSTREAM, JSON), max_size=4))
def test_jetstream_mapper_never_raises_and_its_events_fail_only_with_bad_event(messages):
    m = JetstreamMapper()
    for msg in messages:
        for obj in m.map(msg):
            only_bad_event(lambda v: convert_event(v, CLOCK), obj)


TEXT = st.text(max_size=40)
VALID = st.one_of(
    st.builds(lambda i, ts, a, t: {"id": i, "type": "graph.follow", "ts": ts, "actor": a, "target": t},
              st.text(min_size=1, max_size=10), st.integers(T0 - 10 * 365 * DAY, T0 + 18 * DAY), TEXT.filter(bool),
              TEXT.filter(bool)),
    st.builds(lambda i, ts, a, text, urls, ip: {"id": i, "type": "post.create", "ts": ts, "actor": a,
                                                 "post": {"id": "p" + i, "text": text, "urls": urls},
                                                 "ctx": {"ip": ip}},
              st.text(min_size=1, max_size=10), st.integers(T0, T0 + DAY), TEXT.filter(bool),
              TEXT, st.lists(TEXT, max_size=3), TEXT),
    st.builds(lambda i, ts, fields: {"id": i, "type": "thing.new", "ts": ts, "actor": "a", **fields},
              st.text(min_size=1, max_size=10), st.integers(T0, T0 + DAY),
              st.dictionaries(st.sampled_from(["colour", "n", "tags"]), JSON, max_size=3)),
)


@FAST
@given(VALID)
def test_valid_events_round_trip(obj):
    ev = convert_event(obj, CLOCK)
    again = decode_event(encode_event(ev), CLOCK)
    assert again == ev
    assert convert_event(msgspec.json.decode(encode_event(ev)), CLOCK) == ev


def test_broker_producers_survive_deep_json():
    from bastion.sources.redis_streams import head_of

    deep = f'{{"id":"x","type":"graph.follow","ts":{T0},"actor":"a","raw":{nested(5000)}}}'.encode()
    assert head_of(deep) == ("", 0)  # partitioned as unknown; the worker's decode_event dead-letters it
    assert reason(deep) == "invalid JSON: nested too deeply"
