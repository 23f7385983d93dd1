"""Every real platform file in shared/data/platform_events maps to valid canonical events or is counted as
ignored (issue 2), plus the specific numbers each real file must give."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bastion.events.atproto import (
    AtprotoMapper,
    CborError,
    decode_dag_cbor,
    map_bytes,
    map_file,
    map_path,
    read_car,
    reason_of,
)
from bastion.events.codec import convert_event
from bastion.events.jetstream import did_of
from bastion.settings import find_data_dir
from bastion.sources.files import items

PE = find_data_dir() / "platform_events"
FILES = sorted(p for p in PE.rglob("*") if p.is_file()) if PE.is_dir() else []
JS = PE / "bluesky_jetstream"


def _rel(p: Path) -> str:
    return str(p.relative_to(PE))


def _expected_records(path: Path) -> int:
    """Source records in a file, counted here independently of the mapper."""
    if path.suffix == ".jsonl":
        return sum(1 for line in path.read_text().splitlines() if line.strip())
    if path.suffix != ".json" or path.name == "manifest.json":
        return 1
    obj = json.loads(path.read_text())
    if "accountMeta" in obj:
        return 1 + len(obj["postRecords"])
    if "ops" in obj:
        return len(obj["ops"])
    if "messages" in obj:
        return sum(len(m["frame"]["body"]["ops"]) if m["frame"]["header"]["t"] == "#commit" else 1
                   for m in obj["messages"])
    groups = [v for v in obj.values() if isinstance(v, dict)]
    if all("events" in g for g in groups):
        return sum(len(g["events"]) for g in groups)
    return sum(len(g["subjectStatuses"]) for g in groups)


def _by_type(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["type"] for e in events)


def test_the_folder_is_there() -> None:
    assert len(FILES) >= 15, f"expected the 15 platform_events files under {PE}"


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_every_file_maps_or_counts_every_record(path: Path) -> None:
    res = map_path(path)
    events, ignored = map_file(path)
    assert [e["id"] for e in events] == [e["id"] for e in res.events] and ignored == res.ignored
    expected = _expected_records(path)
    assert res.records == expected, (res.shape, dict(res.ignored))
    assert res.mapped + sum(res.ignored.values()) == expected, (res.shape, dict(res.ignored))
    assert all(n > 0 for n in res.ignored.values())
    ids = [e["id"] for e in res.events]
    assert len(ids) == len(set(ids)), "event ids must be unique"
    for e in res.events:
        ev = convert_event(e)
        assert type(ev).__name__ != "GenericEvent", e["type"]
        assert 1 <= len(ev.id) <= 128 and ev.actor
        json.dumps(e)  # raw payloads stay JSON


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_mapping_is_stable(path: Path) -> None:
    first, _ = map_file(path)
    again, _ = map_file(path)
    assert first == again


# -- Jetstream ---------------------------------------------------------------------------------------------


def test_expected_v1_numbers() -> None:
    res = map_path(JS / "expected_v1.jsonl")
    types = _by_type(res.events)
    kinds = Counter(e["kind"] for e in res.events if e["type"] == "post.engage")
    assert types["post.create"] == 17
    assert kinds == {"like": 105, "repost": 15}
    assert types["graph.follow"] == 6 and types["graph.block"] == 1 and types["post.delete"] == 1
    # the 3 follow deletes refer to follows created before the capture window: nothing to resolve
    assert types["graph.unfollow"] == 0
    assert res.ignored["delete of unknown app.bsky.graph.follow record"] == 3
    assert res.ignored["identity without handle"] == 1 and res.ignored["account active"] == 1
    assert res.ignored["update in collection app.bsky.actor.status"] == 1
    assert res.ignored["update in collection fm.teal.alpha.actor.status"] == 1
    dids = {json.loads(line)["did"] for line in (JS / "expected_v1.jsonl").read_text().splitlines()}
    assert types["account.create"] == len(dids)  # first sight of each DID
    assert res.records == 152 and res.mapped == 145
    # ts is Jetstream's time_us (ms), not the client's createdAt
    first = json.loads((JS / "expected_v1.jsonl").read_text().splitlines()[0])
    assert res.events[0]["ts"] == first["time_us"] // 1000


def test_golden_v1_reply_post() -> None:
    lines = [json.loads(x) for x in (JS / "golden_v1.jsonl").read_text().splitlines()]
    reply = next(m for m in lines if m["kind"] == "commit" and "reply" in m["commit"].get("record", {}))
    events, ignored = map_file(JS / "golden_v1.jsonl")
    c = reply["commit"]
    post = next(e for e in events if e["type"] == "post.create")
    assert post["id"] == f"{reply['did']}/{c['collection']}/{c['rkey']}/{c['rev']}"
    assert post["actor"] == reply["did"]
    body = post["post"]
    assert body["id"] == f"at://{reply['did']}/app.bsky.feed.post/{c['rkey']}"
    assert body["reply_to"] == c["record"]["reply"]["parent"]["uri"]
    assert body["root"] == c["record"]["reply"]["root"]["uri"]
    assert body["reply_to_author"] == did_of(body["reply_to"]) == "did:plc:j76trmiofvaxxpvx2vnb2vwf"
    assert body["text"] == c["record"]["text"] and body["lang"] == "en"
    types = _by_type(events)
    assert types["post.engage"] == 2 and types["graph.follow"] == 1 and types["graph.block"] == 1
    assert types["account.update"] == 1
    upd = next(e for e in events if e["type"] == "account.update")
    assert upd["profile"]["avatar"].startswith("bafkrei")
    assert ignored["delete in collection org.hypercerts.claim.activity"] == 1


def _facet_values(record: dict[str, Any]) -> tuple[set[str], set[str], set[str]]:
    mentions, links, tags = set(), set(), set()
    for facet in record.get("facets") or []:
        for f in facet["features"]:
            if f["$type"] == "app.bsky.richtext.facet#mention":
                mentions.add(f["did"])
            elif f["$type"] == "app.bsky.richtext.facet#link":
                links.add(f["uri"])
            elif f["$type"] == "app.bsky.richtext.facet#tag":
                tags.add(f["tag"])
    return mentions, links, tags


def _posts_with_records(path: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    events, _ = map_file(path)
    out = []
    for e in events:
        if e["type"] != "post.create":
            continue
        raw = e["raw"]
        out.append((e["post"], raw["commit"]["record"] if "commit" in raw else raw["value"]))
    return out


@pytest.mark.parametrize("name", ["bluesky_jetstream/expected_v1.jsonl", "bluesky_jetstream/golden_v1.jsonl",
                                  "indigo_automod_captures/capture_atprotocom.json",
                                  "indigo_automod_captures/capture_hackerdarkweb.json"])
def test_facets_and_embeds(name: str) -> None:
    posts = _posts_with_records(PE / name)
    assert posts
    for post, record in posts:
        mentions, links, tags = _facet_values(record)
        assert set(post.get("mentions", [])) == mentions
        assert links <= set(post.get("urls", []))
        assert tags | set(record.get("tags") or []) == set(post.get("hashtags", []))
        embed = record.get("embed") or {}
        et = embed.get("$type")
        if et == "app.bsky.embed.external":
            assert embed["external"]["uri"] in post["urls"]
        if et == "app.bsky.embed.record":
            assert post["quote_of"] == embed["record"]["uri"]
            assert post["quote_of_author"] == did_of(embed["record"]["uri"])
        elif et == "app.bsky.embed.recordWithMedia":
            assert post["quote_of"] == embed["record"]["record"]["uri"]
        else:
            assert "quote_of" not in post
        if et == "app.bsky.embed.images":
            assert post["media"] == [i["image"]["ref"]["$link"] for i in embed["images"]]


def test_expected_v1_facet_counts() -> None:
    posts = [p for p, _ in _posts_with_records(JS / "expected_v1.jsonl")]
    assert sum(1 for p in posts if p.get("reply_to")) == 8
    assert sum(1 for p in posts if p.get("hashtags")) == 2
    assert sum(len(p.get("urls", [])) for p in posts) >= 4
    assert sum(1 for p in posts if p.get("media")) == 2
    assert sum(1 for p in posts if p.get("lang")) == 16


# -- automod captures --------------------------------------------------------------------------------------


def test_hackerdarkweb_capture() -> None:
    res = map_path(PE / "indigo_automod_captures" / "capture_hackerdarkweb.json")
    did = "did:plc:suvj7i7gk6vzc7wvwd3gx6zq"
    acc = res.events[0]
    assert acc["type"] == "account.create" and acc["actor"] == did
    assert acc["profile"]["handle"] == "hackerdarkweb.bsky.social"
    assert acc["profile"]["display_name"] == "Hacker_dark_web" and "WhatsApp" in acc["profile"]["bio"]
    posts = [e for e in res.events if e["type"] == "post.create"]
    assert len(posts) == 20 and all(p["actor"] == did for p in posts)
    # the real data: 10 replies to strangers' posts and 10 posts that @-mention strangers (disjoint sets),
    # so every post reaches out to another account
    replies = [p for p in posts if p["post"].get("reply_to")]
    mentioning = [p for p in posts if p["post"].get("mentions")]
    assert len(replies) == 10 and len(mentioning) == 10
    assert all(p["post"]["reply_to_author"] != did for p in replies)
    assert all(did not in p["post"]["mentions"] for p in mentioning)
    assert {p["id"] for p in replies} | {p["id"] for p in mentioning} == {p["id"] for p in posts}
    assert all("WhatsApp" in p["post"]["text"] or "WHATSAPP" in p["post"]["text"] for p in posts)
    assert all(p["post"]["id"].startswith(f"at://{did}/app.bsky.feed.post/") for p in posts)
    # ts comes from the record's createdAt, oldest first, the account before its posts
    ts = [e["ts"] for e in res.events]
    assert ts == sorted(ts)
    assert posts[-1]["ts"] == convert_event({**posts[-1], "ts": "2023-12-07T16:49:34.125Z"}).ts


def test_atprotocom_capture() -> None:
    events, ignored = map_file(PE / "indigo_automod_captures" / "capture_atprotocom.json")
    posts = [e["post"] for e in events if e["type"] == "post.create"]
    assert len(posts) == 20 and not ignored
    assert sum(1 for p in posts if p.get("quote_of")) == 4
    assert sum(1 for p in posts if p.get("reply_to")) == 8
    assert sum(len(p.get("mentions", [])) for p in posts) >= 4
    assert events[0]["profile"]["handle"] == "atproto.com"


# -- raw firehose and relay scenarios ----------------------------------------------------------------------


def test_42_follows_in_one_commit() -> None:
    path = PE / "indigo_firehose_commits" / "firehose_commit_4621332152.json"
    body = json.loads(path.read_text())
    events, ignored = map_file(path)
    follows = [e for e in events if e["type"] == "graph.follow"]
    assert len(follows) == 42 and not ignored
    assert len({e["target"] for e in follows}) == 42
    assert {e["actor"] for e in follows} == {body["repo"]}
    assert all(e["target"].startswith("did:") for e in follows)
    assert [e["id"] for e in follows] == [f"{body['repo']}/{op['path']}/{body['rev']}" for op in body["ops"]]


def test_firehose_blocks_decode_and_verify() -> None:
    for path in sorted((PE / "indigo_firehose_commits").glob("*.json")):
        body = json.loads(path.read_text())
        car = read_car(base64.b64decode(body["blocks"]["$bytes"] + "=="))
        assert car.bad_blocks == 0 and car.roots == [body["commit"]["$link"]]
        for op in body["ops"]:
            rec = decode_dag_cbor(car.blocks[op["cid"]["$link"]])
            assert rec["$type"] == op["path"].split("/")[0]


def test_firehose_repost_and_profile() -> None:
    events, _ = map_file(PE / "indigo_firehose_commits" / "firehose_commit_4621317030.json")
    (repost,) = [e for e in events if e["type"] == "post.engage"]
    assert repost["kind"] == "repost" and repost["post"]["id"].startswith("at://")
    assert repost["post"]["author"] == did_of(repost["post"]["id"])
    events, _ = map_file(PE / "indigo_firehose_commits" / "firehose_commit_4623075231.json")
    assert _by_type(events) == {"account.create": 1, "account.update": 1}


def test_relay_scenarios() -> None:
    rel = PE / "indigo_relay_scenarios"
    events, ignored = map_file(rel / "account_lifecycle.json")
    status = [e for e in events if e["type"] == "account.status"]
    assert [(e["status"], e["by"], e["reason"]) for e in status] == [("deleted", "user", "deleted")]
    assert [e["profile"] for e in events if e["type"] == "account.update"] == [{"handle": "pengua.bsky.social"}]
    assert ignored["relay #sync (repo state reset, no record)"] == 1

    events, ignored = map_file(rel / "deactivation.json")
    assert ignored["relay frame dropped (drop: true)"] == 1
    assert [e["status"] for e in events if e["type"] == "account.status"] == ["deactivated"]
    assert [e["kind"] for e in events if e["type"] == "post.engage"] == ["like", "like", "unlike"]
    assert _by_type(events)["post.create"] == 0 and _by_type(events)["post.delete"] == 1

    events, ignored = map_file(rel / "post_lifecycle.json")
    assert [e["kind"] for e in events if e["type"] == "post.engage"] == ["like", "unlike"]
    assert _by_type(events)["post.create"] == 2 and _by_type(events)["post.delete"] == 1
    assert ignored["collection app.bsky.feed.threadgate"] == 1
    assert ignored["collection app.bsky.feed.postgate"] == 1


def test_account_takedown_frame_matches_jetstream() -> None:
    frame = {"frame": {"header": {"op": 1, "t": "#account"}, "body": {
        "active": False, "did": "did:plc:x", "seq": 9, "status": "takendown", "time": "2025-09-10T15:20:40.439Z"}}}
    m = AtprotoMapper()
    ev = m.relay_frame(frame)[-1]
    assert (ev["type"], ev["status"], ev["by"], ev["reason"]) == ("account.status", "suspended", "platform",
                                                                   "takendown")
    convert_event(ev)


# -- Ozone -------------------------------------------------------------------------------------------------


def test_ozone_events() -> None:
    events, ignored = map_file(PE / "ozone_devenv_fixtures" / "events.json")
    (report,) = events
    assert report["type"] == "report.create" and report["reason"] == "spam"
    assert report["actor"] == "did:plc:ngpnyi7gbt5sliale3ob5l5a"
    assert report["subject"] == {"kind": "account", "id": "did:plc:jttgywq7eusytkmurmjbum6h"}
    assert report["text"] == "Didn't look right to me" and report["id"] == "ozone/event/1"
    assert ignored == {"ozone modEventLabel": 3, "ozone modEventTag": 1, "ozone modEventAcknowledge": 1}
    _, ignored = map_file(PE / "ozone_devenv_fixtures" / "statuses.json")
    assert ignored == {"ozone subject status view (not an event)": 2}


def test_ozone_takedown_and_post_report() -> None:
    views = [
        {"id": 7, "event": {"$type": "tools.ozone.moderation.defs#modEventTakedown", "comment": "spam ring"},
         "subject": {"$type": "com.atproto.admin.defs#repoRef", "did": "did:plc:bad"},
         "createdBy": "did:plc:mod", "createdAt": "2024-05-13T15:00:00Z"},
        {"id": 8, "event": {"$type": "tools.ozone.moderation.defs#modEventReport",
                            "reportType": "tools.ozone.report.defs#reasonHarassmentHateSpeech"},
         "subject": {"$type": "com.atproto.repo.strongRef", "uri": "at://did:plc:bad/app.bsky.feed.post/1",
                     "cid": "bafy"}, "createdBy": "did:plc:r", "createdAt": "2024-05-13T14:00:00Z"},
    ]
    res = map_bytes("events.json", json.dumps({"events": views}).encode())
    report, takedown = res.events
    assert report["subject"] == {"kind": "post", "id": "at://did:plc:bad/app.bsky.feed.post/1"}
    assert report["reason"] == "hate"
    assert (takedown["type"], takedown["actor"], takedown["status"], takedown["by"]) == (
        "account.status", "did:plc:bad", "suspended", "platform")
    for e in res.events:
        convert_event(e)


@pytest.mark.parametrize(("reason_type", "reason"), [
    ("com.atproto.moderation.defs#reasonSpam", "spam"),
    ("com.atproto.moderation.defs#reasonRude", "abuse"),
    ("com.atproto.moderation.defs#reasonMisleading", "misinformation"),
    ("com.atproto.moderation.defs#reasonSexual", "other"),
    ("com.atproto.moderation.defs#reasonViolation", "other"),
    ("com.atproto.moderation.defs#reasonOther", "other"),
    ("tools.ozone.report.defs#reasonHarassmentTroll", "harassment"),
    ("tools.ozone.report.defs#reasonHarassmentHateSpeech", "hate"),
    ("tools.ozone.report.defs#reasonMisleadingBot", "bot"),
    ("tools.ozone.report.defs#reasonMisleadingSpam", "spam"),
    ("tools.ozone.report.defs#reasonMisleadingImpersonation", "impersonation"),
    ("tools.ozone.report.defs#reasonMisleadingElections", "misinformation"),
    ("tools.ozone.report.defs#reasonChildSafetyHarassment", "harassment"),
    ("tools.ozone.report.defs#reasonRuleBanEvasion", "other"),
    ("tools.ozone.report.defs#reasonSelfHarmContent", "other"),
    ("something.new#reasonWhatever", "other"),
    (None, "other"),
])
def test_reason_normalisation(reason_type: str | None, reason: str) -> None:
    assert reason_of(reason_type) == reason


# -- decoder and robustness --------------------------------------------------------------------------------


@pytest.mark.parametrize("hexdata", [
    "9f01ff",            # indefinite array
    "0101",              # trailing bytes
    "c10100",            # tag 1
    "a10102",            # integer map key
    "5801",              # truncated byte string
    "d82a4101",          # tag 42 without the 0x00 prefix
    "62ffff",            # invalid UTF-8
    "1c",                # reserved additional info
])
def test_cbor_rejects_malformed(hexdata: str) -> None:
    with pytest.raises(CborError):
        decode_dag_cbor(bytes.fromhex(hexdata))


def test_cbor_values() -> None:
    assert decode_dag_cbor(bytes.fromhex("3863")) == -100
    assert decode_dag_cbor(bytes.fromhex("1b000000e8d4a51000")) == 1_000_000_000_000
    assert decode_dag_cbor(bytes.fromhex("f93c00")) == 1.0
    assert decode_dag_cbor(bytes.fromhex("fb3ff199999999999a")) == 1.1
    assert decode_dag_cbor(bytes.fromhex("4401020304")) == {"$bytes": "AQIDBA"}
    assert decode_dag_cbor(bytes.fromhex("6449455446")) == "IETF"
    nested = bytes.fromhex("81" * 300 + "00")
    with pytest.raises(CborError):
        decode_dag_cbor(nested)


def test_damaged_inputs_never_raise() -> None:
    body = json.loads((PE / "indigo_firehose_commits" / "firehose_commit_4621317030.json").read_text())
    blob = body["blocks"]["$bytes"]
    for cut in range(0, len(blob), 97):
        damaged = {**body, "blocks": {"$bytes": blob[:cut]}}
        res = map_bytes("c.json", json.dumps(damaged).encode())
        assert res.mapped + sum(res.ignored.values()) == res.records == 1
    car_bytes = base64.b64decode(blob + "==")
    record = read_car(car_bytes).blocks[body["ops"][0]["cid"]["$link"]]
    at = car_bytes.index(record) + len(record) - 3
    flipped = bytearray(car_bytes)
    flipped[at] ^= 0xFF
    damaged = {**body, "blocks": {"$bytes": base64.b64encode(bytes(flipped)).decode()}}
    res = map_bytes("c.json", json.dumps(damaged).encode())
    assert res.records == 1 and sum(res.ignored.values()) == 1  # the record block no longer verifies
    for data in (b"", b"\x00\xff", b"[1,2]", b"{}", b"not json\n{", b'{"kind":1}\n', b"\x28\xb5\x2f\xfd junk"):
        res = map_bytes("x", data)
        assert res.mapped + sum(res.ignored.values()) == res.records


def test_atproto_file_source() -> None:
    got = list(items(PE / "indigo_firehose_commits" / "firehose_commit_4621332152.json", "atproto"))
    assert all(i.event is not None for i in got)
    assert Counter(i.event.type for i in got if i.event) == {"graph.follow": 42, "account.create": 1}


# -- the CLI -----------------------------------------------------------------------------------------------


def test_replay_cli_on_real_jetstream(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "replay", str(JS / "expected_v1.jsonl"), "--format", "jetstream",
         "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("actions.jsonl", "scores.jsonl", "clusters.jsonl", "queue.jsonl", "summary.json",
                 "dead_letters.jsonl"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert isinstance(summary, dict)
    assert (out / "dead_letters.jsonl").read_text().strip() == ""
