"""Issue 16: one kind of evidence alone never makes a confident bot; a score says which evidence produced it."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.models.bots import BotDetector
from bastion.models.bots.detector import (
    CONFIDENT,
    WEAK_CAP,
    cap_by_evidence,
    evidence_label,
    ood_features,
    shrink_ood,
)
from bastion.models.bots.features import features_for
from bastion.state.memory import MemoryState
from bastion.state.model import Account

DAY = 86_400_000


@pytest.fixture(scope="module")
def detector() -> BotDetector:
    return BotDetector.load()


def test_single_source_is_capped_below_confident() -> None:
    assert WEAK_CAP < CONFIDENT
    assert cap_by_evidence(0.99, {"profile": 0.99}) == WEAK_CAP
    assert cap_by_evidence(0.99, {"profile": 0.99, "behaviour": 0.2}) == WEAK_CAP
    assert cap_by_evidence(0.97, {"profile": 0.9, "behaviour": 0.97}) == 0.97
    assert evidence_label({"profile": 0.9, "activity": 0.1, "behaviour": 0.97}) == "evidence:profile+behaviour"


def test_benign_profile_cue_liker_is_not_a_confident_bot(detector: BotDetector) -> None:
    # empty bio, digits in the handle, default avatar, a heavy liker: an ordinary person, profile cues only
    st = MemoryState()
    acc = Account(id="u1", handle="maria19873412", bio="", default_profile=True, default_profile_image=True,
                  followers=0, following=3, posts=0, likes_given=4000, created_ms=1)
    acc.activity.n_events = 2
    acc.activity.n_likes = 2
    st.accounts.put(acc)
    now = 2 * DAY
    p = detector.probability(acc, now, st)
    ps, expl = detector.score_uncached(acc, now, st)
    assert p < CONFIDENT and ps < CONFIDENT
    assert any(name.startswith("evidence:") for name, _ in expl)
    assert float(detector.live_batch([acc], now)[0]) < CONFIDENT


def test_bot_with_several_kinds_of_evidence_is_still_confident(detector: BotDetector) -> None:
    # profile cues AND activity (400 posts in a day, 2000 follows, no followers): two kinds of evidence
    st = MemoryState()
    acc = Account(id="b1", handle="xq83920193", bio="", default_profile=True, default_profile_image=True,
                  followers=0, following=2000, posts=400, likes_given=0, created_ms=DAY)
    acc.activity.n_events = 400
    acc.activity.n_posts = 400
    st.accounts.put(acc)
    for i in range(300):
        st.graph.add("follow", "b1", f"t{i}", 1)
    p, expl = detector.score_uncached(acc, 2 * DAY, st)
    assert p >= CONFIDENT
    assert detector.probability(acc, 2 * DAY, st) == p
    evidence = [name for name, _ in expl if name.startswith("evidence:")]
    assert evidence and "+" in evidence[0]



def test_account_outside_the_training_range_is_flagged_ood_with_a_lower_score(detector: BotDetector) -> None:
    acc = Account(id="o1", handle="a" * 60, bio="", followers=10**9, following=10**9, posts=10**8,
                  created_ms=1)
    now = 2 * DAY
    xp = features_for(acc, now, detector.profile.feature_schema)
    assert ood_features(detector.profile_ranges, xp, detector.profile.feature_schema)
    p, expl = detector.score_uncached(acc, now, None)
    assert [n for n, _ in expl if n.startswith("ood:")]
    raw = float(detector.profile.predict_proba(np.array([xp]))[0])
    assert p == pytest.approx(min(shrink_ood(raw), WEAK_CAP))
    assert abs(p - 0.5) < abs(raw - 0.5)
