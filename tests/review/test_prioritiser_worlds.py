"""The learned prioritiser across randomized worlds (issue 16, "the queue"): trained on several training worlds,
checked on a held-out training world; leave-one-world-out source precision; the corroboration gate; online
recalibration of per-source precision by reviewer decisions (offline ordering and the live service)."""

from __future__ import annotations

import pytest

from bastion.actions.effects import Subject
from bastion.review.evaluation import HOUR, Learned, Snapshot, _Ctx, evaluate_replay
from bastion.review.prioritiser import SourceTable, TrainingCase, corroborated, fit_cases
from bastion.review.queue import Case, Signal
from bastion.review.worlds import (
    ceiling_at,
    choose_shape,
    load_replay,
    precision_at,
    save_replay,
    train_across_worlds,
    world_replay,
)

from .conftest import T0, ev, report

USERS, DAYS = 300, 0.5
TRAIN, HELD_OUT = (1, 2, 3, 4), 5


@pytest.fixture(scope="module")
def replays(tmp_path_factory):
    cache = tmp_path_factory.mktemp("worlds")
    return {w: world_replay(w, cache, USERS, DAYS) for w in (*TRAIN, HELD_OUT)}, cache


@pytest.fixture(scope="module")
def cross_model(replays):
    reps, _ = replays
    return train_across_worlds({w: reps[w] for w in TRAIN})


def test_replays_are_cached_as_json_and_read_back_identically(replays, tmp_path):
    reps, cache = replays
    rep = reps[HELD_OUT]
    path = tmp_path / "r.json.gz"
    save_replay(rep, path)
    back = load_replay(path, next(cache.glob(f"world-{HELD_OUT}-*")) / "truth.json")
    assert [s.t for s in back.hourly] == [s.t for s in rep.hourly]
    assert [(c.id, c.subject, sorted(c.sources), c.exposure) for c in back.final.cases] == \
        [(c.id, c.subject, sorted(c.sources), c.exposure) for c in rep.final.cases]
    assert back.final.scores.keys() == rep.final.scores.keys()
    # odd training worlds are replayed without ip/device context, even ones with it
    assert (next(cache.glob("world-1-*")) / "review-replay-noctx.json.gz").is_file()
    assert (next(cache.glob("world-2-*")) / "review-replay-ctx.json.gz").is_file()


def test_cross_world_model_beats_fifo_on_a_held_out_world(replays, cross_model):
    reps, _ = replays
    rep = reps[HELD_OUT]
    m = evaluate_replay(rep, cross_model, capacities=(5,), orderings=("learned", "formula", "fifo", "oracle"))
    o = m["orderings"]
    assert m["bad_cases"] >= 10
    assert o["learned"]["capacity_5"]["prevented"] >= 1.5 * o["fifo"]["capacity_5"]["prevented"]
    # (the cold formula is not a floor for exposure prevented here: on this 300-user half-day world it prevented
    # more at capacity 5 - 439 vs 350 when written - because it weighs exposure; the learned order is judged on
    # the top of the queue below)
    assert o["oracle"]["capacity_5"]["prevented"] >= o["learned"]["capacity_5"]["prevented"]
    # the top of the end-of-day queue: at least the cold formula's, and at least twice the base rate
    base = m["bad_cases"] / m["cases"]
    assert o["learned"]["precision_at_10"] >= max(o["formula"]["precision_at_10"], min(1.0, 2 * base))
    assert cross_model.n_cases_ >= sum(len(reps[w].final.cases) for w in TRAIN)


def test_shape_is_chosen_on_validation_worlds_and_reaches_the_ceiling_share(replays, cross_model):
    reps, _ = replays
    out = choose_shape(cross_model, {HELD_OUT: reps[HELD_OUT]},
                       grid={"sharpness": (1.0,), "exposure_exponent": (0.0,), "floor": (0.0, 0.002),
                             "cap": (0.2, 1.0)}, finalists=2)
    assert len(out["tried"]) == 4 and cross_model.shape == out["chosen"]["shape"]
    c = ceiling_at(reps[HELD_OUT])
    p = precision_at(reps[HELD_OUT], cross_model)
    assert c is not None and p is not None and p <= c + 1e-9
    assert out["chosen"]["worst_p50"] == pytest.approx(p / c)


def test_source_precision_of_a_world_comes_from_the_other_worlds():
    seen: dict[int, list[float]] = {}

    def case(w: int, i: int, bad: bool, src: str) -> TrainingCase:
        def make(table: SourceTable, _rep, w: int = w) -> dict[str, float]:
            seen.setdefault(w, []).append(table.tp.get("rule:only1", 0.0) + table.fp.get("rule:only1", 0.0))
            return {"src_prec_max": table.precision(src, 0.5), "score_bot": float(bad)}
        return TrainingCase(f"{w}:{i}", bad, {src: 0.5}, set(), [make], w)

    cases = [case(1, i, i % 2 == 0, "rule:only1") for i in range(30)]
    cases += [case(w, i, i % 3 == 0, "rule:common") for w in (2, 3) for i in range(30)]
    model = fit_cases(cases, prior_decisions=10.0, n_estimators=5, min_child_samples=2)
    assert set(seen[1]) == {0.0}          # world 1 never sees its own decisions on rule:only1
    assert set(seen[2]) == {10.0}         # the others see them, capped at prior_decisions
    assert model.table_.tp["rule:only1"] == 15 and model.shape["prior_decisions"] == 10.0
    assert model.prior_table().tp["rule:only1"] + model.prior_table().fp["rule:only1"] == pytest.approx(10.0)


def test_as_prior_keeps_precision_and_caps_the_weight():
    t = SourceTable({"a": 90.0, "b": 1.0}, {"a": 10.0, "b": 1.0})
    p = t.as_prior(20.0)
    assert p.tp["a"] + p.fp["a"] == pytest.approx(20.0) and p.tp["a"] / 20.0 == pytest.approx(0.9)
    assert (p.tp["b"], p.fp["b"]) == (1.0, 1.0)
    assert corroborated([0.85]) and corroborated([0.55, 0.6]) and not corroborated([0.6, 0.3])


def _case(cid: str, sources: dict[str, float]) -> Case:
    c = Case(cid, Subject("account", cid), "bots", T0, T0)
    for s, v in sources.items():
        c.sources.add(s)
        c.signals[s] = Signal(s, v, "", T0)
    return c


def test_gate_caps_uncorroborated_cases_and_decisions_recalibrate_the_source(cross_model):
    model = cross_model
    saved_shape, saved_table = dict(model.shape), model.table_
    try:
        model.table_ = SourceTable({"rule:weak": 100.0, "rule:x": 80.0, "rule:y": 70.0},
                                   {"rule:weak": 0.0, "rule:x": 20.0, "rule:y": 30.0})
        model.shape = {"prior_decisions": 20.0, "sharpness": 1.0, "exposure_exponent": 0.0, "floor": 0.0,
                       "cap": 0.0, "support": 0.5, "strong": 0.9}
        weak, both = _case("u1", {"rule:weak": 0.7}), _case("u2", {"rule:x": 0.7, "rule:y": 0.7})
        snap = Snapshot(T0 + HOUR, [weak, both], {})
        order = Learned(_world(), model)
        # rule:weak starts strong (precision 1.0 measured elsewhere): corroborated by itself
        assert model.corroborated([weak], _Ctx(snap, lambda r: 0.5, order.table)) == [True]
        assert order.priorities([weak], snap)[0] > 0
        # reviewers clear its cases in this world: its precision falls, the gate closes, the case sinks
        for i in range(40):
            order.observe(_case(f"b{i}", {"rule:weak": 0.7}), False)
        assert order.table.precision("rule:weak", 0.7) < 0.5
        assert model.corroborated([weak, both], _Ctx(snap, lambda r: 0.5, order.table)) == [False, True]
        assert order.priorities([weak], snap)[0] == 0.0 and order.priorities([both], snap)[0] > 0
        # the static ordering keeps the training precision
        static = Learned(_world(), model, online=False)
        for i in range(40):
            static.observe(_case(f"b{i}", {"rule:weak": 0.7}), False)
        assert static.name == "learned_static" and static.priorities([weak], snap)[0] > 0
    finally:
        model.shape, model.table_ = saved_shape, saved_table


def _world():
    from bastion.review.world import World

    return World({"meta": {"start": T0, "end": T0 + 4 * HOUR}, "accounts": {}, "exposure": {}})


def test_live_service_decisions_recalibrate_the_learned_prioritisers_sources(cross_model, runtime):
    rt, svc = runtime
    svc.use_prioritiser(cross_model)
    rt.engine.process(ev(1, "account.create", "u1", T0))
    rt.engine.process(report(2, "r1", "u1", T0 + 1000))
    case = rt.queue.open_cases()[0]
    before = rt.queue.source_table.precision("reports", 0.5)
    svc.decide(case.id, "mod1", "benign", "spam")
    after = rt.queue.source_table.precision("reports", 0.5)
    assert after < before
    assert rt.queue.source_table.fp["reports"] == pytest.approx(cross_model.prior_table().fp.get("reports", 0.0) + 1)
    svc.use_prioritiser(None)

