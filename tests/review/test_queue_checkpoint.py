"""The review queue in a checkpoint: cases, their sequence and offender history come back exactly, and the review
database, written independently of the checkpoint, does not push a resumed queue past it."""

from __future__ import annotations

from pathlib import Path

from bastion.actions.effects import REVIEW_ENQUEUE, AppliedAction, Effect, Subject
from bastion.events.codec import decode_event
from bastion.review.queue import ReviewQueue
from bastion.review.store import ReviewStore
from bastion.state.memory import MemoryState


def _enqueue(queue: ReviewQueue, state: MemoryState, n: int, account: str, score: float) -> None:
    ev = decode_event(f'{{"id":"e{n}","type":"post.create","ts":{1_700_000_000_000 + n * 1000},"actor":"{account}",'
                      f'"post":{{"id":"p{n}","text":"hi"}}}}'.encode())
    eff = Effect(action=REVIEW_ENQUEUE, subject=Subject("account", account), source="rule:r", score=score,
                 reason="because", evidence={"k": [1, 2]})
    act = AppliedAction(id=f"a{n}", ts="t", event_id=ev.id, subject=eff.subject, action=REVIEW_ENQUEUE,
                        source=eff.source)
    queue.apply(eff, act, ev, state)


def test_a_restored_queue_equals_the_saved_one_and_ignores_later_cases_in_the_store(tmp_path: Path):
    # (one process writing its own store; the shared PostgreSQL store numbers cases from a shared counter)
    state = MemoryState()
    store = ReviewStore(tmp_path / "review.db")
    queue = ReviewQueue()
    queue.attach(store)
    _enqueue(queue, state, 1, "u1", 0.9)
    _enqueue(queue, state, 2, "u2", 0.4)
    queue.close_case(queue.cases[Subject("account", "u2")], "violating", 1_700_000_003_000)
    _enqueue(queue, state, 3, "u2", 0.5)   # a second case of u2 (the first is decided)
    queue.sync()
    queue.save(state)                       # the checkpoint
    rows = queue.to_rows()
    _enqueue(queue, state, 4, "u3", 0.8)   # after the checkpoint: in the store, lost from the engine
    queue.sync()
    assert sorted(c["id"] for c in store.load_cases("open")) == ["k1", "k3", "k4"]

    again = ReviewQueue()
    again.restore(state)
    again.attach(store)
    assert again.to_rows() == rows
    assert sorted(again.by_id) == ["k1", "k2", "k3"]
    assert again.violations == {Subject("account", "u2"): 1}
    assert again.cases[Subject("account", "u1")].signals["rule:r"].evidence == {"k": [1, 2]}
    _enqueue(again, state, 4, "u3", 0.8)   # the redone event opens its case under the same id
    assert again.cases[Subject("account", "u3")].id == "k4"
