"""The abuse_context model: context features on hand-made streams, artifact round trip, calibration, and the
detector wired through build_runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bastion.actions.effects import Subject
from bastion.detect.content import ContentScoring
from bastion.detect.context import CONTEXT_SCHEMA, InteractionTracker
from bastion.engine import Engine, EvalContext
from bastion.events.codec import decode_event
from bastion.features.builtin import build_registry
from bastion.models.context import NAME, ContextModel, load_context_model
from bastion.models.registry import PACKAGED_ROOT, ModelError, ModelRegistry
from bastion.state.memory import MemoryState

T0 = 1_795_132_800_000  # 2026-11-20T00:00:00Z: inside the decoders' window (not after the clock)
MIN = 60_000
COL = {n: i for i, n in enumerate(CONTEXT_SCHEMA)}


class StubText:
    """Text scores without the text models: 0.9 when the text says 'idiot', else 0.1."""

    names = ["abuse", "hate", "spam"]

    def score(self, name: str, text: str) -> float:
        return 0.9 if name == "abuse" and "idiot" in text else 0.1


class Recorder(ContentScoring):
    def __init__(self, *a, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*a, **kw)
        self.rows: dict[str, list[float] | None] = {}

    def evaluate(self, ctx: EvalContext) -> None:
        self.rows[ctx.event.id] = self.context_row(ctx)
        super().evaluate(ctx)


class Stream:
    def __init__(self) -> None:
        self.events: list = []

    def add(self, t_ms: int, etype: str, actor: str, **kw) -> str:  # type: ignore[no-untyped-def]
        eid = f"e{len(self.events) + 1}"
        self.events.append(decode_event(json.dumps({"id": eid, "type": etype, "ts": T0 + t_ms, "actor": actor, **kw})))
        return eid

    def reply(self, t_ms: int, actor: str, target: str, text: str = "hello") -> str:
        return self.add(t_ms, "post.create", actor, post={"id": f"p{len(self.events)}", "text": text,
                                                          "reply_to": f"root-{target}", "reply_to_author": target})


def replay(stream: Stream) -> Recorder:
    reg = build_registry()
    det = Recorder(StubText())
    det.register_features(reg)
    eng = Engine(MemoryState(), reg, [det])
    for ev in stream.events:
        eng.process(ev)
    return det


def test_stranger_vs_follower_and_pair_history() -> None:
    s = Stream()
    s.add(0, "graph.follow", "friend", target="a")          # friend follows a
    e_friend = s.reply(MIN, "a", "friend", "you idiot")     # a -> friend: target follows actor
    e_str1 = s.reply(2 * MIN, "a", "stranger", "you idiot")  # a -> stranger
    e_str2 = s.reply(3 * MIN, "a", "stranger")              # again: one earlier interaction with the pair
    e_back = s.reply(4 * MIN, "stranger", "a")              # the stranger answers: reverse history 2
    e_post = s.add(5 * MIN, "post.create", "a", post={"id": "solo", "text": "just a post"})
    rows = replay(s).rows
    f, s1, s2, b = rows[e_friend], rows[e_str1], rows[e_str2], rows[e_back]
    assert f is not None and s1 is not None and s2 is not None and b is not None
    assert rows[e_post] is None  # not an interaction
    assert f[COL["target_follows_actor"]] == 1.0 and f[COL["mutual"]] == 0.0
    assert s1[COL["target_follows_actor"]] == 0.0 and s1[COL["actor_follows_target"]] == 0.0
    assert f[COL["text_abuse"]] == 0.9 and s2[COL["text_abuse"]] == 0.1
    assert s1[COL["pair_before"]] == 0.0 and s2[COL["pair_before"]] == 1.0
    assert b[COL["pair_before"]] == 0.0 and b[COL["pair_reverse_before"]] == 2.0
    # the author's recent distinct targets (before the event): friend and stranger
    assert s2[COL["actor_targets_1h"]] == 2.0 and s2[COL["actor_interactions_1h"]] == 2.0
    # author aggregates read before this event updates them: only the abusive stranger reply so far
    assert s1[COL["author_abusive_to_strangers"]] == 0.0
    assert s2[COL["author_abusive_to_strangers"]] == pytest.approx(0.9)
    assert s2[COL["author_stranger_messages"]] == 1.0


def test_pile_on_counts_distinct_strangers_within_minutes() -> None:
    s = Stream()
    s.add(0, "graph.follow", "fan", target="victim")  # a follower, not a stranger
    s.reply(MIN, "fan", "victim")
    for i in range(5):
        s.reply(2 * MIN + i * MIN, f"s{i}", "victim", "you idiot")
        s.reply(2 * MIN + i * MIN + 1000, f"s{i}", "victim", "you idiot")  # the same stranger twice
    e_now = s.reply(8 * MIN, "s9", "victim")
    e_later = s.reply(40 * MIN, "s10", "victim")  # outside 15 minutes, inside the hour
    e_other = s.reply(8 * MIN + 1, "s11", "somebody_else")
    rows = replay(s).rows
    now, later, other = rows[e_now], rows[e_later], rows[e_other]
    assert now is not None and later is not None and other is not None
    assert now[COL["pile_on_strangers_15m"]] == 5.0  # the follower does not count, repeats count once
    assert now[COL["pile_on_strangers_1h"]] == 5.0
    assert now[COL["pile_on_abuse_1h"]] == pytest.approx(0.9)
    assert later[COL["pile_on_strangers_15m"]] == 0.0 and later[COL["pile_on_strangers_1h"]] == 6.0
    assert other[COL["pile_on_strangers_15m"]] == 0.0


def test_tracker_is_bounded() -> None:
    tr = InteractionTracker(max_pairs=10, max_keys=5)
    for i in range(100):
        tr.record(f"a{i}", f"t{i}", T0 + i, True, 0.5)
    assert len(tr.pairs) == 10 and len(tr.by_author) == 5 and len(tr.by_target) == 5
    for i in range(200):
        tr.record("a", "t", T0 + i, True, 0.5)
    assert len(tr.by_author["a"]) <= 64


def _toy_model() -> ContextModel:
    rng = np.random.default_rng(3)
    n = 3000
    X = rng.random((n, len(CONTEXT_SCHEMA)))
    logit = 4 * X[:, COL["text_abuse"]] - 3 * X[:, COL["target_follows_actor"]] + 2 * X[:, COL["pile_on_abuse_1h"]] - 2
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return ContextModel(rounds=40).fit(X[:2000], y[:2000], X[2000:], y[2000:])


def test_artifact_round_trip_and_one_row_scores(tmp_path: Path) -> None:
    m = _toy_model()
    reg = ModelRegistry([tmp_path])
    path = reg.save(NAME, m.to_artifact())
    assert {p.name for p in path.iterdir()} == {"meta.json", "arrays.npz", "model.txt"}
    m2 = ContextModel.from_artifact(reg.load(NAME))
    X = np.random.default_rng(4).random((50, len(CONTEXT_SCHEMA)))
    np.testing.assert_allclose(m2.predict_proba(X), m.predict_proba(X), atol=1e-12)
    one = np.array([m2.score_row(list(x)) for x in X])
    np.testing.assert_allclose(one, m.predict_proba(X), atol=1e-9)  # compiled forest == LightGBM
    assert load_context_model(reg) is not None
    bad = reg.load(NAME)
    bad.meta["feature_schema"] = [*CONTEXT_SCHEMA, "extra"]
    with pytest.raises(ModelError):
        ContextModel.from_artifact(bad)


def test_calibration_is_monotone() -> None:
    for model in (_toy_model(), load_context_model(ModelRegistry([PACKAGED_ROOT]))):
        assert model is not None
        assert model.calibration_.method == "platt" and model.calibration_.params[0] > 0
        p = model.calibration_.apply(np.linspace(-10, 10, 201))
        assert np.all(np.diff(p) > 0) and 0 < p[0] < p[-1] < 1


def test_shipped_artifact_is_small_and_pickle_free() -> None:
    base = PACKAGED_ROOT / NAME
    files = [f for f in base.rglob("*") if f.is_file()]
    assert files and sum(f.stat().st_size for f in files) < 1_000_000
    assert all(f.suffix in (".json", ".npz", ".txt") for f in files)
    meta = json.loads(next(base.rglob("meta.json")).read_text())
    assert meta["feature_schema"] == list(CONTEXT_SCHEMA) and 0 < meta["threshold"] < 1


def test_context_detector_through_build_runtime() -> None:
    from bastion.app import build_runtime
    from bastion.settings import Settings

    rt = build_runtime(Settings.load(env={}), state=MemoryState(), review=False)
    assert "score.abuse_context" in rt.registry
    s = Stream()
    s.add(0, "graph.follow", "friend", target="a")
    s.add(MIN, "post.create", "a", post={"id": "solo", "text": "nice ride today"})
    s.add(2 * MIN, "post.create", "a", post={"id": "r1", "text": "you are a pathetic idiot, get lost",
                                             "reply_to": "x", "reply_to_author": "stranger"})
    s.add(3 * MIN, "post.create", "a", post={"id": "r2", "text": "you are a pathetic idiot, get lost",
                                             "reply_to": "y", "reply_to_author": "friend"})
    s.add(4 * MIN, "message.send", "a", recipient="stranger", text="hi there")
    for ev in s.events:
        rt.engine.process(ev)
    sb = rt.engine.scores
    assert sb.get(Subject("post", "solo"), "abuse_context") is None  # not an interaction
    to_stranger, to_friend = sb.get(Subject("post", "r1"), "abuse_context"), sb.get(Subject("post", "r2"), "abuse_context")
    assert to_stranger is not None and to_friend is not None
    assert 0.0 <= to_friend < to_stranger <= 1.0  # the same insult weighs less inside a follow relationship
    # a dry-run check reads the feature without touching the tracker
    det = next(d for d in rt.engine.detectors if isinstance(d, ContentScoring))
    before = dict(det.tracker.pairs)
    _, ctx = rt.engine.check(decode_event(json.dumps(
        {"id": "c1", "type": "message.send", "ts": T0 + 5 * MIN, "actor": "a", "recipient": "stranger",
         "text": "you idiot"})))
    assert 0.0 < ctx.feature("score.abuse_context") <= 1.0
    assert det.tracker.pairs == before


def test_account_abuse_is_the_context_models_max_over_interactions() -> None:
    """With the context model loaded the account `abuse` score (capability (1) per account) is the highest
    `abuse_context` of the author's interactions, not the text score; rules still read the text mean to strangers."""
    from bastion.app import build_runtime
    from bastion.settings import Settings

    rt = build_runtime(Settings.load(env={}), state=MemoryState(), review=False)
    s = Stream()
    s.add(0, "graph.follow", "friend", target="a")
    s.add(MIN, "post.create", "a", post={"id": "r1", "text": "you are a pathetic idiot, get lost",
                                         "reply_to": "x", "reply_to_author": "stranger"})
    s.add(2 * MIN, "post.create", "a", post={"id": "r2", "text": "see you at the game tonight mate",
                                             "reply_to": "y", "reply_to_author": "friend"})
    s.add(3 * MIN, "post.create", "a", post={"id": "solo", "text": "nice ride today"})
    sb = rt.engine.scores
    rt.engine.process(s.events[0])
    rt.engine.process(s.events[1])
    c1, t1 = sb.get(Subject("post", "r1"), "abuse_context"), sb.get(Subject("post", "r1"), "abuse")
    assert c1 is not None and t1 is not None and abs(c1 - t1) > 0.05
    assert sb.get(Subject("account", "a"), "abuse") == pytest.approx(c1, abs=1e-3)
    for ev in s.events[2:]:
        rt.engine.process(ev)
    c2 = sb.get(Subject("post", "r2"), "abuse_context")
    assert c2 is not None
    # the original post is no interaction: it leaves the account score where r2 put it
    assert sb.get(Subject("account", "a"), "abuse") == pytest.approx(max(c1, c2), abs=1e-3)
    det = next(d for d in rt.engine.detectors if isinstance(d, ContentScoring))
    assert det.authors["a"].abuse_strangers == pytest.approx(t1, abs=1e-3)  # author.abusive_to_strangers: the text mean


def test_prescored_batch_scores_equal_one_text_scores_of_every_shipped_model() -> None:
    """The replay's batch scoring shares n-gram counts between models only where their featurizers agree:
    `abuse` (char 1-6-grams) and `hate` (char 2-5-grams) must each get their own counts."""
    from bastion.models.context import Prescored
    from bastion.models.text import TextModels

    tm = TextModels.load(ModelRegistry([PACKAGED_ROOT]), embeddings=False)
    fa, fh = tm.fast["abuse"].featurizer, tm.fast["hate"].featurizer
    assert (fa.char_min, fa.char_max) != (fh.char_min, fh.char_max)   # the case this guards
    texts = ["you are a disgusting idiot", "lovely photo of the harbour today", "send them all back, vermin",
             "FREE entry!! txt WIN to 80086 now", "@user ok see you at 6"]
    pre = Prescored(tm, texts)
    for name in ("abuse", "hate", "spam"):
        for t in texts:
            assert pre.score(name, t) == pytest.approx(tm.score(name, t), abs=1e-5), (name, t)


def _tracker_state(t: InteractionTracker) -> tuple[list, list, list]:
    return (list(t.pairs.items()), [(k, list(v)) for k, v in t.by_author.items()],
            [(k, list(v)) for k, v in t.by_target.items()])


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_tracker_saved_at_checkpoints_reloads_the_same_lru_state(backend: str, tmp_path: Path) -> None:
    """Saving only what changed since the last checkpoint (and deleting what the caps evicted) must rebuild the
    exact tracker - contents, counts and LRU order - so a resumed run reads what an uninterrupted one would."""
    from bastion.state.sqlite import SqliteState

    rng = np.random.default_rng(5)
    state = MemoryState() if backend == "memory" else SqliteState(tmp_path / "s.db")
    t = InteractionTracker(max_pairs=40, max_keys=12)
    ts = 0
    for step in range(1, 1501):
        a, b = f"u{rng.integers(30)}", f"u{rng.integers(30)}"
        ts += int(rng.integers(0, 90_000))
        t.record(a, b, ts, bool(rng.integers(2)), float(rng.random()))
        if step % int(rng.integers(1, 200)) == 0 or step == 1500:
            t.save(state.kv)
            if backend == "sqlite":
                state.checkpoint({"line": step})
            u = InteractionTracker(max_pairs=40, max_keys=12)
            u.load(state.kv)
            assert _tracker_state(u) == _tracker_state(t)
            assert u.pile_on(b, ts) == t.pile_on(b, ts) and u.actor_recent(a, ts) == t.actor_recent(a, ts)
    # what the caps evicted is deleted, not left to pile up in the store
    assert len(dict(state.kv.items("content.pairs"))) == len(t.pairs) == 40
    assert len(dict(state.kv.items("content.by_target"))) == len(t.by_target) == 12
    if backend == "sqlite":   # and it is durable: a reopened store rebuilds the same tracker
        state.close()
        again = SqliteState(tmp_path / "s.db")
        v = InteractionTracker(max_pairs=40, max_keys=12)
        v.load(again.kv)
        assert _tracker_state(v) == _tracker_state(t)
