"""Text models: serialisation round trip, no pickle, calibration, schema refusal, and the CI quality floor."""

from __future__ import annotations

import doctest
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import bastion.datasets.text as datasets_mod
import bastion.models.base as base_mod
import bastion.models.text as text_pkg
import bastion.models.text.features as features_mod
import bastion.models.text.linear as linear_mod
import bastion.models.text.perturb as perturb_mod
from bastion.datasets.text import load_corpus
from bastion.models.base import Calibration, binary_metrics
from bastion.models.registry import PACKAGED_ROOT, ModelError, ModelRegistry
from bastion.models.text import TEXT_MODELS, TextModels
from bastion.models.text.linear import LinearTextModel

TOY = ["you are an idiot", "have a nice day", "shut up moron", "lovely weather", "what a stupid loser",
       "thanks for the help"] * 5
TOY_Y = [1, 0, 1, 0, 1, 0] * 5


@pytest.mark.parametrize("mod", [base_mod, features_mod, linear_mod, perturb_mod, text_pkg, datasets_mod])
def test_doctests(mod) -> None:
    assert doctest.testmod(mod).failed == 0


@pytest.fixture(scope="module")
def shipped() -> TextModels:
    return TextModels.load(ModelRegistry([PACKAGED_ROOT]), embeddings=False)


@pytest.mark.parametrize("loss", ["logreg", "svm"])
def test_v3_features_round_trip_and_single_text_path(tmp_path: Path, loss: str) -> None:
    m = LinearTextModel("toy3", bits=14, C=1.0, featurizer_version=3, char_min=2, word_weight=1.0, loss=loss,
                        class_weight=None).fit(TOY, TOY_Y)
    assert m.feature_schema[0] == "featurizer=hashing-poly64-v3"
    reg = ModelRegistry([tmp_path])
    reg.save("toy3", m.to_artifact())
    m2 = LinearTextModel.from_artifact(reg.load("toy3"))
    assert (m2.featurizer.version, m2.loss, m2.class_weight) == (3, loss, None)
    texts = ["you idiot", "nice day", "", "1d10t l0ser", "ѕtuрid", "idiot idiot idiot"]
    assert np.array_equal(m.predict_proba(texts), m2.predict_proba(texts))
    assert np.allclose([m2.score_one(t) for t in texts], m2.predict_proba(texts), atol=1e-5)
    assert m2.score_one("what an idiot") > m2.threshold_ > m2.score_one("have a lovely day")


def test_nb_svm_round_trip_and_single_text_path(tmp_path: Path) -> None:
    """NB-SVM scaling is folded into the coefficients: the artifact records ``nb_alpha`` and scores the same."""
    m = LinearTextModel("toynb", bits=14, C=1.0, featurizer_version=3, char_min=1, char_max=6, word_weight=1.0,
                        loss="svm", class_weight=None, nb_alpha=1.0).fit(TOY, TOY_Y)
    plain = LinearTextModel("toy", bits=14, C=1.0, featurizer_version=3, char_min=1, char_max=6, word_weight=1.0,
                            loss="svm", class_weight=None).fit(TOY, TOY_Y)
    assert not np.array_equal(m.coef_, plain.coef_)
    assert m.feature_schema == plain.feature_schema  # the features are the same; only the fit differs
    reg = ModelRegistry([tmp_path])
    reg.save("toynb", m.to_artifact())
    m2 = LinearTextModel.from_artifact(reg.load("toynb"))
    assert m2.nb_alpha == 1.0
    texts = ["you idiot", "nice day", "", "1d10t l0ser", "ѕtuрid"]
    assert np.array_equal(m.predict_proba(texts), m2.predict_proba(texts))
    assert np.allclose([m2.score_one(t) for t in texts], m2.predict_proba(texts), atol=1e-5)
    assert m2.score_one("what an idiot") > m2.threshold_ > m2.score_one("have a lovely day")


def test_v3_char_ngrams_stay_inside_words() -> None:
    from bastion.models.text.features import HashingFeaturizer

    f = HashingFeaturizer(bits=20, char_min=2, char_max=3, word_max=1, version=3)
    chars, words = f.blocks_normalized("ab cd")
    # padded " ab cd ": inside-word grams are " a", "ab", "b ", " ab", "ab ", " c", "cd", "d ", " cd", "cd "
    assert len(chars) == 10 and len(words) == 2
    f2 = HashingFeaturizer(bits=20, char_min=2, char_max=3, word_max=1, version=2)
    assert len(f2.blocks_normalized("ab cd")[0]) == 6 + 5  # every 2- and 3-gram of " ab cd "


def test_crossfit_keeps_out_of_fold_scores() -> None:
    m = LinearTextModel("toy", bits=12, C=1.0, featurizer_version=3).fit_crossfit(TOY, TOY_Y, folds=3)
    assert m.oof_decision_.shape == (len(TOY),)
    assert m.score_one("you are an idiot") > m.threshold_ > m.score_one("have a nice day")


def test_round_trip_gives_identical_scores(tmp_path: Path) -> None:
    m = LinearTextModel("toy", bits=14, C=5.0).fit(TOY, TOY_Y)
    reg = ModelRegistry([tmp_path])
    reg.save("toy", m.to_artifact())
    m2 = LinearTextModel.from_artifact(reg.load("toy"))
    texts = ["you idiot", "nice day", "", "1d10t l0ser", "ѕtuрid"]
    assert np.array_equal(m.predict_proba(texts), m2.predict_proba(texts))
    assert [m.score_one(t) for t in texts] == [m2.score_one(t) for t in texts]
    # the single-text path agrees with the batch path
    assert np.allclose([m2.score_one(t) for t in texts], m2.predict_proba(texts), atol=1e-5)


def test_registry_refuses_another_feature_schema(tmp_path: Path) -> None:
    m = LinearTextModel("toy", bits=12).fit(TOY, TOY_Y)
    reg = ModelRegistry([tmp_path])
    path = reg.save("toy", m.to_artifact())
    meta = json.loads((path / "meta.json").read_text())
    meta["feature_schema"] = [s.replace("normalizer=", "normalizer=old-") for s in meta["feature_schema"]]
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="feature schema"):
        LinearTextModel.from_artifact(reg.load("toy"))


def test_no_pickle_anywhere_in_shipped_artifacts() -> None:
    files = [p for p in PACKAGED_ROOT.rglob("*") if p.is_file()]
    assert files
    assert all(p.suffix in {".json", ".npz", ".txt"} for p in files), files
    for p in files:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as data:  # raises if any array needs pickle
                for k in data.files:
                    assert data[k].dtype != object


def test_shipped_text_artifacts_are_small() -> None:
    for name in TEXT_MODELS:
        for d in (PACKAGED_ROOT / name).iterdir():
            size = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
            assert size < 5_000_000, (d, size)


def test_calibration_is_monotone() -> None:
    rng = np.random.default_rng(0)
    s = rng.normal(size=500)
    y = (s + rng.normal(size=500) > 0).astype(int)
    grid = np.linspace(-5, 5, 201)
    for method in ("platt", "isotonic"):
        cal = Calibration.fit(s, y, method)
        p = cal.apply(grid)
        assert np.all(np.diff(p) >= 0) and p.min() >= 0 and p.max() <= 1
        assert np.allclose(Calibration.from_arrays(cal.to_arrays()).apply(grid), p)


def test_shipped_models_are_calibrated_on_real_validation_data(shipped: TextModels) -> None:
    rows = load_corpus("offensive", "val")
    p = shipped.score_many("abuse", [t for t, _ in rows])
    y = np.array([y for _, y in rows])
    assert abs(p.mean() - y.mean()) < 0.05  # Platt fitted on val: mean probability matches the base rate


def test_score_cache_and_api(shipped: TextModels) -> None:
    a = shipped.score("abuse", "you are a complete idiot")
    assert a == shipped.score("abuse", "you are a complete idiot") > shipped.threshold("abuse")
    assert shipped.score("abuse", "thank you, have a lovely day") < shipped.threshold("abuse")
    assert shipped.score_cascade("abuse", "hello") == shipped.score("abuse", "hello")  # no embeddings loaded
    with pytest.raises(ModelError):
        shipped.score("nope", "x")


# The target for the fast tier is 0.75; the shipped model (NB-SVM, char 1-6) measures 0.789
# (docs/evaluation.md), so the CI floor sits at the target.
OFFENSIVE_FLOOR = 0.75


def test_ci_floor_offensive_macro_f1(shipped: TextModels) -> None:
    """The CI floor: the shipped fast tier keeps its TweetEval offensive test macro-F1."""
    rows = load_corpus("offensive", "test")
    m = shipped.model("abuse")
    p = m.predict_proba([t for t, _ in rows])
    assert binary_metrics(np.array([y for _, y in rows]), p >= m.threshold_)["macro_f1"] >= OFFENSIVE_FLOOR


def test_ci_floor_sms_spam(shipped: TextModels) -> None:
    """The CI floor: SMS spam F1 >= 0.95 with at most 0.5% of ham blocked."""
    rows = load_corpus("sms", "test")
    m = shipped.model("spam")
    res = binary_metrics(np.array([y for _, y in rows]), m.predict_proba([t for t, _ in rows]) >= m.threshold_)
    assert res["f1"] >= 0.95 and res["fpr"] <= 0.005


def test_score_text_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bastion.cli import app

    src = tmp_path / "in.txt"
    src.write_text("you idiot\nhave a nice day\n\nWIN a FREE prize txt 80086\n")
    res = CliRunner().invoke(app, ["score", "text", "--model", "abuse", str(src)])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()  # progress goes to stderr
    assert len(lines) == 4 and all(0 <= float(x) <= 1 for x in lines)
    csv_path = tmp_path / "in.csv"
    csv_path.write_text('id,body\n1,"hello, friend"\n2,"WIN a FREE prize, txt 80086"\n')
    res = CliRunner().invoke(app, ["score", "text", "-m", "spam", "--csv", "--column", "body", str(csv_path)])
    assert res.exit_code == 0, res.output
    a, b = (float(x) for x in res.stdout.split())
    assert b > a


def test_train_command_writes_a_user_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`bastion train` writes into $BASTION_MODELS_DIR (toy spec, so the test stays fast)."""
    import bastion.models.text.train as train_mod
    from bastion.models.text.train import TextSpec

    monkeypatch.setenv("BASTION_MODELS_DIR", str(tmp_path))
    monkeypatch.setitem(train_mod.SPECS, "spam", TextSpec("spam", ("youtube",), C=3.0))
    from typer.testing import CliRunner

    from bastion.cli import app

    res = CliRunner().invoke(app, ["train", "spam", "--no-embed"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "spam" / "1" / "arrays.npz").is_file()
    tm = TextModels.load(names=["spam"], embeddings=False)  # user dir is searched first
    assert tm.model("spam").meta["corpora"] == ["youtube"]
    shutil.rmtree(tmp_path / "spam")
