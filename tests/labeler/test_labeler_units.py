"""The labeler's parts: the DAG-CBOR encoder against cbor2's canonical mode and the project's own DAG-CBOR
decoder, signing keys (low-S, both curves, key files, multibase), the append-only label log, the value map,
the settings, and the labels' shape against the real label captures in ../shared."""

from __future__ import annotations

import json
import re
import sqlite3
import time

import cbor2
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from tests.conftest import SPEC
from tests.labeler.protocol_client import CTS_RE, check_lexicon, decode_frame, verify_sig
from typer.testing import CliRunner

from bastion.actions.effects import AppliedAction, Subject
from bastion.app import build_runtime
from bastion.cli import app as cli_app
from bastion.events.atproto import decode_dag_cbor
from bastion.labeler import cbor
from bastion.labeler.keys import LabelerKeyError, SigningKey, verify, write_new_key
from bastion.labeler.labels import (
    LabelError,
    ValueMap,
    error_frame,
    labels_frame,
    sign_label,
    subject_uri,
    to_json,
    unsigned_label,
)
from bastion.labeler.log import LabelLog, QueryError
from bastion.labeler.sink import LabelerSink
from bastion.settings import Settings, SettingsError

LABELER = "did:plc:bastionlabelertest2cyw7q4"

values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(max_size=30)
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20)


@hsettings(max_examples=300, deadline=None)
@given(values)
def test_encoder_matches_canonical_cbor_and_round_trips(value):
    data = cbor.encode(value)
    assert data == cbor2.dumps(value, canonical=True)
    assert cbor2.loads(data) == value


def test_map_keys_sort_length_first_then_bytewise():
    data = cbor.encode({"bb": 1, "a": 2, "ab": 3, "c": 4, "aaa": 5})
    assert list(cbor2.loads(data)) == ["a", "c", "ab", "bb", "aaa"]
    assert cbor.encode({"op": 1, "t": "#labels"}).hex() == "a2617467236c6162656c73626f7001"
    for bad in ({1: 2}, float("nan"), object(), 2**64):
        with pytest.raises(cbor.CborEncodeError):
            cbor.encode(bad)


def test_frames_decode_with_the_projects_dag_cbor_decoder():
    key = SigningKey.generate()
    label = sign_label(unsigned_label(LABELER, "did:plc:alicealicealice7x3k2m5qq", "spam",
                                      "2026-12-01T10:00:00.123Z"), key)
    frame = labels_frame(7, [label])
    header_len = len(cbor.encode({"op": 1, "t": "#labels"}))
    assert decode_dag_cbor(frame[:header_len], json_form=False) == {"op": 1, "t": "#labels"}
    body = decode_dag_cbor(frame[header_len:], json_form=False)
    assert body["seq"] == 7 and bytes(body["labels"][0]["sig"]) == label["sig"]
    header, err = decode_frame(error_frame("FutureCursor", "Cursor in the future."))
    assert header == {"op": -1} and err == {"error": "FutureCursor", "message": "Cursor in the future."}


@pytest.mark.parametrize("curve,prefix", [("k256", "did:key:zQ3s"), ("p256", "did:key:zDnae")])
def test_signatures_are_compact_low_s_and_verify(curve, prefix):
    key = SigningKey.generate(curve)
    assert key.did_key.startswith(prefix)
    order = key.curve.order
    for i in range(200):
        msg = f"message {i}".encode()
        sig = key.sign(msg)
        assert len(sig) == 64 and int.from_bytes(sig[32:], "big") <= order // 2
        assert verify(key.did_key, msg, sig) and not verify(key.did_key, msg + b"!", sig)
        high = sig[:32] + (order - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")
        assert not verify(key.did_key, msg, high)          # the malleable twin is refused, as atproto does
    again = SigningKey.from_text(key.private_multibase())
    assert again.did_key == key.did_key and SigningKey.from_text(key.pem().decode()).did_key == key.did_key


def test_key_files_and_bad_keys(tmp_path):
    path = tmp_path / "k" / "labeler.pem"
    key = write_new_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert SigningKey.from_file(path).did_key == key.did_key
    with pytest.raises(LabelerKeyError, match="exists"):
        write_new_key(path)
    (tmp_path / "junk.pem").write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    for bad in ("junk", "zzzz"):
        with pytest.raises(LabelerKeyError):
            SigningKey.from_text(bad)
    with pytest.raises(LabelerKeyError, match="junk.pem"):
        SigningKey.from_file(tmp_path / "junk.pem")
    with pytest.raises(LabelerKeyError, match="cannot read"):
        SigningKey.from_file(tmp_path / "missing.pem")


def test_cli_refuses_clearly(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli_app, ["labeler", "keygen", "--out", str(tmp_path / "k.pem"), "--curve", "ed25519"])
    assert res.exit_code == 2 and "unknown curve" in res.output
    for args in (["labeler", "--help"], ["labeler", "keygen", "--help"], ["labeler", "serve", "--help"],
                 ["labeler", "pubkey", "--help"]):
        assert runner.invoke(cli_app, args).exit_code == 0


def test_label_log_is_append_only_and_sequenced(tmp_path):
    key = SigningKey.generate()
    log = LabelLog(tmp_path / "labels.db")
    assert log.head() == 0
    seqs = [log.append(sign_label(unsigned_label(LABELER, f"did:plc:user{i:020d}", "spam",
                                                 "2026-12-01T10:00:00.000Z"), key)) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5] and log.head() == 5
    for sql in ("UPDATE labels SET val = 'x'", "DELETE FROM labels"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            log.db.execute(sql)
    assert [s for s, _ in log.since(3)] == [4, 5]
    with pytest.raises(QueryError):
        log.query(["at://x*y"])
    log.close()
    reopened = LabelLog(tmp_path / "labels.db")
    assert reopened.head() == 5 and reopened.append(reopened.since(0)[0][1]) == 6


def test_value_map_and_subject_uris():
    vm = ValueMap({"abuse": "rude", "hate": "-"})
    assert (vm.value_of("spam"), vm.value_of("abuse"), vm.value_of("hate"), vm.value_of("reply_fanout")) == \
        ("spam", "rude", None, None)
    assert ValueMap(publish_unmapped=True).value_of("reply_fanout") == "reply-fanout"
    for bad in ({"x": "Has Spaces"}, {"x": "a" * 129}, {"x": 3}):
        with pytest.raises(LabelError):
            ValueMap(bad)  # type: ignore[arg-type]
    assert subject_uri("account", "did:plc:alicealicealice7x3k2m5qq") == "did:plc:alicealicealice7x3k2m5qq"
    assert subject_uri("post", "at://did:plc:a/app.bsky.feed.post/3k2") == "at://did:plc:a/app.bsky.feed.post/3k2"
    assert [subject_uri(k, i) for k, i in (("account", "u1"), ("post", "p1"), ("ip", "10.0.0.1"),
                                            ("account", "at://did:plc:a"))] == [None] * 4


def test_settings_and_misconfiguration_are_clear(tmp_path):
    s = Settings.load(env={"BASTION_LABELER_ENABLED": "yes", "BASTION_LABELER_VALUES": "abuse=rude, hate=-"})
    assert s.labeler_enabled and s.labeler_values == {"abuse": "rude", "hate": "-"}
    with pytest.raises(SettingsError, match="NAME=VALUE"):
        Settings.load(env={"BASTION_LABELER_VALUES": "abuse"})
    base = {"db_path": tmp_path / "b.db", "labeler_enabled": True}
    key = tmp_path / "k.pem"
    write_new_key(key)
    for extra, message in (({}, "labeler_did"), ({"labeler_did": "alice"}, "not a DID"),
                           ({"labeler_did": LABELER}, "needs a key"),
                           ({"labeler_did": LABELER, "labeler_key_path": tmp_path / "no.pem"}, "cannot read"),
                           ({"labeler_did": LABELER, "labeler_key_path": key, "labeler_values": "x=Bad Value"},
                            "labeler_values")):
        with pytest.raises(SettingsError, match=message):
            build_runtime(Settings.load(env={}, **base, **extra), rules_dir=False, models=False,
                          clusters_on=False, review=False)
    env_key = SigningKey.generate()
    rt = build_runtime(Settings.load(env={"BASTION_LABELER_KEY": env_key.private_multibase()}, **base,
                                     labeler_did=LABELER), rules_dir=False, models=False, clusters_on=False,
                       review=False)
    assert rt.labeler.key.did_key == env_key.did_key
    assert rt.labeler.log.path == tmp_path / "labels.db"
    rt.close()


# -- the real label captures in ../shared ---------------------------------------------------------------------
def _action(action: str, did: str, label: str, n: int, expires: str | None = None) -> AppliedAction:
    return AppliedAction(id=f"a{n}", ts="2026-12-01T10:00:00.000Z", event_id=f"e{n}", subject=Subject("account", did),
                         action=action, source="reviewer:admin", label=label, expires=expires)


def test_labels_have_the_shape_of_the_real_bluesky_moderation_labels(tmp_path):
    """platform-formats.md 2.3 quotes a real pair from Bluesky's moderation service (public C# test vectors):
    our add and negation carry exactly its fields, with the same JSON encodings and datetime form."""
    text = (SPEC / "platform-formats.md").read_text()
    real = json.loads(re.search(r'`(\{"ver":1,"src":"did:plc:ar7c4by46qjdydhdevvrndac".*?\}\})`', text).group(1))
    real_neg_fields = set(re.search(r'a negation `\{…,(.*?)\}`', text).group(1).replace('"', "").split(","))
    key = SigningKey.generate()
    sink = LabelerSink(LabelLog(tmp_path / "l.db"), key, LABELER, ValueMap({"takedown": "!takedown"}))
    sink.write_action(_action("label.add", real["uri"], "takedown", 1))
    sink.write_action(_action("label.remove", real["uri"], "takedown", 2))
    (_, add), (_, neg) = sink.log.since(0)
    add_json, neg_json = to_json(add), to_json(neg)
    assert set(add_json) == set(real)
    assert {k: type(v) for k, v in add_json.items()} == {k: type(v) for k, v in real.items()}
    assert set(add_json["sig"]) == set(real["sig"]) == {"$bytes"}
    assert CTS_RE.match(real["cts"]) and CTS_RE.match(add_json["cts"])
    named = {f.split(":")[0] for f in real_neg_fields} - {"…"}
    assert named == {"uri", "val", "neg", "cts"} and named <= set(neg_json) and neg_json["neg"] is True
    assert set(neg_json) - set(add_json) == {"neg"}
    for label in (add, neg):
        check_lexicon(label)
        verify_sig(label, key.did_key)


def test_ozone_label_events_become_the_same_labels(tmp_path, data_dir):
    """The Ozone dev-env fixture's modEventLabel events (createLabelVals / negateLabelVals on an account), as
    Bastion label actions, publish one label per value with the subject's DID and neg for the negations."""
    fixture = json.loads((data_dir / "platform_events" / "ozone_devenv_fixtures" / "events.json").read_text())
    events = sorted((e for e in fixture["carla"]["events"] if e["event"]["$type"].endswith("#modEventLabel")),
                    key=lambda e: e["id"])
    assert len(events) == 3
    vals = {v for e in events for v in e["event"]["createLabelVals"] + e["event"]["negateLabelVals"]}
    key = SigningKey.generate("p256")
    sink = LabelerSink(LabelLog(tmp_path / "l.db"), key, LABELER, ValueMap({v: v for v in vals}))
    expected = []
    n = 0
    for e in events:
        did = e["subject"]["did"]
        for v in e["event"]["createLabelVals"]:
            n += 1
            sink.write_action(_action("label.add", did, v, n))
            expected.append((did, v, False))
        for v in e["event"]["negateLabelVals"]:
            n += 1
            sink.write_action(_action("label.remove", did, v, n))
            expected.append((did, v, True))
        assert CTS_RE.match(e["createdAt"])       # Ozone writes the same datetime form as our cts
    got = [(lb["uri"], lb["val"], lb.get("neg", False)) for _, lb in sink.log.since(0)]
    assert got == expected and any(neg for *_, neg in got)
    active = set()
    for uri, val, neg in got:
        (active.discard if neg else active.add)((uri, val))
    assert active == {("did:plc:jttgywq7eusytkmurmjbum6h", "term"), ("did:plc:jttgywq7eusytkmurmjbum6h",
                                                                        "impersonation")}


def test_expired_and_shadow_label_actions_are_not_published(tmp_path):
    sink = LabelerSink(LabelLog(tmp_path / "l.db"), SigningKey.generate(), LABELER)
    did = "did:plc:alicealicealice7x3k2m5qq"
    past = "2026-01-01T00:00:00.000Z"
    future = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 86_400))
    sink.write_action(_action("label.add", did, "spam", 1, expires=past))
    shadow = _action("label.add", did, "spam", 2)
    shadow.stage = "shadow"
    sink.write_action(shadow)
    sink.write_action(_action("label.add", did, "spam", 3, expires=future))
    assert sink.skipped == {"expired before publication": 1, "shadow": 1}
    ((_, label),) = sink.log.since(0)
    assert label["exp"] == future
