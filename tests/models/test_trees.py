"""The compiled forest's one-row path: the same float as the previous flat walk and the level-by-level reference
(same leaves, summed in the same order), and LightGBM's own raw score to rounding, for every missing-value type."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from bastion.models.trees import _MISSING_NAN, _MISSING_NONE, _MISSING_ZERO, CompiledForest


def _forest(zero_as_missing: bool, leaves: int = 15, seed: int = 0) -> tuple[lgb.Booster, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, 6))
    X[rng.random(X.shape) < 0.15] = 0.0
    X[:, :3][rng.random((600, 3)) < 0.2] = np.nan   # columns 3..5 have no nan: missing type None
    y = ((np.nan_to_num(X[:, 0]) + X[:, 3] + 0.3 * rng.normal(size=600)) > 0).astype(int)
    params = {"objective": "binary", "num_leaves": leaves, "min_data_in_leaf": 5, "verbose": -1, "seed": seed,
              "zero_as_missing": zero_as_missing, "deterministic": True, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=40), X


def _rows(f: CompiledForest, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rows = [X[:200]]
    special = X[:200].copy()
    for value, p in ((np.nan, 0.2), (0.0, 0.1), (-0.0, 0.05), (np.inf, 0.03), (-np.inf, 0.03)):
        special[rng.random(special.shape) < p] = value
    rows.append(special)
    at = X[:200].copy()   # values exactly on split thresholds (the <= boundary)
    for j in range(X.shape[1]):
        thr = f.threshold[f.feature == j]
        if len(thr):
            at[:, j] = rng.choice(thr, size=len(at))
    rows.append(at)
    return np.vstack(rows)


@pytest.mark.parametrize("zero_as_missing", [False, True])
def test_raw_one_matches_flat_reference_and_lightgbm(zero_as_missing: bool) -> None:
    booster, X = _forest(zero_as_missing)
    f = CompiledForest.from_booster(booster)
    kinds = set(f.missing_type.tolist())
    assert (_MISSING_ZERO in kinds) == zero_as_missing
    if not zero_as_missing:
        assert {_MISSING_NAN, _MISSING_NONE} <= kinds
    rows = _rows(f, X, np.random.default_rng(1))
    fast = np.array([f.raw_one(r.copy()) for r in rows])
    flat = np.array([f.raw_one_flat(r.copy()) for r in rows])
    ref = np.array([f.raw_one_reference(r.copy()) for r in rows])
    assert fast.tobytes() == flat.tobytes() == ref.tobytes()   # bit for bit
    # against LightGBM where both read the row the same way: LightGBM has its own rules for +-inf, and reads
    # |x| <= 1e-35 as zero (its split thresholds next to zero are +-1e-35, so a row placed on them differs)
    tiny = (np.abs(rows) <= 2e-35) & (rows != 0.0)   # kZeroThreshold is the float 1e-35f
    same = np.isfinite(rows).all(axis=1) & ~tiny.any(axis=1)
    assert same.sum() > 200
    np.testing.assert_allclose(fast[same], booster.predict(rows[same], raw_score=True), rtol=1e-9, atol=1e-12)


def test_raw_one_does_not_change_the_row_and_handles_single_leaf_trees() -> None:
    booster, X = _forest(False, leaves=2)
    f = CompiledForest.from_booster(booster)
    row = X[0].copy()
    row[0] = np.nan
    before = row.copy()
    assert f.raw_one(row) == f.raw_one_flat(row.copy())
    np.testing.assert_array_equal(row, before)
    # a forest whose trees are single leaves (nothing to split on) still sums its leaves
    y = np.zeros(50)
    y[:25] = 1
    stump = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 100}, lgb.Dataset(np.zeros((50, 2)), label=y),
                      num_boost_round=3)
    g = CompiledForest.from_booster(stump)
    assert g.raw_one(np.zeros(2)) == g.raw_one_reference(np.zeros(2))
