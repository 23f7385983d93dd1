"""The behaviour bot model: graph features, snapshot collection from a replay, training, artifact round trip,
the detector's combination and the simulator metrics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bastion.evaluation.bots_sim import cohort_metrics, collect, recall_at_precision
from bastion.features.graph import GRAPH_SCHEMA, graph_features
from bastion.models.bots import BotDetector, BotModel
from bastion.models.bots.behaviour import BEHAVIOUR_SCHEMA, MIN_EVENTS, is_record_point, train_behaviour
from bastion.models.bots.features import MODEL_SCHEMAS
from bastion.models.registry import ModelError, ModelRegistry
from bastion.state.memory import MemoryState
from bastion.state.model import Account


def _state() -> MemoryState:
    st = MemoryState()
    for a in ("a", "b", "c", "d"):
        st.accounts.put(Account(id=a, followers=3, created_ms=1))
    for src, dst in (("a", "b"), ("b", "a"), ("a", "c"), ("d", "a")):
        st.graph.add("follow", src, dst, 1)
    return st


def test_graph_features_reciprocity_and_neighbours() -> None:
    st = _state()
    f = graph_features(st.accounts.get("a"), st, 10 * 86_400_000)
    assert set(f) == set(GRAPH_SCHEMA)
    assert f["g_recip_out"] == 0.5 and f["g_recip_in"] == 0.5
    assert f["g_log_out"] == pytest.approx(math.log1p(2)) and f["g_log_mutual"] == pytest.approx(math.log1p(1))
    assert f["g_nb_out_log_followers"] == pytest.approx(math.log1p(3))
    assert f["g_nb_in_frac_new"] == 1.0  # followers are 10 days old
    lone = graph_features(st.accounts.get("c"), st, 0)
    assert math.isnan(lone["g_recip_out"]) and lone["g_recip_in"] == 0.0
    assert math.isnan(lone["id_ip_max"])  # no identifiers seen: missing, not zero


def test_identifier_sharing() -> None:
    st = _state()
    for a in ("a", "b", "c"):
        st.identifiers.add("ip", "10.0.0.1", a, 1)
    acc = st.accounts.get("a")
    acc.ips = ["10.0.0.1"]
    assert graph_features(acc, st, 0)["id_ip_max"] == pytest.approx(math.log1p(3))


def test_schema_registered_and_record_points() -> None:
    assert MODEL_SCHEMAS["bot_behaviour"] == BEHAVIOUR_SCHEMA
    assert len(set(BEHAVIOUR_SCHEMA)) == len(BEHAVIOUR_SCHEMA)
    assert [n for n in range(1, 20) if is_record_point(n)] == [2, 3, 4, 6, 8, 12, 16]


def test_recall_at_precision() -> None:
    y = np.array([1, 1, 0, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1])
    assert recall_at_precision(y, s, 0.95) == pytest.approx(2 / 3)
    assert recall_at_precision(y, s, 0.7) == 1.0
    assert recall_at_precision(np.array([1, 0]), np.array([0.5, 0.5]), 0.95) == 0.0  # ties cut together


def test_cohort_metrics_cells() -> None:
    table = {"cohort": np.array(["spam_bot", "spam_bot", "benign", "benign", "harasser"]),
             "difficulty": np.array(["obvious", "moderate", "", "", "obvious"]),
             "bad": np.array([True, True, False, False, True]),
             "score": np.array([0.9, 0.4, 0.5, 0.1, 0.95])}
    m = cohort_metrics(table)
    assert m["spam_bot/obvious"]["recall_at_p95"] == 1.0 and m["spam_bot/obvious"]["n_neg"] == 2
    assert m["spam_bot/moderate"]["recall_at_p95"] == 0.0
    assert m["all bots/all"]["n_neg"] == 3  # the harasser is a negative for the bot capability


@pytest.fixture(scope="module")
def tiny_rows(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from bastion.evaluation.bots_sim import simulate

    out = tmp_path_factory.mktemp("sim")
    simulate(out, seed=7, users=300, days=0.25, no_ctx=False, bad_scale=4.0, split="train")
    return collect(out)


def test_collect_train_round_trip_and_detector(tiny_rows, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = tiny_rows
    assert rows.X.shape[1] == len(BEHAVIOUR_SCHEMA) and rows.final.any() and 0 < rows.y.sum() < len(rows.y)
    assert (rows.n_events >= MIN_EVENTS).all() and (rows.n_events == 2).any()
    model = train_behaviour(rows, rounds_scale=0.05, log=lambda _: None)
    art = model.to_artifact({"combine_weight": 1.0, "min_events": 3})
    back = BotModel.from_artifact(art)
    np.testing.assert_allclose(back.predict_proba(rows.X[:20]), model.predict_proba(rows.X[:20]))

    reg = ModelRegistry([tmp_path, *ModelRegistry.default().roots])
    reg.save("bot_behaviour", art, root=tmp_path)
    det = BotDetector.load(reg)
    assert det.behaviour is not None and det.behaviour_weight == 1.0
    st = _state()
    acc = st.accounts.get("a")
    acc.activity.n_events = 5
    p_state = det.probability(acc, 10, st)
    det._pcache.clear()
    p_plain = det.probability(acc, 10)
    assert 0.0 <= p_state <= 1.0 and p_state != p_plain
    p, expl = det.score_uncached(acc, 10, st)
    assert p == pytest.approx(p_state) and expl

    bad = BotModel(BEHAVIOUR_SCHEMA[:-1], name="bot_behaviour", rounds_scale=0.05).fit(rows.X[:, :-1], rows.y)
    reg2 = ModelRegistry([tmp_path / "other", *ModelRegistry.default().roots])
    reg2.save("bot_behaviour", bad.to_artifact(), root=tmp_path / "other")
    with pytest.raises(ModelError):
        BotDetector.load(reg2)


def test_merge_bots_section_keeps_the_other_part(tmp_path: Path) -> None:
    from bastion.evaluation.bots_sim import SIM_HEADING, merge_bots_section
    from bastion.evaluation.docs import write_section

    doc = tmp_path / "evaluation.md"
    write_section(doc, "bots", "## Bots\n\nreal v1", title="# Evaluation")
    write_section(doc, "bots", merge_bots_section(doc, sim_md=SIM_HEADING + "\n\nsim v1"))
    write_section(doc, "bots", merge_bots_section(doc, real_md="## Bots\n\nreal v2"))
    text = doc.read_text()
    assert "real v2" in text and "sim v1" in text and "real v1" not in text
    write_section(doc, "bots", merge_bots_section(doc, sim_md=SIM_HEADING + "\n\nsim v2"))
    text = doc.read_text()
    assert "real v2" in text and "sim v2" in text and "sim v1" not in text and text.count(SIM_HEADING) == 1


def test_engaged_post_features_read_the_posts_now() -> None:
    from bastion.state.model import Post

    st = _state()
    st.posts.put(Post(id="p1", author="b", ts=0, likes=30, reposts=2))   # b has 3 followers
    st.posts.put(Post(id="p2", author="c", ts=0, likes=0))
    acc = st.accounts.get("a")
    acc.activity.recent_engaged = ["p1", "p2", "gone"]
    f = graph_features(acc, st, 10)
    assert f["eng_post_log_eng"] == pytest.approx((math.log1p(32) + 0.0) / 2)
    assert f["eng_post_eng_vs_author"] == pytest.approx((math.log(33 / 4) + math.log(1 / 4)) / 2)
    assert math.isnan(graph_features(st.accounts.get("b"), st, 10)["eng_post_log_eng"])
