"""Calibrated bot scores (issue 16): the per-event and micro-batch paths apply the same calibration, evidence
cap and OOD shrink; profile cues alone never make a confident bot; out-of-range features are flagged and pulled
toward the prior; the artifact is JSON read without LightGBM."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest

from bastion.detect.bots import BotScoring
from bastion.models.bots import BotDetector
from bastion.models.bots.calibration import ARTIFACT, BotCalibration
from bastion.state.memory import MemoryState
from bastion.state.model import Account

NOW = 5 * 86_400_000


@pytest.fixture(scope="module")
def cal_det() -> BotDetector:
    det = BotDetector.load(calibration=True)
    if det.behaviour is None or det.activity is None:
        pytest.skip("bot_behaviour / bot_activity not shipped")
    return det


def _world(seed: int, n: int = 150) -> tuple[MemoryState, list[Account]]:
    rng = random.Random(seed)
    st = MemoryState()
    accs = []
    for i in range(n):
        acc = Account(id=f"u{i}", handle=rng.choice([f"user{i}", f"anna{rng.randrange(10**6, 10**8)}"]),
                      followers=rng.randrange(0, 3000), following=rng.randrange(0, 3000), posts=rng.randrange(500),
                      created_ms=1 + i * 3_600_000, bio=rng.choice(["", "", "crypto gains", "teacher, parent"]),
                      default_profile_image=rng.random() < 0.3, likes_given=rng.randrange(5000))
        acc.activity.n_events = rng.choice([0, 1, 2, 3, 5, 19, 20, 40, 300])
        acc.activity.n_likes = int(acc.activity.n_events * rng.choice([0.2, 0.9, 1.0]))
        acc.activity.n_posts = acc.activity.n_events - acc.activity.n_likes
        st.accounts.put(acc)
        accs.append(acc)
    ids = [a.id for a in accs]
    for _ in range(900):
        st.graph.add("follow", rng.choice(ids), rng.choice(ids), 1)
    return st, accs


def test_batch_equals_one_call_per_account_with_calibration(cal_det: BotDetector) -> None:
    st, accs = _world(5)
    raw = BotDetector.load(calibration=False)
    for state in (st, None):
        batch = cal_det.probability_batch(accs, NOW, state)
        single = []
        for a in accs:
            cal_det._pcache.clear()
            single.append(cal_det.probability(a, NOW, state))
        assert batch == single
        # calibration moved the scores (it is applied), and every score is a probability
        raws = raw.probability_batch(accs, NOW, state)
        assert any(abs(b - r) > 1e-3 for b, r in zip(batch, raws, strict=True))
        assert all(0.0 < b < 1.0 for b in batch)


def test_profile_evidence_alone_never_exceeds_the_cap(cal_det: BotDetector) -> None:
    cal = cal_det.calibration
    assert cal is not None and cal.cap < 0.9
    st, accs = _world(7, 300)
    # the profile tier: before the behaviour model's first record point with state, or fewer than the activity
    # model's events without state
    young = [a for a in accs if a.activity.n_events < cal_det.min_behaviour_events]
    stateless = [a for a in accs if a.activity.n_events < cal_det.min_events]
    assert young and stateless
    for p in cal_det.probability_batch(young, NOW, st) + cal_det.probability_batch(stateless, NOW, None):
        assert p <= cal.cap + 1e-12
    # a benign look-alike: empty bio, digits in the handle, default avatar, a liking habit
    acc = Account(id="look", handle="maria83920147", bio="", default_profile_image=True, followers=3,
                  following=250, likes_given=4000, created_ms=NOW - 20 * 86_400_000)
    acc.activity.n_events = 2
    acc.activity.n_likes = 2
    assert cal_det.probability_batch([acc], NOW, None)[0] <= cal.cap
    assert float(cal_det.score_batch([acc], NOW)[0]) <= cal.cap


def test_cap_keeps_order_and_non_profile_evidence_lifts_it() -> None:
    cal = BotCalibration.load()
    lo = cal.finish("pb", 0.95, 0.0, "behaviour", False)
    hi = cal.finish("pb", 0.99, 0.0, "behaviour", False)
    assert lo < hi <= cal.cap
    # strong behaviour/graph evidence: the cap gives way
    assert cal.finish("pb", 0.99, 0.999, "behaviour", False) > 0.9
    # the profile tier has no non-profile evidence
    assert cal.finish("p", 0.999, None, None, False) <= cal.cap


def test_out_of_distribution_is_flagged_and_shrinks_toward_the_prior(cal_det: BotDetector) -> None:
    cal = cal_det.calibration
    assert cal is not None
    st, accs = _world(9, 40)
    acc = next(a for a in accs if a.activity.n_events >= 20)
    assert "log_followers" in cal.box
    acc.followers = 10**12   # far beyond any training/calibration account
    _p, expl = cal_det.score_uncached(acc, NOW, st)
    names = [n for n, _ in expl]
    assert any(n.startswith("ood:") for n in names), names
    assert any(n.startswith("tier:") for n in names) and any(n.startswith("evidence:") for n in names)
    prior = cal.prior["pab"]
    for p in (0.02, 0.5, 0.97):
        shrunk = cal.finish("pab", p, 1.0, "behaviour", True)
        assert abs(shrunk - prior) < abs(p - prior) or abs(p - prior) < 1e-9


def test_evidence_is_in_the_explanation(cal_det: BotDetector) -> None:
    st, accs = _world(11, 60)
    scoring = BotScoring(cal_det)
    scoring.state = st
    acc = next(a for a in accs if a.activity.n_events >= 3)
    out = scoring.explain_account(acc, NOW)
    ev = out["bot_evidence"]
    assert ev["tier"] in ("pb", "pab")
    assert set(ev["groups"]) <= {"profile", "behaviour", "graph"}
    assert isinstance(ev["ood"], list) and isinstance(ev["capped_profile_only"], bool)


def test_artifact_is_json_and_the_runtime_never_imports_lightgbm() -> None:
    d = json.loads(ARTIFACT.read_text())
    assert d["kind"] == "bot-calibration/1" and 0 < d["cap"] < 0.9 and d["box"]
    code = ("import sys; from bastion.models.bots import BotDetector; from bastion.state.model import Account; "
            "d = BotDetector.load(calibration=True); a = Account(id='x', handle='bob12345'); "
            "a.activity.n_events = 30; d.probability_batch([a], 10**9, None); d.probability(a, 10**9, None); "
            "print('lightgbm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_a_broken_artifact_is_refused() -> None:
    d = BotCalibration.load().to_json()
    with pytest.raises(ValueError):
        BotCalibration.from_json({**d, "kind": "pickle"})
    with pytest.raises(ValueError):
        BotCalibration.from_json({**d, "cap": 1.5})
    with pytest.raises(ValueError):
        BotCalibration.from_json({**d, "tiers": {"p": [1.0]}})
    assert np.isfinite(BotCalibration.from_json(d).cap)


def test_a_missing_or_garbled_artifact_names_the_fix(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="bastion bots calibrate"):
        BotCalibration.load(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "bot-calibration/1"}')
    with pytest.raises(ValueError, match="unreadable"):
        BotCalibration.load(bad)


def test_fitting_pieces() -> None:
    from bastion.evaluation.bots_calibration import ece, fit_beta, fit_offset

    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, 4000)
    y = (rng.random(4000) < p ** 3).astype(int)        # overconfident raw scores
    abc = fit_beta(p, y)
    cal = np.array([1 / (1 + np.exp(-(abc[0] * np.log(q) - abc[1] * np.log(1 - q) + abc[2]))) for q in p])
    assert abc[0] >= 0 and abc[1] >= 0 and np.all(np.diff(cal[np.argsort(p)]) >= 0)
    assert ece(cal, y) < ece(p, y) / 2
    z = np.log(cal / (1 - cal))
    d = fit_offset(z, np.ones_like(y) - (rng.random(len(y)) < 0.5))
    assert np.isfinite(d)
    with pytest.raises(ValueError):
        fit_beta(p, np.zeros_like(y))


def test_calibrate_command_refuses_test_worlds() -> None:
    from typer.testing import CliRunner

    from bastion.cli import app

    r = CliRunner().invoke(app, ["bots", "calibrate", "--worlds", "1001-1005"])
    assert r.exit_code == 2 and "training range" in r.output
    r = CliRunner().invoke(app, ["bots", "calibrate", "--worlds", "5-2"])
    assert r.exit_code == 2
