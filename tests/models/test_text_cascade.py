"""The embedding cascade's logic and serialisation, with a stand-in embedder (no torch needed)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from bastion.models.registry import ModelRegistry
from bastion.models.text import TextModels
from bastion.models.text.cascade import EmbeddingCascade
from bastion.models.text.linear import LinearTextModel

BAD = ["you are an idiot", "shut up moron", "what a stupid loser", "go to hell jerk", "you suck idiot"]
GOOD = ["have a nice day", "lovely weather", "thanks for the help", "see you soon", "great game today"]


def fake_encode(self, texts):  # a deterministic bag-of-words embedding, 384 dims
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().split():
            out[i, zlib.crc32(w.encode()) % 384] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1, norms)


@pytest.fixture()
def cascade(monkeypatch: pytest.MonkeyPatch) -> EmbeddingCascade:
    from bastion.models.text.embed import Embedder

    monkeypatch.setattr(Embedder, "encode", fake_encode)
    rng = np.random.default_rng(0)
    texts = [rng.choice(BAD) + " " + rng.choice(GOOD) if i % 7 == 0 else rng.choice(BAD if i % 2 else GOOD)
             for i in range(120)]
    labels = [1 if any(b in t for b in BAD) else 0 for t in texts]
    fast = LinearTextModel("toy", bits=12, C=0.3).fit(texts[:80], labels[:80], texts[80:], labels[80:])
    fast.meta["created"] = 1.0
    casc = EmbeddingCascade("toy-embed", fast)
    emb = fake_encode(None, texts)
    return casc.fit(texts[:80], labels[:80], texts[80:], labels[80:], train_emb=emb[:80], val_emb=emb[80:])


def test_cascade_round_trip_and_cost(cascade: EmbeddingCascade, tmp_path: Path) -> None:
    reg = ModelRegistry([tmp_path])
    reg.save("toy", cascade.fast.to_artifact())
    reg.save("toy-embed", cascade.to_artifact())
    fast2 = LinearTextModel.from_artifact(reg.load("toy"))
    casc2 = EmbeddingCascade.from_artifact(reg.load("toy-embed"), fast2)
    texts = BAD + GOOD + ["idiot, have a nice day"]
    p1, sent1 = cascade.predict_with_cost(texts)
    p2, sent2 = casc2.predict_with_cost(texts)
    assert np.allclose(p1, p2) and np.array_equal(sent1, sent2)
    assert np.allclose([casc2.score_one(t) for t in texts], p2, atol=1e-5)
    assert all(p1[i] >= casc2.threshold_ for i in range(len(BAD)))


def test_text_models_loads_cascade_only_over_its_fast_model(cascade: EmbeddingCascade, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    reg = ModelRegistry([tmp_path])
    reg.save("toy", cascade.fast.to_artifact())
    reg.save("toy-embed", cascade.to_artifact())
    tm = TextModels.load(reg, names=["toy"], embeddings=True)
    assert tm.has_cascade("toy")
    retrained = cascade.fast.to_artifact()
    retrained.meta["created"] = 2.0  # a newer fast model: the old head no longer fits it
    reg.save("toy", retrained)
    tm = TextModels.load(reg, names=["toy"], embeddings=True)
    assert not tm.has_cascade("toy") and tm.score_cascade("toy", "idiot") == tm.score("toy", "idiot")


def test_cascade_fit_oof_stacks_out_of_fold_logits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The cross-fitted cascade: fast tier from fit_crossfit, head and stacker on out-of-fold logits."""
    from bastion.models.text.embed import Embedder

    monkeypatch.setattr(Embedder, "encode", fake_encode)
    rng = np.random.default_rng(1)
    texts = [rng.choice(BAD) + " " + rng.choice(GOOD) if i % 7 == 0 else rng.choice(BAD if i % 2 else GOOD)
             for i in range(150)]
    labels = np.array([1 if any(b in t for b in BAD) else 0 for t in texts])
    fast = LinearTextModel("toy", bits=12, C=0.3, featurizer_version=3, char_min=2, loss="svm",
                           class_weight=None).fit_crossfit(texts, labels)
    assert fast.oof_decision_.shape == (150,)
    fast.meta["created"] = 1.0
    casc = EmbeddingCascade("toy-embed", fast).fit_oof(labels, fake_encode(None, texts), fast.oof_decision_)
    assert casc.stack_coef_.shape == (2,) and np.isfinite(casc.band_)
    reg = ModelRegistry([tmp_path])
    reg.save("toy", fast.to_artifact())
    reg.save("toy-embed", casc.to_artifact())
    casc2 = EmbeddingCascade.from_artifact(reg.load("toy-embed"), LinearTextModel.from_artifact(reg.load("toy")))
    probe = BAD + GOOD
    p = casc2.predict_proba(probe)
    assert np.allclose([casc2.score_one(t) for t in probe], p, atol=1e-5)
    assert (p[: len(BAD)] >= casc2.threshold_).all() and (p[len(BAD):] < casc2.threshold_).all()
