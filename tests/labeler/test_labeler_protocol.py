"""The atproto labeler output end to end, against real servers: events go through the engine (the API's
ingest, or a replay of the real Jetstream capture), a rule adds and removes labels, and a client speaking the
atproto label protocol (protocol_client: cbor2, its own did:key decoding and signature check) reads them from
subscribeLabels (replay from a cursor, then live) and queryLabels (patterns, sources, paging)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from tests.labeler.protocol_client import check_lexicon, decode_frame, from_json, verify_sig
from typer.testing import CliRunner
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from bastion.app import build_runtime
from bastion.cli import app as cli_app
from bastion.labeler.log import LabelLog
from bastion.settings import Settings
from bastion.sources.files import items
from bastion.web.server import build_web_app, uvicorn_options

SRC = Path(__file__).resolve().parents[2] / "src"
LABELER = "did:plc:bastionlabelertest2cyw7q4"
ALICE = "did:plc:alicealicealice7x3k2m5qq"
BOB = "did:plc:bobbobbobbobbob4xq2z7wtu"
RULES = """
rules:
  - name: SellsFollowers
    description: sells followers
    owner: test
    events: [post.create]
    stage: enforce
    when: matches(event.text, "cheap followers")
    effects:
      - {label: spam}
      - {label: spam, subject: post}
      - {label: internal_only}
  - name: Apology
    description: the author says sorry
    owner: test
    events: [post.create]
    stage: enforce
    when: matches(event.text, "sorry") and has_label("spam")
    effects:
      - {unlabel: spam}
  - name: LimitedOffer
    description: scam phrase
    owner: test
    events: [post.create]
    stage: enforce
    when: matches(event.text, "limited offer")
    effects:
      - {label: scam_phrase, expires: 7d}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live(app: Any, settings: Settings) -> Iterator[str]:
    settings = replace(settings, port=_free_port())
    srv = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(settings)))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"127.0.0.1:{settings.port}"
    finally:
        srv.should_exit = True
        th.join(timeout=10)


def keygen(path: Path, curve: str = "k256") -> str:
    """``bastion labeler keygen``; the published did:key it prints."""
    res = CliRunner().invoke(cli_app, ["labeler", "keygen", "--out", str(path), "--curve", curve])
    assert res.exit_code == 0, res.output
    assert path.stat().st_mode & 0o777 == 0o600
    return next(line.split(": ", 1)[1] for line in res.stdout.splitlines() if line.startswith("did:key:"))


def recv_frames(ws: Any, n: int, timeout: float = 10.0) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    out = []
    for _ in range(n):
        msg = ws.recv(timeout=timeout)
        assert isinstance(msg, bytes), "event-stream frames are binary"
        out.append(decode_frame(msg))
    return out


def no_frame(ws: Any, wait: float = 0.6) -> None:
    with pytest.raises(TimeoutError):
        ws.recv(timeout=wait)


def post(eid: str, actor: str, text: str, ts: int) -> dict[str, Any]:
    rkey = f"3l{eid}xyz"
    return {"id": eid, "type": "post.create", "ts": ts, "actor": actor,
            "post": {"id": f"at://{actor}/app.bsky.feed.post/{rkey}", "text": text}}


def check_stream(frames: list[tuple[dict[str, Any], dict[str, Any]]], did_key: str) -> list[tuple[int, dict]]:
    out = []
    for header, body in frames:
        assert header == {"op": 1, "t": "#labels"}
        assert set(body) == {"seq", "labels"} and isinstance(body["seq"], int)
        for label in body["labels"]:
            check_lexicon(label)
            verify_sig(label, did_key)
            assert label["src"] == LABELER
            out.append((body["seq"], label))
    return out


@pytest.fixture()
def labeled_server(tmp_path: Path) -> Iterator[tuple[str, httpx.Client, str, Any]]:
    did_key = keygen(tmp_path / "secrets" / "labeler.pem")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "labels.yaml").write_text(RULES)
    settings = Settings.load(env={}, db_path=tmp_path / "bastion.db", rules_dir=tmp_path / "rules",
                             labeler_enabled=True, labeler_did=LABELER,
                             labeler_key_path=tmp_path / "secrets" / "labeler.pem")
    runtime = build_runtime(settings, "api", models=False, clusters_on=False)
    app = build_web_app(settings, runtime)
    key = app.state.keys.create("ingest", "ingest")
    with live(app, settings) as host, httpx.Client(base_url=f"http://{host}",
                                                   headers={"Authorization": f"Bearer {key}"}) as client:
        yield host, client, did_key, runtime
    runtime.close()


def ingest(client: httpx.Client, *events: dict[str, Any]) -> None:
    r = client.post("/v1/events", json=list(events))
    assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text


def test_subscribe_replays_from_cursor_then_streams_live_labels_and_negations(labeled_server):
    host, client, did_key, runtime = labeled_server
    t = int(time.time() * 1000) - 120_000
    ingest(client, post("e1", ALICE, "cheap followers, dm me", t), post("e2", "u7", "cheap followers", t + 1000))
    alice_post = f"at://{ALICE}/app.bsky.feed.post/3le1xyz"

    with connect(f"ws://{host}/xrpc/com.atproto.label.subscribeLabels?cursor=0") as ws:
        replayed = check_stream(recv_frames(ws, 2), did_key)
        assert [s for s, _ in replayed] == [1, 2]
        assert {(lb["uri"], lb["val"]) for _, lb in replayed} == {(ALICE, "spam"), (alice_post, "spam")}
        assert not any("neg" in lb for _, lb in replayed)
        no_frame(ws)   # u7 has no DID and internal_only is not a published label: nothing else was logged

        ingest(client, post("e3", ALICE, "sorry everyone", t + 2000))       # the rule removes the label
        (seq, neg), = check_stream(recv_frames(ws, 1), did_key)
        assert seq == 3 and neg["neg"] is True and (neg["uri"], neg["val"]) == (ALICE, "spam")
        assert neg["cts"] >= replayed[0][1]["cts"]

        ingest(client, post("e4", BOB, "limited offer today", t + 3000))
        (seq, scam), = check_stream(recv_frames(ws, 1), did_key)
        assert seq == 4 and scam["val"] == "scam" and scam["uri"] == BOB
        exp_ms = time.mktime(time.strptime(scam["exp"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        assert abs(exp_ms * 1000 - (t + 3000 + 7 * 86_400_000)) < 1000      # 7d after the event

    skipped = runtime.labeler.skipped
    assert skipped["unmapped label"] >= 1 and skipped["account without an atproto id"] == 1

    with connect(f"ws://{host}/xrpc/com.atproto.label.subscribeLabels?cursor=2") as ws:
        assert [s for s, _ in check_stream(recv_frames(ws, 2), did_key)] == [3, 4]
        no_frame(ws)

    with connect(f"ws://{host}/xrpc/com.atproto.label.subscribeLabels") as ws:   # no cursor: live only
        no_frame(ws)
        ingest(client, post("e5", BOB, "cheap followers again", t + 4000))
        fresh = check_stream(recv_frames(ws, 2), did_key)
        assert [s for s, _ in fresh] == [5, 6]


def test_future_and_bad_cursors_get_error_frames(labeled_server):
    host, client, _did_key, _rt = labeled_server
    ingest(client, post("e1", ALICE, "cheap followers", int(time.time() * 1000) - 60_000))
    for cursor, error in (("3", "FutureCursor"), ("abc", "InvalidRequest"), ("-1", "InvalidRequest")):
        with connect(f"ws://{host}/xrpc/com.atproto.label.subscribeLabels?cursor={cursor}") as ws:
            header, body = decode_frame(ws.recv(timeout=5))
            assert header == {"op": -1}
            assert body["error"] == error and body["message"]
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=5)
    with connect(f"ws://{host}/xrpc/com.atproto.label.subscribeLabels?cursor=2") as ws:   # the head is fine
        no_frame(ws)


def test_query_labels_patterns_sources_and_paging(labeled_server):
    host, client, did_key, _rt = labeled_server
    t = int(time.time() * 1000) - 120_000
    ingest(client, post("e1", ALICE, "cheap followers", t), post("e2", BOB, "cheap followers", t + 1),
           post("e3", ALICE, "sorry", t + 2))
    q = "/xrpc/com.atproto.label.queryLabels"
    pub = httpx.Client(base_url=f"http://{host}")          # public route: no key

    def get(**params: Any) -> dict[str, Any]:
        r = pub.get(q, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        for label in body["labels"]:
            label = from_json(label)
            check_lexicon(label)
            verify_sig(label, did_key)
        return body

    every = get(uriPatterns="*", limit=250)["labels"]
    assert len(every) == 5
    exact = get(uriPatterns=ALICE)["labels"]
    assert [(lb["val"], lb.get("neg", False)) for lb in exact] == [("spam", False), ("spam", True)]
    posts = get(uriPatterns=f"at://{ALICE}/*")["labels"]
    assert [lb["uri"] for lb in posts] == [f"at://{ALICE}/app.bsky.feed.post/3le1xyz"]
    both = get(uriPatterns=[ALICE, f"at://{BOB}/*"])["labels"]
    assert {lb["uri"] for lb in both} == {ALICE, f"at://{BOB}/app.bsky.feed.post/3le2xyz"}
    assert get(uriPatterns="*", sources="did:plc:someoneelse0000000000000")["labels"] == []
    assert len(get(uriPatterns="*", sources=LABELER)["labels"]) == 5
    assert get(uriPatterns="at://did:plc:nobody*")["labels"] == []

    pages, cursor = [], None
    while True:
        body = get(uriPatterns="*", limit=2, **({"cursor": cursor} if cursor else {}))
        if not body["labels"]:
            assert "cursor" not in body
            break
        pages.append(body["labels"])
        cursor = body["cursor"]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [lb["sig"] for p in pages for lb in p] == [lb["sig"] for lb in every]

    for params in ({}, {"uriPatterns": "at://*/x"}, {"uriPatterns": "*", "limit": "0"},
                   {"uriPatterns": "*", "limit": "251"}, {"uriPatterns": "*", "cursor": "abc"}):
        r = pub.get(q, params=params)
        assert r.status_code == 400 and r.json()["error"] == "InvalidRequest" and r.json()["message"], params


def test_query_and_stream_carry_the_same_signed_bytes(labeled_server):
    host, client, did_key, _rt = labeled_server
    ingest(client, post("e1", ALICE, "cheap followers", int(time.time() * 1000) - 60_000))
    listed = [from_json(lb) for lb in httpx.get(f"http://{host}/xrpc/com.atproto.label.queryLabels",
                                                params={"uriPatterns": "*"}).json()["labels"]]
    with connect(f"ws://{host}/xrpc/com.atproto.label.subscribeLabels?cursor=0") as ws:
        streamed = [lb for _, lb in check_stream(recv_frames(ws, 2), did_key)]
    assert listed == streamed


def test_standalone_serve_streams_labels_a_replay_of_the_real_jetstream_capture_writes(tmp_path, data_dir):
    """`bastion labeler serve` (its own process) serves the log while a replay of the real Jetstream capture
    in this process labels posts: the labels reach the subscriber live, with the capture's DIDs and at:// URIs."""
    key_path = tmp_path / "labeler.pem"
    keygen(key_path, curve="p256")
    db = tmp_path / "labels.db"
    env = {**os.environ, "PYTHONPATH": str(SRC), "BASTION_LABELER_KEY_PATH": str(key_path),
           "BASTION_LABELER_DB_PATH": str(db), "BASTION_DB_PATH": str(tmp_path / "bastion.db"),
           "BASTION_LOG_JSON": "false"}
    pubkey = subprocess.run([sys.executable, "-m", "bastion.cli", "labeler", "pubkey"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert pubkey.returncode == 0, pubkey.stderr
    did_key = pubkey.stdout.split()[1]
    assert did_key.startswith("did:key:zDnae")                 # P-256 keys' did:key prefix
    LabelLog(db).close()                                       # the log exists before the server opens it
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bastion.cli", "labeler", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/xrpc/_health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        capture = data_dir / "platform_events" / "bluesky_jetstream" / "expected_v1.jsonl"
        posts = {}
        for line in capture.read_text().splitlines():
            msg = json.loads(line)
            c = msg.get("commit") or {}
            if c.get("operation") == "create" and c.get("collection") == "app.bsky.feed.post":
                posts[f"at://{msg['did']}/app.bsky.feed.post/{c['rkey']}"] = msg["did"]
        assert len(posts) == 17
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "r.yaml").write_text(
            "rules:\n  - name: EveryPost\n    description: every post\n    owner: test\n"
            "    events: [post.create]\n    stage: enforce\n    when: event.text_len >= 0\n"
            "    effects:\n      - {label: seen, subject: post}\n")
        settings = Settings.load(env={}, db_path=tmp_path / "engine.db", labeler_enabled=True, labeler_did=LABELER,
                                 labeler_key_path=key_path, labeler_db_path=db, labeler_values="seen=seen-post")
        with connect(f"ws://127.0.0.1:{port}/xrpc/com.atproto.label.subscribeLabels?cursor=0") as ws:
            no_frame(ws, 0.3)
            runtime = build_runtime(settings, rules_dir=tmp_path / "rules", models=False, clusters_on=False)
            runtime.run(items(capture, "jetstream"))
            runtime.close()
            got = check_stream(recv_frames(ws, len(posts)), did_key)
            no_frame(ws)
        assert [s for s, _ in got] == list(range(1, len(posts) + 1))
        assert {lb["uri"] for _, lb in got} == set(posts)
        assert {lb["val"] for _, lb in got} == {"seen-post"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
