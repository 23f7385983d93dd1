"""Start-up imports only what runs: the shipped LightGBM models compile their forests from the model text, so
building the default runtime and processing an event loads neither LightGBM nor scikit-learn, scipy or
datasketch; the forest read from the text is the one ``Booster.dump_model`` gives."""

from __future__ import annotations

import subprocess
import sys

import lightgbm as lgb
import numpy as np

from bastion.models.registry import ModelRegistry
from bastion.models.trees import CompiledForest, LazyBooster

SCRIPT = """
import sys
from bastion.app import build_runtime
from bastion.events.codec import decode_event
from bastion.settings import Settings
rt = build_runtime(Settings(), review=False)
rt.engine.process(decode_event(b'{"id":"e1","type":"post.create","ts":"2026-11-20T00:00:00Z","actor":"u1","post":{"id":"p1","text":"hi"}}'))
print(sorted(m for m in ("lightgbm", "sklearn", "scipy", "datasketch") if m in sys.modules))
"""


def test_building_the_runtime_loads_no_lightgbm_sklearn_scipy_or_datasketch() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_forest_from_model_text_equals_forest_from_dump_model() -> None:
    reg = ModelRegistry.default()
    rng = np.random.default_rng(1)
    for name in ("bot_profile", "bot_activity", "bot_behaviour", "linker", "abuse_context"):
        art = reg.load(name)
        for text in (t for t in art.texts.values() if "Tree=" in t):
            booster = lgb.Booster(model_str=text)
            ref = CompiledForest(booster.dump_model())
            lazy = LazyBooster(text)
            got = CompiledForest.from_booster(lazy)
            assert not lazy.loaded                       # compiled without LightGBM
            for attr in ("feature", "threshold", "left", "right", "default_left", "missing_type", "leaf_value"):
                assert np.array_equal(getattr(ref, attr), getattr(got, attr)), (name, attr)
            X = rng.normal(size=(50, booster.num_feature())) * 3
            X[X < -2] = np.nan
            X[np.abs(X) < 0.3] = 0.0
            assert [ref.raw_one(x.copy()) for x in X] == [got.raw_one(x.copy()) for x in X]
            assert lazy.model_to_string() == text and not lazy.loaded
            assert np.allclose(lazy.predict(X, raw_score=True), [got.raw_one(x.copy()) for x in X])
            assert lazy.loaded
