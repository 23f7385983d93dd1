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
    assert p.argmax() == 0 and p.min() >= 0.0 and p.max() <= 1.0
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


def test_collect_pairs_adds_full_history_hard_negatives(tmp_path: Path):
    """The full-history pass scores the parent's household member (same IP and device, own life) as a
    negative, and the evader with everything it did as a positive, beside the stream checks."""
    import json

    from bastion.detect.linker.train import collect_pairs

    T0, HOUR = 1_790_000_000_000, 3_600_000
    home = {"ip": "203.0.113.7", "device": "d-9f2"}
    ev: list[dict] = []

    def add(t: int, etype: str, actor: str, ctx: dict | None = None, **kw) -> None:
        ev.append({"id": f"e{len(ev)}", "type": etype, "ts": T0 + t, "actor": actor, **({"ctx": ctx} if ctx else {}),
                   **kw})

    for i in range(12):
        add(i, "account.update", f"f{i}", profile={"handle": f"famous{i}", "display_name": f"F {i}"})
    add(100, "account.update", "u2", home, profile={"handle": "maria_k", "display_name": "Maria K", "bio": "baker"})
    add(150, "account.update", "u3", home, profile={"handle": "gardener", "display_name": "Tom K", "bio": "roses"})
    for i in range(6):
        add(200 + i, "graph.follow", "u2", home, target=f"f{i}")
        add(300 + i, "post.create", "u2", home, post={"id": f"p2_{i}", "text": "@t1 just get lost",
                                                        "reply_to_author": "t1", "mentions": ["t1"]})
        add(400 + i, "post.create", "u3", home, post={"id": f"p3_{i}", "text": "my roses are blooming today"})
    add(HOUR, "account.status", "u2", home, status="suspended", by="platform", reason="harassment")
    add(3 * HOUR, "account.create", "u9", home, profile={"handle": "mar1a_k2", "display_name": "Maria K"})
    for i in range(4):
        add(3 * HOUR + 10 + i, "graph.follow", "u9", home, target=f"f{i}")
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(e) for e in ev) + "\n")
    truth = {"accounts": {"u9": {"cohort": "ban_evader", "bad": True, "evades": "u2"},
                          "u3": {"cohort": "benign", "bad": False, "lookalike": ["household"]}}}
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    pairs = collect_pairs(tmp_path)
    rows = set(zip(pairs.children, pairs.parents, pairs.phase.tolist(), pairs.y.tolist(), strict=True))
    assert ("u9", "u2", 0, 1) in rows                 # stream checks of the new account
    assert ("u9", "u2", 1, 1) in rows                 # the evader with its full history
    assert ("u3", "u2", 1, 0) in rows                 # the household member: a hard negative
    assert pairs.X.shape == (len(pairs.y), len(FEATURES))
    assert len(set(pairs.query[pairs.phase == 0].tolist())) == 5   # account.create + 4 follows
