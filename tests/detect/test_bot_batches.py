"""The bot detector's micro-batches (detect/bots.py): ``score.bot`` is read from the latest batch, an account
whose scoring key moved is rescored at the next boundary (events or event time, never wall clock), two runs
give the same scores, and the schedule survives a checkpoint."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import pytest

from bastion.app import build_runtime
from bastion.detect.bots import BotScoring
from bastion.engine import EvalContext
from bastion.settings import Settings
from bastion.sim import SimConfig, simulate
from bastion.sources.files import items
from bastion.state.memory import MemoryState


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(SimConfig(users=300, days=0.25, seed=3), out)
    return out / "events.jsonl"


def _bots(rt) -> BotScoring:  # type: ignore[no-untyped-def]
    return next(d for d in rt.detectors if isinstance(d, BotScoring))


def _run(events: Path, n: int | None = None, state: MemoryState | None = None, resume: bool = False):  # type: ignore[no-untyped-def]
    seen: list[tuple[str, float, int]] = []

    class Probe:
        name = "probe"

        def evaluate(self, ctx: EvalContext) -> None:
            seen.append((ctx.actor.id, ctx.feature("score.bot"), ctx.feature("score.bot_age_ms")))

    rt = build_runtime(Settings(), review=False, clusters_on=False, state=state, resume=resume,
                       watchers=[Probe()])
    for it in islice(items(events), n):
        if it.event is not None:
            rt.engine.process(it.event)
    return rt, seen


def test_scores_are_batched_deterministic_and_within_the_freshness_bound(events: Path) -> None:
    rt1, seen1 = _run(events)
    rt2, seen2 = _run(events)
    assert seen1 == seen2                                   # same input, same scores and ages
    bots = _bots(rt1)
    n = rt1.engine.stats.events
    # one batch per window of event time that holds an event (boundaries of event time alone)
    assert bots.batches == len({ts // bots.batch_ms for ts in _timestamps(events)}) - 1
    assert bots.rescored < n                                # not one model call per event
    assert all(age >= 0 for _a, _p, age in seen1)
    assert max(age for _a, _p, age in seen1) > 0           # some reads return a score from an earlier batch
    # the final scores are computed afresh for every active account
    rt1.run_batch_detectors()
    model = bots.model
    now = rt1.engine.stats.last_ts
    for acc in list(rt1.state.accounts)[:50]:
        if acc.activity.n_events >= 2:
            model._pcache.clear()
            assert rt1.engine.scores.get(_subject(acc.id), "bot") == model.probability(acc, now, rt1.state)


def _timestamps(events: Path) -> list[int]:
    return [it.event.ts for it in items(events) if it.event is not None]


def _subject(aid: str):  # type: ignore[no-untyped-def]
    from bastion.actions.effects import Subject

    return Subject("account", aid)


def test_a_moved_key_is_rescored_at_the_next_boundary(events: Path) -> None:
    rt, _seen = _run(events, 400)
    bots = _bots(rt)
    bots.batch_events, bots.batch_ms = 10, 10**12
    acc = next(a for a in rt.state.accounts if a.id in bots.latest)
    old_key, old_p, _ts = bots.latest[acc.id]
    acc.followers += 1000                                   # the count bucket moves: the key moves
    ctx = EvalContext(_first_event_of(events, 400), rt.state, acc, rt.registry)
    assert ctx.feature("score.bot") == old_p                # the read returns the previous score...
    assert acc.id in bots.dirty                             # ...and marks the account
    bots.flush(rt.state, ctx.now_ms)
    assert acc.id not in bots.dirty and bots.latest[acc.id][0] != old_key
    bots.model._pcache.clear()
    assert bots.latest[acc.id][1] == bots.model.probability(acc, ctx.now_ms, rt.state)


def _first_event_of(events: Path, skip: int):  # type: ignore[no-untyped-def]
    return next(it.event for it in islice(items(events), skip, None) if it.event is not None)


def test_the_schedule_and_scores_survive_a_checkpoint(events: Path) -> None:
    state = MemoryState()
    rt, _ = _run(events, 1500, state=state)
    bots = _bots(rt)
    bots.save(state)
    again = build_runtime(Settings(), review=False, clusters_on=False, state=state, resume=True)
    restored = _bots(again)
    assert restored.latest == bots.latest and list(restored.latest) == list(bots.latest)
    assert restored.dirty == bots.dirty
    assert (restored.since, restored.batch_ts, restored.batches) == (bots.since, bots.batch_ts, bots.batches)
