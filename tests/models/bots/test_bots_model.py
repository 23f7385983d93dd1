from pathlib import Path

import numpy as np
import pytest

from bastion.features.account import PROFILE_SCHEMA
from bastion.models.bots import BotDetector, BotModel, SpecialistEnsemble, load_bot_model
from bastion.models.bots.adapters import data_root, load_cresci
from bastion.models.bots.evaluate import cross_validate
from bastion.models.bots.features import dataset_matrix
from bastion.models.registry import PACKAGED_ROOT, ModelError, ModelRegistry
from bastion.state.model import Account, ActivityStats

HAVE_DATA = (data_root() / "cresci_rtbust_2019").is_dir()
needs_data = pytest.mark.skipif(not HAVE_DATA, reason="shared data not present")


@pytest.fixture(scope="module")
def cresci():
    ds = load_cresci()
    return dataset_matrix(ds, PROFILE_SCHEMA), ds.y.astype(int)


def _assert_safe_files(path: Path):
    names = {p.name for p in path.iterdir()}
    assert "meta.json" in names
    assert all(n == "meta.json" or n.endswith(".txt") or n == "arrays.npz" for n in names), names
    if (path / "arrays.npz").exists():
        with np.load(path / "arrays.npz", allow_pickle=False) as data:
            assert all(data[k].dtype != object for k in data.files)


@needs_data
def test_round_trip_identical_scores_no_pickle(cresci, tmp_path):
    X, y = cresci
    reg = ModelRegistry([tmp_path])
    m = BotModel(PROFILE_SCHEMA, rounds_scale=0.1, inner_folds=3).fit(X, y)
    path = reg.save("bot_profile", m.to_artifact())
    _assert_safe_files(path)
    back = load_bot_model(reg.load("bot_profile"))
    np.testing.assert_array_equal(back.predict_proba(X), m.predict_proba(X))
    assert back.threshold_ == m.threshold_
    kinds = ["a" if (i % 2 and v) else ("b" if v else "human") for i, v in enumerate(y)]
    esc = SpecialistEnsemble(PROFILE_SCHEMA, rounds_scale=0.1).fit(X, y, kinds)
    path = reg.save("esc", esc.to_artifact())
    _assert_safe_files(path)
    back_esc = load_bot_model(reg.load("esc"))
    np.testing.assert_array_equal(back_esc.predict_proba(X), esc.predict_proba(X))


def test_shipped_artifacts_are_safe_and_match_live_schema():
    for name in ("bot_profile", "bot_activity"):
        versions = [p for p in (PACKAGED_ROOT / name).iterdir() if (p / "meta.json").is_file()]
        assert versions, name
        for v in versions:
            _assert_safe_files(v)
    det = BotDetector.load(ModelRegistry([PACKAGED_ROOT]))
    assert det.activity is not None


def test_schema_mismatch_is_refused(tmp_path):
    reg = ModelRegistry([tmp_path])
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2))
    y = (X[:, 0] > 0).astype(int)
    reg.save("bot_profile", BotModel(("a", "b"), rounds_scale=0.05, inner_folds=3).fit(X, y).to_artifact())
    with pytest.raises(ModelError):
        BotDetector.load(reg)


def test_live_detector_scores_caches_and_explains():
    det = BotDetector.load(ModelRegistry([PACKAGED_ROOT]), rescore_every=8)
    now = 1_760_000_000_000
    acc = Account(id="u1", handle="xk83910293", default_profile=True, default_profile_image=True,
                  created_ms=now - 3 * 86_400_000, followers=2, following=900, posts=5000)
    p, top = det.score(acc, now)
    assert 0.0 <= p <= 1.0 and top and all(isinstance(n, str) and isinstance(v, float) for n, v in top)
    assert det.score(acc, now) == (p, top) and det.rescored == 1
    acc.followers = 5000          # a material change rescores
    det.score(acc, now)
    assert det.rescored == 2
    acc.activity = ActivityStats(n_events=40, n_posts=10, n_reposts=30, first_ts=now - 3600_000, last_ts=now)
    p2, top2 = det.score(acc, now)
    assert det.rescored == 3 and 0.0 <= p2 <= 1.0
    batch = det.score_batch([acc, acc], now)
    assert batch.shape == (2,)


@needs_data
def test_shipped_profile_config_cv_floor_on_cresci(cresci):
    """Floor: nested 5-fold CV of the profile model on cresci keeps F1 >= 0.79 and PR-AUC >= 0.89 (quick inner
    folds; with the boosted trees alone 0.807 and 0.897 by the published 5 inner folds)."""
    X, y = cresci
    res = cross_validate(X, y, PROFILE_SCHEMA, inner_folds=3)
    assert res["mean"]["f1"] >= 0.79, res["mean"]
    assert res["mean"]["pr_auc"] >= 0.89, res["mean"]


def test_random_forest_candidate_calibrates_and_compiles():
    """LightGBM's ``rf`` mode reports the sum of its trees as the raw score (hundreds): Platt scaling still
    converges, and the event loop's compiled forest gives the booster's probabilities (the forest is no longer
    a shipped candidate; the evaluation still runs it for comparison)."""
    from bastion.models.bots.model import RF_CANDIDATE, fit_platt

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(int)
    m = BotModel(("a", "b", "c", "d"), candidates=[RF_CANDIDATE], rounds_scale=0.2, inner_folds=3).fit(X, y)
    assert np.abs(m.oof_margin_).max() > 10          # sums, not means
    a, _b = m.platt_
    assert 0 < a < 1 and 0.05 < m.threshold_ < 0.95
    p = m.predict_proba(X[:20])
    assert 0.0 < p.min() < 0.5 < p.max() < 1.0
    np.testing.assert_allclose([m.proba_one(x.copy()) for x in X[:20]], p, rtol=1e-9, atol=1e-12)
    # the same optimum as on unit-scale margins
    a1, b1 = fit_platt(m.oof_margin_, y)
    a2, b2 = fit_platt(m.oof_margin_ / 100.0, y)
    assert a1 * 100.0 == pytest.approx(a2, rel=1e-6) and b1 == pytest.approx(b2, rel=1e-6, abs=1e-9)


def test_nested_selection_sees_only_training_rows():
    """With several candidates, ``fit`` chooses by inner out-of-fold average precision on its own rows."""
    from bastion.models.bots.model import CANDIDATES, RF_CANDIDATE

    rng = np.random.default_rng(2)
    X = rng.normal(size=(240, 3))
    y = (X[:, 1] > 0).astype(int)
    cands = [*CANDIDATES, RF_CANDIDATE]
    m = BotModel(("a", "b", "c"), candidates=cands, rounds_scale=0.1, inner_folds=3).fit(X, y)
    assert m.chosen_ in [dict(c) for c in cands]
    # the shipped candidates: the boosted trees alone (the random forest was dropped for scoring speed)
    assert len(CANDIDATES) == 1 and "boosting" not in CANDIDATES[0]
