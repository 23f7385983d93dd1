"""The rank-aware second stage: list features relative to the best other candidate, stacking, calibration
with a tie-break, the artifact round trip (no pickle) and the shipped model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bastion.detect.linker.model import (
    LIST_FEATURES,
    RERANK_FEATURES,
    LinkModel,
    list_features,
    load_model,
    rerank_matrix,
)
from bastion.detect.linker.pairs import FEATURES
from bastion.detect.linker.train import Pairs, fit_model
from bastion.models.registry import PACKAGED_ROOT, ModelError, ModelRegistry

DEV = FEATURES.index("dev_weight")
TGT = FEATURES.index("target_overlap")


def test_list_features_are_relative_to_the_best_other_candidate():
    X = np.zeros((3, len(FEATURES)))
    X[:, DEV] = [1.0, 1.0, 0.0]          # two candidates share the device
    X[:, TGT] = [0.8, 0.1, 0.0]
    L = list_features(X, np.array([2.0, 1.5, -3.0]))
    col = {name: L[:, i] for i, name in enumerate(LIST_FEATURES)}
    assert np.allclose(col["s1_margin"], [0.5, -0.5, -5.0])
    assert np.allclose(col["s1_rank"], [0, 1, 2]) and np.allclose(col["n_candidates"], 3)
    assert np.isclose(col["s1_share"].sum(), 1.0)
    assert np.allclose(col["dev_weight_margin"], [0.0, 0.0, -1.0])   # a shared device no longer stands out
    assert np.allclose(col["target_overlap_margin"], [0.7, -0.7, -0.8])
    lone = list_features(X[:1], np.array([2.0]))
    assert lone[0, LIST_FEATURES.index("s1_margin")] == pytest.approx(10.0)
    assert lone[0, LIST_FEATURES.index("dev_weight_margin")] == pytest.approx(1.0)


def test_rerank_matrix_matches_per_query_features():
    rng = np.random.default_rng(0)
    X = rng.random((7, len(FEATURES)))
    s1 = rng.normal(size=7)
    groups = np.array([3, 1, 3, 1, 2, 3, 1])
    R = rerank_matrix(X, s1, groups)
    assert R.shape == (7, len(RERANK_FEATURES))
    for g in (1, 2, 3):
        idx = np.flatnonzero(groups == g)
        assert np.allclose(R[idx, len(FEATURES):], list_features(X[idx], s1[idx]))
        assert np.allclose(R[idx, : len(FEATURES)], X[idx])


def _synthetic(seed: int, queries: int = 150) -> Pairs:
    """Each query: the true parent (strong targets, shared device) and a household decoy on the same device."""
    rng = np.random.default_rng(seed)
    rows, ys, qs = [], [], []
    for q in range(queries):
        for k in range(int(rng.integers(2, 5))):
            row = rng.random(len(FEATURES)) * 0.2
            pos = k == 0 and q % 3 != 0            # a third of the queries are benign: no parent among them
            row[DEV] = 1.0 if k < 2 else 0.0
            row[TGT] = 0.6 + 0.4 * rng.random() if pos else 0.3 * rng.random()
            rows.append(row)
            ys.append(int(pos))
            qs.append(q)
    n = len(ys)
    return Pairs(np.array(rows), np.array(ys), np.array(qs), np.ones(n, int), ["c"] * n, ["p"] * n)


FAST = {"num_boost_round": 40, "min_data_in_leaf": 5}


@pytest.fixture(scope="module")
def fitted() -> tuple[LinkModel, dict]:
    return fit_model([_synthetic(1), _synthetic(2)], [_synthetic(3)], params=FAST)


def test_fit_model_stacks_a_reranker_and_round_trips_without_pickle(tmp_path: Path, fitted):
    model, info = fitted
    assert info["rerank"] and info["cal_pair_auc"] > 0.9
    test = _synthetic(4)
    q = test.query == 1
    p = model.predict_list(test.X[q])
    assert p.argmax() == 0 and 0.0 <= p.min() and p.max() <= 1.0
    path = ModelRegistry([tmp_path]).save("linker", model.to_artifact())
    assert sorted(f.name for f in path.iterdir()) == ["arrays.npz", "meta.json", "model.txt", "rerank.txt"]
    back = LinkModel.from_artifact(ModelRegistry([tmp_path]).load("linker"))
    assert np.allclose(back.predict_list(test.X[q]), p)
    assert np.allclose(back.predict_proba(test.X[:3]), model.predict_proba(test.X[:3]))


def test_reranker_schema_is_checked(fitted):
    model, _ = fitted
    art = model.to_artifact()
    art.meta["rerank_schema"] = art.meta["rerank_schema"][:-1]
    with pytest.raises(ModelError):
        LinkModel.from_artifact(art)


def test_calibration_plateaus_keep_the_raw_order():
    model = LinkModel()
    model.cal_x_, model.cal_y_ = np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.9, 0.9])
    out = model._calibrate(np.array([0.6, 0.9, 0.7]))
    assert list(np.argsort(-out)) == [1, 2, 0]
    assert np.allclose(out, 0.9, atol=1e-3)


def test_shipped_model_has_the_reranker():
    model = load_model(ModelRegistry([PACKAGED_ROOT]), required=True)
    assert model.rerank_ is not None
    latest = ModelRegistry([PACKAGED_ROOT]).latest_path("linker")
    assert sum(f.stat().st_size for f in latest.iterdir()) < 3_000_000
    info = model.meta_["training"]
    assert info["train_full_history_pairs"] > 0
    assert not {"301", "302"} & {s.lstrip("s") for s in info["sims"] + info["cal_sims"]}
