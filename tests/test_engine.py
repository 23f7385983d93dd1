from __future__ import annotations

from bastion.actions.effects import Effect, Subject
from bastion.actions.quotas import Quotas
from bastion.engine import Engine
from bastion.events.codec import decode_event
from bastion.features.builtin import build_registry
from bastion.state.memory import MemoryState


class HideStrangerReplies:
    name = "hide"

    def __init__(self, stage: str = "enforce") -> None:
        self.stage = stage
        self.seen_stranger: list[bool] = []

    def evaluate(self, ctx):
        if ctx.event.type == "post.create" and ctx.feature("event.is_reply"):
            self.seen_stranger.append(ctx.feature("rel.stranger"))
            for _ in range(2):  # recorded twice, applied once
                ctx.emit(Effect(action="post.hide", subject=Subject("post", ctx.feature("event.post_id")),
                                source="rule:T", reason="reply to a stranger", stage=self.stage))
            ctx.emit(Effect(action="label.add", subject=Subject("account", ctx.actor.id), source="rule:T",
                            label="replier", expires_ms=ctx.now_ms + 1000, stage=self.stage))


class Broken:
    name = "broken"

    def evaluate(self, ctx):
        raise RuntimeError("boom")


T0 = 1_795_132_800_000  # 2026-11-20T00:00:00Z


def ev(i, etype, actor, **kw):
    import json

    return decode_event(json.dumps({"id": f"e{i}", "type": etype, "ts": T0 + i * 1000, "actor": actor, **kw}))


def test_features_see_state_before_the_event_and_effects_dedupe():
    det = HideStrangerReplies()
    eng = Engine(MemoryState(), build_registry(), [det, Broken()])
    eng.process(ev(1, "post.create", "u1", post={"id": "p1"}))
    out = eng.process(ev(2, "post.create", "u2", post={"id": "p2", "reply_to": "p1", "reply_to_author": "u1"}))
    assert [a.action for a in out] == ["post.hide", "label.add"]
    eng.process(ev(3, "graph.follow", "u1", target="u2"))
    eng.process(ev(4, "post.create", "u2", post={"id": "p3", "reply_to": "p1", "reply_to_author": "u1"}))
    assert det.seen_stranger == [True, False]
    assert eng.state.posts.get("p2").hidden
    assert eng.state.labels.has("account", "u2", "replier", T0 + 2500)
    assert not eng.state.labels.has("account", "u2", "replier", T0 + 5000)
    assert eng.stats.detector_errors == {"broken": 4}  # the broken detector never stops the stream


def test_repeated_event_id_has_no_second_effect():
    eng = Engine(MemoryState(), build_registry(), [HideStrangerReplies()])
    e = ev(2, "post.create", "u2", post={"id": "p2", "reply_to": "p1", "reply_to_author": "u1"})
    assert len(eng.process(e)) == 2
    assert eng.process(e) is None
    assert eng.stats.duplicates == 1 and eng.stats.actions == {"post.hide": 1, "label.add": 1}
    assert eng.state.accounts.get("u2").posts == 1


def test_shadow_effects_are_recorded_not_applied():
    written = []

    class Sink:
        def write_action(self, a):
            written.append(a)

        def write_dead_letter(self, *a):
            pass

        def flush(self):
            pass

    eng = Engine(MemoryState(), build_registry(), [HideStrangerReplies("shadow")], sinks=[Sink()])
    assert eng.process(ev(2, "post.create", "u2", post={"id": "p2", "reply_to": "p1", "reply_to_author": "u1"})) == []
    assert {a.stage for a in written} == {"shadow"} and len(written) == 2
    assert not eng.state.labels.has("account", "u2", "replier", T0 + 2000)
    assert eng.stats.shadow_actions == {"post.hide": 1, "label.add": 1}


def test_quota_demotes_to_shadow():
    eng = Engine(MemoryState(), build_registry(), [HideStrangerReplies()], quotas=Quotas({"post.hide": 1}))
    for i in range(3):
        eng.process(ev(10 + i, "post.create", f"u{i}", post={"id": f"q{i}", "reply_to": "p1", "reply_to_author": "x"}))
    assert eng.stats.actions["post.hide"] == 1 and eng.stats.suppressed_by_quota == 2


def test_check_changes_nothing():
    eng = Engine(MemoryState(), build_registry(), [HideStrangerReplies(), Broken()])
    effects, ctx = eng.check(ev(2, "post.create", "u2", post={"id": "p2", "reply_to": "p1", "reply_to_author": "u1"}))
    assert [e.action for e in effects] == ["post.hide", "label.add"]
    assert eng.state.accounts.get("u2") is None and eng.state.posts.get("p2") is None
    assert eng.stats.events == 0
    assert eng.stats.detector_errors == {}  # a detector failing on a checked event is not counted either
    eng.detectors.pop()
    assert eng.process(ev(2, "post.create", "u2", post={"id": "p2"})) == []  # the id was not consumed


def test_state_application():
    eng = Engine(MemoryState(), build_registry())
    eng.process(ev(1, "account.create", "u1", ctx={"ip": "10.0.0.7", "device": "d1"},
                   profile={"handle": "maria", "email_domain": "Example.com"}))
    eng.process(ev(2, "graph.follow", "u2", target="u1"))
    eng.process(ev(3, "post.create", "u1", post={"id": "p1", "text": "hi"}))
    eng.process(ev(4, "post.engage", "u2", kind="like", post={"id": "p1", "author": "u1"}))
    eng.process(ev(5, "report.create", "u2", subject={"kind": "post", "id": "p1"}, reason="spam"))
    eng.process(ev(6, "account.status", "u1", status="suspended", by="platform"))
    s = eng.state
    u1 = s.accounts.get("u1")
    assert (u1.handle, u1.followers, u1.posts, u1.reports_received, u1.status) == ("maria", 1, 1, 1, "suspended")
    assert s.posts.get("p1").likes == 1 and s.posts.get("p1").reports == 1
    assert s.identifiers.accounts("ip_net", "10.0.0.0/24") == ["u1"]
    assert s.identifiers.count("email_domain", "example.com") == 1


class Flag:
    """Labels and enqueues the actor on every post, as a rule whose condition keeps holding does."""

    name = "flag"

    def evaluate(self, ctx):
        if ctx.event.type == "post.create":
            subj = Subject("account", ctx.actor.id)
            ctx.emit(Effect(action="label.add", subject=subj, source="rule:F", label="flagged",
                            expires_ms=ctx.now_ms + 10_000, score=0.7 if ctx.now_ms - T0 == 3000 else 0.5))
            t = ctx.now_ms - T0
            ctx.emit(Effect(action="review.enqueue", subject=subj, source=f"rule:F{t // 3000}",
                            priority=t / 1e5, reason=f"post at {t}"))


def test_effects_already_in_effect_are_not_reemitted():
    from bastion.review.queue import ReviewQueue

    class Sink:
        def __init__(self):
            self.actions = []

        def write_action(self, a):
            self.actions.append(a)

        def write_dead_letter(self, *a):
            pass

        def flush(self):
            pass

    queue, sink = ReviewQueue(), Sink()
    eng = Engine(MemoryState(), build_registry(), [Flag()], [sink], appliers=[queue])
    for i in range(1, 6):                                   # five posts within the label's 10 s
        eng.process(ev(i, "post.create", "u1", post={"id": f"p{i}"}))
    # the label's higher score at 3 s is new evidence (evaluation reads the highest label score): emitted
    assert [(a.action, a.score) for a in sink.actions] == [("label.add", 0.5), ("review.enqueue", None),
                                                            ("label.add", 0.7)]
    assert eng.stats.actions == {"label.add": 2, "review.enqueue": 1}
    assert eng.stats.repeats_not_reemitted == {"label.add": 3, "review.enqueue": 4}
    # the label stays while the condition holds (its expiry moves on) and the score board follows the score
    label = eng.state.labels.active("account", "u1", T0 + 5000)[0]
    assert (label.ts - T0, label.expires_ms - T0) == (3000, 15_000)
    assert eng.scores.get(Subject("account", "u1"), "flagged") == 0.5      # the latest score, as before
    # the open case took in every repeat's evidence: sources, the highest priority, the latest reasons
    (case,) = queue.open_cases()
    assert case.sources == {"rule:F0", "rule:F1"} and case.p == 5000 / 1e5 and case.updated_ms == T0 + 5000
    assert case.reasons["rule:F1"] == "post at 5000"
    # once the label has expired the rule's next label.add is a new action
    eng.process(ev(16, "post.create", "u1", post={"id": "p16"}))
    assert [a.action for a in sink.actions][3:] == ["label.add"]


def test_shadow_repeats_are_still_written():
    eng = Engine(MemoryState(), build_registry(), [HideStrangerReplies(stage="shadow")])
    for i in range(2, 5):
        eng.process(ev(i, "post.create", "u2", post={"id": f"p{i}", "reply_to": "p1", "reply_to_author": "u1"}))
    assert eng.stats.shadow_actions["label.add"] == 3 and not eng.stats.repeats_not_reemitted


def test_a_case_left_open_by_another_run_does_not_silence_this_stream():
    """Whether an enqueue is in effect depends on the stream and its checkpointed state, not on cases another
    run left open in the review database: the first enqueue of this stream is emitted."""
    from bastion.review.queue import Case, ReviewQueue

    queue = ReviewQueue()
    subj = Subject("account", "u1")
    queue.cases[subj] = Case(id="k1", subject=subj, queue="abuse", opened_ms=0, updated_ms=0, first_event="old")
    eng = Engine(MemoryState(), build_registry(), [Flag()], appliers=[queue])
    out = eng.process(ev(1, "post.create", "u1", post={"id": "p1"}))
    assert [a.action for a in out] == ["label.add", "review.enqueue"]
    assert eng.process(ev(2, "post.create", "u1", post={"id": "p2"})) == []


def test_only_the_actors_own_repeats_are_suppressed():
    """Effects on another subject than the actor (a reported account, a replied-to author) are always emitted:
    other actors' events reach other stream workers, so suppressing them would depend on the partitioning."""

    class LabelTarget:
        name = "target"

        def evaluate(self, ctx):
            if ctx.event.type == "graph.follow":
                ctx.emit(Effect(action="label.add", subject=Subject("account", ctx.event.target), source="rule:T",
                                label="followed", expires_ms=ctx.now_ms + 60_000))

    eng = Engine(MemoryState(), build_registry(), [LabelTarget()])
    for i, who in enumerate(("u1", "u2", "u1"), start=1):
        eng.process(ev(i, "graph.follow", who, target="u9"))
    assert eng.stats.actions == {"label.add": 3} and not eng.stats.repeats_not_reemitted
