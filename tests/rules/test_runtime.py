"""The rules detector inside the engine: counters written once per event, dry runs write nothing, shadow rules
never enforce, hot reload while events flow, the file watcher, backtest and its diff, and the default pack."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from bastion.engine import Engine
from bastion.events.codec import convert_event
from bastion.rules import RulesDetector
from bastion.rules.backtest import backtest
from bastion.rules.fixtures import CollectSink, rules_without_tests, run_fixtures
from bastion.rules.watch import RulesWatcher
from bastion.state.memory import MemoryState

REPO = Path(__file__).resolve().parents[2]

BURST = """\
counters:
  - {{name: posts, events: [post.create]}}
rules:
  - name: Burst
    description: burst of posts
    owner: t
    events: [post.create]
    stage: {stage}
    when: count("posts", key=actor.id, window="1m") >= {n}
    effects: [{{label: burst, expires: 1h}}, {{hide: post}}]
  - name: BurstTwin
    description: reads the same counter
    owner: t
    events: [post.create]
    stage: {stage}
    when: count("posts", key=actor.id, window="1m") >= 1000
    effects: [{{label: never}}]
"""


T0 = 1_795_132_800_000  # 2026-11-20T00:00:00Z: event times must lie in the decoders' window


def post(i: int, actor: str = "u1", ts: int | None = None):
    return convert_event({"id": f"e{i}", "type": "post.create", "ts": T0 + (ts if ts is not None else i * 1000),
                          "actor": actor, "post": {"id": f"p{i}", "text": "hi"}})


def engine_for(d: Path, registry) -> tuple[Engine, RulesDetector, CollectSink]:
    det = RulesDetector.from_dir(d, registry)
    sink = CollectSink()
    return Engine(MemoryState(), registry, [det], sinks=[sink]), det, sink


def test_counter_counts_each_event_once_and_includes_it(write_rules, registry) -> None:
    d = write_rules(BURST.format(stage="enforce", n=3))
    eng, det, sink = engine_for(d, registry)
    results = [eng.process(post(i)) for i in range(4)]
    # the 3rd post sees itself (count == 3): label + hide; the 4th hides its post, and its label.add is not
    # re-emitted (the label is still active on the account)
    assert [len(r or []) for r in results] == [0, 0, 2, 1]
    assert eng.process(post(3)) is None  # a redelivered event has no second effect
    assert eng.state.counters.count("posts[actor.id]", "u1", 60_000, T0 + 3000) == 4  # shared by both rules: once
    ev = sink.actions[0].evidence
    assert ev["count('posts', key=actor.id, window='1m')"] == 3


def test_dry_run_writes_nothing_but_counts_the_event(write_rules, registry) -> None:
    d = write_rules(BURST.format(stage="enforce", n=3))
    eng, det, _ = engine_for(d, registry)
    eng.process(post(0))
    eng.process(post(1))
    effects, _ = eng.check(post(2))
    assert {e.action for e in effects} == {"label.add", "post.hide"}
    assert eng.state.counters.count("posts[actor.id]", "u1", 60_000, T0 + 2000) == 2


def test_shadow_rules_are_recorded_but_not_enforced(write_rules, registry) -> None:
    d = write_rules(BURST.format(stage="shadow", n=1))
    eng, det, sink = engine_for(d, registry)
    applied = eng.process(post(0))
    assert applied == []
    assert {a.stage for a in sink.actions} == {"shadow"}
    assert not eng.state.labels.has("account", "u1", "burst", T0)
    assert det.metrics()["rules_detail"]["Burst"]["hits"] == 1


def test_hot_reload_while_events_flow(write_rules, registry, tmp_path) -> None:
    d = write_rules(BURST.format(stage="enforce", n=10_000))
    eng, det, sink = engine_for(d, registry)
    stop = threading.Event()
    processed = []

    def feed() -> None:
        i = 0
        while not stop.is_set() and i < 200_000:
            eng.process(post(i, actor=f"u{i % 50}", ts=i))
            processed.append(i)
            i += 1

    t = threading.Thread(target=feed)
    t.start()
    try:
        time.sleep(0.2)
        old = det.ruleset.version
        # a broken set is refused and the running one stays
        (d / "r.yaml").write_text(BURST.format(stage="enforce", n=2).replace("actor.id", "actor.idd", 1))
        ok, msg = det.reload()
        assert not ok and "actor.idd" in msg and det.ruleset.version == old and det.last_error
        # a valid set swaps in; metrics carry over
        hits_before = det.metrics()["rules_detail"]["Burst"]["evals"]
        (d / "r.yaml").write_text(BURST.format(stage="enforce", n=2))
        ok, version = det.reload()
        assert ok and version != old and det.ruleset.version == version
        assert det.metrics()["rules_detail"]["Burst"]["evals"] >= hits_before
        time.sleep(0.2)
    finally:
        stop.set()
        t.join()
    assert eng.stats.detector_errors == {}
    assert eng.stats.events == len(processed)  # nothing dropped, nothing twice
    assert any(a.source == "rule:Burst" for a in sink.actions)  # the new threshold fires


def test_watcher_reloads_changed_directory(write_rules, registry) -> None:
    d = write_rules(BURST.format(stage="enforce", n=5))
    det = RulesDetector.from_dir(d, registry)
    seen = []
    w = RulesWatcher(det, on_reload=lambda ok, msg: seen.append(ok))
    assert w.poll_once() is None
    time.sleep(0.01)
    (d / "r.yaml").write_text(BURST.format(stage="enforce", n=6) + "\n")
    assert w.poll_once() == (True, det.ruleset.version) and seen == [True]
    (d / "r.yaml").write_text("rules: [")
    ok, _ = w.poll_once()
    assert not ok and det.ruleset.rules[0].name == "Burst"


def test_backtest_hits_quality_and_diff(write_rules, registry, tmp_path) -> None:
    new = write_rules(BURST.format(stage="enforce", n=3), directory=tmp_path / "new")
    old = write_rules(BURST.format(stage="enforce", n=5), directory=tmp_path / "old")
    events = tmp_path / "events.jsonl"
    with events.open("w") as fh:
        for i in range(4):
            fh.write(json.dumps({"id": f"a{i}", "type": "post.create", "ts": T0 + i * 1000, "actor": "bad",
                                 "post": {"id": f"pa{i}"}}) + "\n")
        for i in range(3):
            fh.write(json.dumps({"id": f"b{i}", "type": "post.create", "ts": T0 + i * 1000, "actor": "good",
                                 "post": {"id": f"pb{i}"}}) + "\n")
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"accounts": {"bad": {"bad": True}, "good": {"bad": False}},
                                 "posts": {"spam": ["pa2", "pa3"]}}))
    rep = backtest(new, events, truth, against=old)
    assert rep["hits"]["Burst"] == 3
    q = rep["quality"]
    assert q["rules"]["Burst"]["precision"] == 0.75  # bad, pa2, pa3 (tp); good (fp); pb2 unjudged
    assert q["account_recall"] == 1.0
    d = rep["diff"]
    assert d["n_lost"] == 0 and d["n_gained"] > 0
    assert {"subject": "account:good", "action": "label.add", "label": "burst", "rule": "Burst"} in d["gained"]


def test_default_pack_passes_its_fixtures() -> None:
    results = run_fixtures(REPO / "rules")
    failed = [(r.name, r.failures) for r in results if not r.ok]
    assert not failed
    assert len(results) >= 40
    assert rules_without_tests(REPO / "rules") == []
