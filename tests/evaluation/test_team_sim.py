"""The team review simulation (bastion.evaluation.team): invariants on a tiny world replayed through the
engine, the harm order against FIFO on a constructed case set whose answer is known, reproducibility, and the
CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.actions.effects import Subject
from bastion.evaluation.team import (
    TEAM_ORDERINGS,
    Shifts,
    TeamConfig,
    check_model,
    make_ordering,
    make_team,
    replay_steps,
    simulate_team,
)
from bastion.review.evaluation import Fifo, Formula, Replay, Snapshot
from bastion.review.queue import Case, Signal
from bastion.review.world import HOUR, World
from bastion.sim import SimConfig
from bastion.sim import simulate as simulate_run

T0 = 1_795_132_800_000


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Replay:
    d = tmp_path_factory.mktemp("world1001")
    simulate_run(SimConfig(users=300, days=0.25, seed=1001, world=1001, text_split="test"), d)
    return replay_steps(d / "truth.json", d / "events.jsonl", step_ms=10 * 60_000, clusters_on=False)


def _no_overlap(intervals: list[tuple[int, int]]) -> bool:
    iv = sorted(intervals)
    return all(b[0] >= a[1] for a, b in zip(iv, iv[1:], strict=False))


@pytest.mark.parametrize("name", TEAM_ORDERINGS)
def test_tiny_world_invariants(tiny: Replay, name: str):
    cfg = TeamConfig(reviewers=3, shift_hours=2.0, break_min=10, seed=4, appeal_wrong=1.0, appeal_right=1.0,
                     fp_range=(0.2, 0.3), fn_range=(0.1, 0.2))
    run = simulate_team(tiny, make_ordering(name, tiny.world), cfg)
    m = run.metrics
    assert run.claims and tiny.final.cases
    # a case is claimed once: never by two reviewers, never twice
    keys = [c.key for c in run.claims]
    assert len(keys) == len(set(keys))
    shifts = Shifts(run.team, cfg, tiny.world.start, 30)
    for i in range(len(run.team)):
        mine = [(c.start, c.end) for c in run.claims if c.reviewer == i]
        mine += [(a.start, a.end) for a in run.appeals if a.reviewer == i and a.start is not None]
        # one thing at a time per reviewer, and every claim starts on shift
        assert _no_overlap(mine)
        for s, _ in mine:
            assert any(a <= s < b for a, b in shifts.windows[i])
    # no case is claimed after the world's end, nor before it appeared in a snapshot
    first_seen: dict[tuple[str, str], int] = {}
    for snap in tiny.hourly:
        for c in snap.cases:
            first_seen.setdefault((c.subject.kind, c.subject.id), snap.t)
    for c in run.claims:
        assert first_seen[c.key] <= c.start < tiny.world.end
    # every enforcement appealed (rates 1.0); appeals never decided by the original decider, all decided
    enforced = [c for c in run.claims if c.enforced]
    assert len(run.appeals) == len(enforced) > 0
    assert all(a.reviewer is not None and a.reviewer != a.decider for a in run.appeals)
    assert all(a.start is not None and a.start >= a.arrival for a in run.appeals)
    assert m["appeals_by_original_decider"] == 0 and m["appeals_undecided"] == 0
    assert m["wrong_enforcements"] == sum(1 for c in enforced if not c.violating) > 0
    assert m["wrong_appealed"] == m["wrong_enforcements"]
    assert 0 <= m["wrong_overturned"] <= m["wrong_enforcements"]
    assert m["cases_claimed"] == len(run.claims) <= m["cases_in_queue"]
    # the team works 3 x (2 h - 10 min) in the 6-hour world
    assert m["reviewer_hours"] == pytest.approx(3 * (2 - 10 / 60), abs=0.01)


def test_reproducible_with_a_seed_and_different_with_another(tiny: Replay):
    cfg = TeamConfig(reviewers=3, shift_hours=3.0, seed=11)

    def go(c: TeamConfig) -> tuple:
        run = simulate_team(tiny, make_ordering("fifo", tiny.world), c)
        return ([(x.reviewer, x.key, x.start, x.end, x.enforced) for x in run.claims],
                json.dumps(run.metrics, sort_keys=True))

    assert go(cfg) == go(cfg)
    assert go(cfg) != go(replace(cfg, seed=12))
    assert make_team(cfg) == make_team(cfg) != make_team(replace(cfg, seed=12))


def _world(n_bad: int, n_benign: int) -> World:
    accounts = {f"bad{i}": {"bad": True, "start": T0, "end": T0 + 24 * HOUR} for i in range(n_bad)}
    accounts.update({f"ok{i}": {"bad": False} for i in range(n_benign)})
    return World({"meta": {"start": T0, "end": T0 + 24 * HOUR}, "accounts": accounts,
                  "exposure": {f"bad{i}": 800.0 for i in range(n_bad)}})


def test_harm_order_prevents_more_per_reviewer_hour_than_fifo_on_a_known_case_set():
    """20 benign cases opened first with weak evidence, then 10 violating ones with strong evidence; two
    reviewers cannot clear the 30 in the day. The harm order must take the violating ones first, FIFO the benign
    ones: the answer is known."""
    w = _world(10, 20)
    cases = []
    for i in range(20):
        c = Case(f"k-ok{i}", Subject("account", f"ok{i}"), "abuse", T0 + i * 1000, T0 + i * 1000)
        c.signals["rule:weak"] = Signal("rule:weak", 0.1, "", T0)
        cases.append(c)
    for i in range(10):
        c = Case(f"k-bad{i}", Subject("account", f"bad{i}"), "abuse", T0 + 60_000 + i, T0 + 60_000 + i)
        c.signals["rule:strong"] = Signal("rule:strong", 0.95, "", T0)
        cases.append(c)
    snaps = [Snapshot(T0 + h * HOUR // 6, cases, {}) for h in range(1, 144)]
    rep = Replay(w, snaps, snaps[-1])
    # slow, error-free reviewers: about 10 cases each in a 1-hour shift (at 0h and 23h)
    cfg = TeamConfig(reviewers=2, shift_hours=1.0, break_min=0, fp_range=(0, 0), fn_range=(0, 0), sigma=0.01,
                     speed_sigma=0.0, median_s=(("account", 360.0),), high_severity_factor=1.0, seed=3)
    harm = simulate_team(rep, Formula(w), cfg).metrics
    fifo = simulate_team(rep, Fifo(w), cfg).metrics
    assert harm["reviewer_hours"] == fifo["reviewer_hours"] == pytest.approx(2.0)
    assert harm["prevented_per_reviewer_hour"] > fifo["prevented_per_reviewer_hour"]
    assert fifo["prevented"] == 0.0          # FIFO spends the whole shift on the older benign cases
    assert harm["enforcement_precision"] == 1.0 and harm["enforcements"] == 10
    assert harm["violating_reviewed_share"] == 1.0 and fifo["violating_reviewed_share"] == 0.0
    assert harm["ttd_median_min"] is not None and fifo["ttd_median_min"] is None


def test_wrong_enforcements_are_overturned_at_the_appeal_reviewers_error_rate():
    """Every case benign and every one appealed when enforced. Reviewers with a false-positive rate of 1.0
    enforce every case and uphold every appeal: nothing is overturned. At 0.5 about half the cases are wrongly
    enforced and about half of those overturned."""
    w = _world(0, 400)
    cases = [Case(f"k{i}", Subject("account", f"ok{i}"), "abuse", T0, T0) for i in range(400)]
    snaps = [Snapshot(T0 + HOUR, cases, {})]
    rep = Replay(w, snaps, snaps[0])
    base = TeamConfig(reviewers=4, shift_hours=8.0, break_min=0, fn_range=(0, 0), appeal_wrong=1.0,
                      median_s=(("account", 30.0),), seed=5)
    all_wrong = simulate_team(rep, Fifo(w), replace(base, fp_range=(1.0, 1.0))).metrics
    assert all_wrong["wrong_enforcements"] == all_wrong["cases_claimed"] == 400
    assert all_wrong["wrong_overturned"] == 0
    half = simulate_team(rep, Fifo(w), replace(base, fp_range=(0.5, 0.5))).metrics
    assert 150 <= half["wrong_enforcements"] <= 250
    assert 0.35 <= half["wrong_overturned_share"] <= 0.65


def test_a_prioritiser_trained_on_a_test_world_is_refused():
    class M:
        version = "9"
        meta_ = {"trained_on": {"seed": 1002, "world": 1002}}

    with pytest.raises(ValueError, match="test world"):
        check_model(M(), [1001])
    M.meta_ = {"trained_on": {"seed": 23}}
    check_model(M(), [1001, 1002])
    with pytest.raises(ValueError):
        make_team(TeamConfig(reviewers=1))


def test_cli_help_and_a_tiny_run(tmp_path: Path, monkeypatch):
    from bastion.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["review", "team-sim", "--help"])
    assert out.exit_code == 0 and "reviewer-hour" in out.output
    bad = runner.invoke(app, ["review", "team-sim", "--worlds", "x-y"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    bad = runner.invoke(app, ["review", "team-sim", "--orderings", "lifo"])
    assert bad.exit_code == 2
    doc = tmp_path / "evaluation.md"
    doc.write_text("# Evaluation\n")
    res = runner.invoke(app, ["review", "team-sim", "--worlds", "1001", "--users", "200", "--days", "0.1",
                              "--reviewers", "3", "--orderings", "formula_feedback,fifo", "--cache",
                              str(tmp_path / "cache"), "--json", str(tmp_path / "r.json"), "--docs", str(doc)])
    assert res.exit_code == 0, res.output
    assert "[1/1] world 1001" in res.output and "replaying world 1001" in res.output
    rep = json.loads((tmp_path / "r.json").read_text())
    per = rep["per_world"]["1001"]
    assert per["split"] == "test" and set(per["orderings"]) == {"formula_feedback", "fifo"}
    assert per["orderings"]["fifo"]["appeals_by_original_decider"] == 0
    text = doc.read_text()
    assert "<!-- BEGIN teamsim -->" in text and "bastion review team-sim --worlds 1001 --users 200" in text
