"""``BotDetector.probability`` computes the profile and activity features once for its three models: the same
probability, bit for bit, as one extractor call per model (the previous path)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from bastion.models.bots import BotDetector
from bastion.models.bots.behaviour import behaviour_vector
from bastion.models.bots.detector import _logit
from bastion.models.bots.features import features_for
from bastion.state.memory import MemoryState
from bastion.state.model import Account


def _reference(det: BotDetector, acc: Account, now: int, state: MemoryState | None) -> float:
    p = det.profile.proba_one(np.array(features_for(acc, now, det.profile.feature_schema)))
    if det.activity is not None and acc.activity.n_events >= det.min_events:
        pa = det.activity.proba_one(np.array(features_for(acc, now, det.activity.feature_schema)))
        p = 1.0 / (1.0 + math.exp(-(0.5 * (_logit(p) + _logit(pa)))))
    if det._use_behaviour(acc, state):
        assert det.behaviour is not None
        p = det._with_behaviour(p, det.behaviour.proba_one(np.array(behaviour_vector(acc, state, now))))
    return p


@pytest.fixture(scope="module")
def detector() -> BotDetector:
    det = BotDetector.load()
    if det.behaviour is None:
        pytest.skip("no bot_behaviour model shipped")
    return det


def test_probability_equals_one_extraction_per_model(detector: BotDetector) -> None:
    rng = random.Random(3)
    st = MemoryState()
    ids = [f"u{i}" for i in range(80)]
    for i, a in enumerate(ids):
        acc = Account(id=a, handle=f"user{i}{rng.randrange(1000)}", followers=rng.randrange(200),
                      following=rng.randrange(300), posts=rng.randrange(500), created_ms=1 + i * 3_600_000)
        acc.activity.n_events = rng.choice([0, 1, 2, 3, 5, 19, 20, 40, 300])
        acc.activity.n_posts = acc.activity.n_events // 2
        acc.activity.n_likes = acc.activity.n_events - acc.activity.n_posts
        st.accounts.put(acc)
    for _ in range(600):
        st.graph.add("follow", rng.choice(ids), rng.choice(ids), 1)
    now = 5 * 86_400_000
    for a in ids:
        acc = st.accounts.get(a)
        for state in (st, None):
            detector._pcache.clear()
            assert detector.probability(acc, now, state) == _reference(detector, acc, now, state)


def test_probability_batch_equals_one_call_per_account(detector: BotDetector) -> None:
    """The micro-batch path (one vectorised pass per model) gives the same floats as the one-row path."""
    rng = random.Random(5)
    st = MemoryState()
    ids = [f"u{i}" for i in range(120)]
    accs = []
    for i, a in enumerate(ids):
        acc = Account(id=a, handle=f"user{i}{rng.randrange(1000)}", followers=rng.randrange(200),
                      following=rng.randrange(300), posts=rng.randrange(500), created_ms=1 + i * 3_600_000,
                      bio=rng.choice(["", "crypto gains", "teacher, parent"]))
        acc.activity.n_events = rng.choice([0, 1, 2, 3, 5, 19, 20, 40, 300])
        acc.activity.n_posts = acc.activity.n_events // 2
        acc.activity.n_likes = acc.activity.n_events - acc.activity.n_posts
        st.accounts.put(acc)
        accs.append(acc)
    for _ in range(800):
        st.graph.add("follow", rng.choice(ids), rng.choice(ids), 1)
    now = 5 * 86_400_000
    for state in (st, None):
        batch = detector.probability_batch(accs, now, state)
        single = []
        for acc in accs:
            detector._pcache.clear()
            single.append(detector.probability(acc, now, state))
        assert batch == single
    assert detector.probability_batch([], now, st) == []
