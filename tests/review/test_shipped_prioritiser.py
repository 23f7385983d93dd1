"""The shipped review prioritiser: it is in the package, was trained on a seed that neither the demo nor the
review evaluation uses, and ranks the live queue of every runtime with review (`bastion serve`, `bastion demo`)
unless a newer one was trained into the models directory. Fails when the artifact is missing or not used."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bastion.app import build_runtime
from bastion.models.registry import PACKAGED_ROOT, ModelRegistry
from bastion.review.prioritiser import FEATURES, MODEL_NAME, load_prioritiser
from bastion.settings import Settings

from .conftest import T0, ev, report

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def shipped():
    versions = [p for p in (PACKAGED_ROOT / MODEL_NAME).glob("*") if (p / "meta.json").is_file()]
    assert versions, f"no shipped {MODEL_NAME} in {PACKAGED_ROOT}: run the command in docs/review.md"
    model = load_prioritiser(ModelRegistry([PACKAGED_ROOT]))
    assert model is not None, f"the shipped {MODEL_NAME} does not load"
    return model


def _demo_seed() -> int:
    import typer.main

    from bastion.cli import app

    demo = typer.main.get_command(app).commands["demo"]  # type: ignore[attr-defined]
    return int(next(p.default for p in demo.params if p.name == "seed"))


def _review_eval_seeds() -> set[int]:
    """Seeds of the simulated runs the recorded review evaluation scores (docs/evaluation.md)."""
    text = (DOCS / "evaluation.md").read_text()
    section = text[text.index("<!-- BEGIN review -->"):text.index("<!-- END review -->")]
    evaluated = set(re.findall(r"bastion review eval --truth (\S+)/truth\.json", section))
    assert evaluated, "no `bastion review eval` command in the review section of docs/evaluation.md"
    seeds = {int(seed) for out, seed in re.findall(r"bastion sim --out (\S+) [^&`]*?--seed (\d+)", section)
             if out in evaluated}
    assert seeds, "the evaluated run's `bastion sim` command is missing from docs/evaluation.md"
    return seeds


def test_shipped_prioritiser_is_safe_and_reproducible(shipped):
    meta = shipped.meta_
    trained = meta["trained_on"]
    if "worlds" in trained:   # trained across randomized training worlds, its shape chosen on others
        from bastion.evaluation.worlds import parse_worlds

        train, val = parse_worlds(trained["worlds"]), parse_worlds(trained["val_worlds"])
        assert max(train + val) < 1000, "a test world (1001+) trained or tuned the shipped prioritiser"
        assert not set(train) & set(val) and len(train) >= 10
        assert f"--worlds {trained['worlds']}" in meta["command"] and "--ship" in meta["command"]
        assert shipped.shape and "cap" in shipped.shape
    else:
        seed = trained["seed"]
        assert isinstance(seed, int)
        assert seed != _demo_seed(), "the shipped prioritiser was trained on the demo's seed"
        assert seed not in _review_eval_seeds(), "the shipped prioritiser was trained on an evaluated seed"
        assert f"--seed {seed}" in meta["command"] and "--ship" in meta["command"]
    assert meta["command"] in (DOCS / "review.md").read_text(), "docs/review.md must give the command"
    # no pickle: numpy arrays (refused with pickles) and text files
    path = PACKAGED_ROOT / MODEL_NAME / shipped.version
    with np.load(path / "arrays.npz", allow_pickle=False) as data:
        assert set(data.files) == {"cal_x", "cal_y"}
    assert sorted(p.name for p in path.iterdir()) == ["arrays.npz", "meta.json", "model.txt", "sources.txt"]
    assert shipped.booster_.num_feature() == len(FEATURES)


def test_shipped_prioritiser_ranks_the_live_queue(shipped, tmp_path):
    # an empty models directory: what a fresh install of `bastion serve` / `bastion demo` finds
    settings = Settings.load(db_path=tmp_path / "r.db", models_dir=tmp_path / "models")
    rt = build_runtime(settings, out_dir=None, rules_dir=False, models=False, clusters_on=False)
    try:
        assert rt.queue.ranking == f"learned prioritiser v{shipped.version}"
        rt.engine.process(ev(1, "account.create", "u1", T0))
        rt.engine.process(ev(2, "account.create", "u2", T0))
        for i, r in enumerate(("r1", "r2", "r3")):
            rt.engine.process(report(10 + i, r, "u1", T0 + 1000 * (i + 1)))
        rt.engine.process(report(20, "r4", "u2", T0 + 5000))
        cases = rt.queue.open_cases()
        assert len(cases) == 2
        want = shipped.priorities(cases, rt.queue, rt.queue.now_ms)
        assert rt.queue.priorities(cases) == pytest.approx(want)
        assert rt.queue.p_violations(cases) == pytest.approx(shipped.p(cases, rt.queue, rt.queue.now_ms).tolist())
        # the formula would give other numbers: the queue is not silently on the fallback
        formula = [c.priority(rt.queue.now_ms, calibrate=rt.queue.calibrate, reputation=rt.queue.reputation)
                   for c in cases]
        assert rt.queue.priorities(cases) != pytest.approx(formula)
        # queue.jsonl (what `bastion demo` and `bastion replay` write) carries the learned priorities
        rows = rt.queue.to_rows()
        by_id = {c.id: p for c, p in zip(cases, want, strict=True)}
        assert [r["case"] for r in rows] == sorted(by_id, key=lambda k: -by_id[k])
        assert [r["priority"] for r in rows] == pytest.approx([by_id[r["case"]] for r in rows], abs=1e-6)
    finally:
        rt.close()


def test_the_api_reports_the_ranking(shipped, tmp_path):
    from fastapi.testclient import TestClient

    from bastion.web.server import build_web_app

    settings = Settings.load(db_path=tmp_path / "b.db", models_dir=tmp_path / "models")
    r = TestClient(build_web_app(settings)).get("/readyz")
    assert r.status_code == 200
    assert r.json()["review_ranking"] == f"learned prioritiser v{shipped.version}"
