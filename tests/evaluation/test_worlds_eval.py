"""Cross-world evaluation: the new metrics on hand-built results, the worst-world reduction, and a tiny 2-world
`bastion eval --worlds` run through the full engine."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from bastion.evaluation import evaluate
from bastion.evaluation.worlds import CAPABILITIES, markdown, parse_worlds, strip_ctx, worst
from bastion.sim import SimConfig, simulate


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("worldsim")
    simulate(SimConfig(users=800, days=0.5, seed=1004, world=1004, text_split="test"), out)
    return out


def _write(d: Path, name: str, rows: list[dict]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_parse_worlds() -> None:
    assert parse_worlds("1001-1003") == [1001, 1002, 1003]
    assert parse_worlds("5, 1-2,5") == [1, 2, 5]
    for bad in ("", "a-b", "3-1", "0"):
        with pytest.raises(ValueError):
            parse_worlds(bad)


def test_worst_takes_the_minimum_or_maximum_by_direction() -> None:
    per = {1: {k: 0.9 for k, *_ in CAPABILITIES}, 2: {k: 0.5 for k, *_ in CAPABILITIES}}
    per[2]["link_mrr"] = None
    w = worst(per)
    assert w["queue_precision_at_50"] == {"value": 0.5, "world": 2, "mean": pytest.approx(0.7), "n": 2}
    assert w["false_link_share"]["value"] == 0.9 and w["false_link_share"]["world"] == 1  # lower is better
    assert w["benign_suspended_or_limited"]["world"] == 1
    assert w["link_mrr"] == {"value": 0.9, "world": 1, "mean": 0.9, "n": 1}
    report = {"worlds": [1, 2], "users": 10, "days": 1.0, "contexts": ["ctx"], "splits": ["train"],
              "per_world": {"ctx": {"1": per[1], "2": per[2]}}, "worst": {"ctx": w}}
    md = markdown(report, "bastion eval --worlds 1-2")
    assert "| review queue precision@50 | >= 0.90 | 0.500 | 2 | 0.700 |" in md


def test_new_metrics_on_hand_built_results(sim: Path, tmp_path: Path) -> None:
    truth = msgspec.json.decode((sim / "truth.json").read_bytes())
    acc = truth["accounts"]
    bad = [u for u, r in acc.items() if r["bad"]]
    benign = [u for u, r in acc.items() if not r["bad"]]
    evaders = {u: r["evades"] for u, r in acc.items() if r.get("evades")}
    assert bad and evaders
    # every bad account gets some capability's score 1 (bad accounts PR-AUC 1), two benign accounts are
    # suspended / limited, one evader is linked right and one benign account wrongly
    scores = [{"subject": {"kind": "account", "id": u}, "scores": {"spam": 1.0}} for u in bad[: len(bad) // 2]]
    scores += [{"subject": {"kind": "account", "id": u}, "scores": {"abuse": 1.0}} for u in bad[len(bad) // 2:]]
    ev, parent = next(iter(evaders.items()))
    actions = [
        {"id": "a1", "ts": 1, "subject": {"kind": "account", "id": benign[0]}, "action": "account.suspend"},
        {"id": "a2", "ts": 1, "subject": {"kind": "account", "id": benign[1]}, "action": "account.limit"},
        {"id": "a3", "ts": 1, "subject": {"kind": "account", "id": benign[1]}, "action": "account.limit"},
        {"id": "a4", "ts": 1, "subject": {"kind": "account", "id": bad[0]}, "action": "account.suspend"},
        {"id": "a5", "ts": 1, "subject": {"kind": "account", "id": ev}, "action": "account.link",
         "evidence": {"linked_to": parent}},
        {"id": "a6", "ts": 1, "subject": {"kind": "account", "id": benign[2]}, "action": "account.link",
         "evidence": {"linked_to": benign[3]}},
    ]
    abusive = set(truth["posts"]["abusive"])
    scores += [{"subject": {"kind": "post", "id": p}, "scores": {"abuse_context": 1.0}} for p in abusive]
    _write(tmp_path / "res", "scores.jsonl", scores)
    _write(tmp_path / "res", "actions.jsonl", actions)
    m = evaluate(sim / "truth.json", tmp_path / "res", events=sim / "events.jsonl")
    assert m["bad_accounts"]["pr_auc"] == pytest.approx(1.0)
    assert m["bad_accounts"]["n_pos"] == len(bad)
    assert m["enforcement"] == {"benign_suspended": 1, "benign_limited": 1, "benign_suspended_or_limited": 2}
    ro = m["repeat_offenders"]
    assert ro["linked_accounts"] == 2 and ro["false_link_accounts"] == 1 and ro["false_link_share"] == 0.5
    d = m["posts"]["abuse_directed"]
    assert d["pr_auc"] == pytest.approx(1.0) and d["score"] == "abuse_context"
    assert d["by_score"]["any"]["pr_auc"] == pytest.approx(1.0)
    assert d["by_score"]["abuse"]["pr_auc"] < 0.5  # no text-model score given: ranks no better than chance
    assert 0 < d["n_pos"] <= len(abusive) and d["posts"] > d["n_pos"]
    # without --events the events.jsonl beside truth.json is used; with none there is no directed-post figure
    assert evaluate(sim / "truth.json", tmp_path / "res")["posts"]["abuse_directed"] == d
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "truth.json").write_bytes((sim / "truth.json").read_bytes())
    assert "abuse_directed" not in evaluate(alone / "truth.json", tmp_path / "res")["posts"]
    # banter (friends' profanity) is in the offensive pool but never an abusive truth post
    banter_authors = {u for u, r in acc.items() if "banter" in (r.get("lookalike") or [])}
    assert banter_authors


def test_strip_ctx(sim: Path, tmp_path: Path) -> None:
    strip_ctx(sim / "events.jsonl", tmp_path / "e.jsonl")
    a = (sim / "events.jsonl").read_bytes().splitlines()
    b = (tmp_path / "e.jsonl").read_bytes().splitlines()
    assert len(a) == len(b) and b'"ctx"' in (sim / "events.jsonl").read_bytes()
    assert b'"ctx"' not in (tmp_path / "e.jsonl").read_bytes()
    for x, y in zip(a[::97], b[::97], strict=True):
        ex, ey = msgspec.json.decode(x), msgspec.json.decode(y)
        ex.pop("ctx", None)
        assert ex == ey


def test_eval_worlds_smoke(tmp_path: Path) -> None:
    """Two tiny test worlds, simulated, replayed through the full engine with and without ip/device, scored."""
    from typer.testing import CliRunner

    from bastion.cli import app

    r = CliRunner().invoke(app, ["eval", "--worlds", "1001-1002", "--quick", "--cache", str(tmp_path / "cache"),
                                 "--json", str(tmp_path / "w.json"), "--markdown", str(tmp_path / "w.md")])
    assert r.exit_code == 0, r.output
    assert "[4/4] world 1002 (test) noctx" in r.output
    assert "WORST WORLD (with ip/device)" in r.output and "WORST WORLD (without ip/device)" in r.output
    assert "worst review queue precision@50:" in r.output
    rep = json.loads((tmp_path / "w.json").read_text())
    assert rep["worlds"] == [1001, 1002] and rep["splits"] == ["test"]
    for c in ("ctx", "noctx"):
        assert set(rep["per_world"][c]) == {"1001", "1002"}
        w = rep["worst"][c]["bot_pr_auc"]
        assert w["world"] in (1001, 1002)
        assert w["value"] == min(rep["per_world"][c][x]["bot_pr_auc"] for x in ("1001", "1002"))
        assert rep["per_world"][c]["1001"]["abuse_directed_pr_auc"] is not None
    assert "| bot cohorts PR-AUC (bot score) |" in (tmp_path / "w.md").read_text()
    # the worlds are cached: a second run reuses them (no replay) and gives the same report
    markers = sorted((tmp_path / "cache").glob("*/results-*/replay-complete"))
    assert len(markers) == 4
    stamps = [m.stat().st_mtime_ns for m in markers]
    r2 = CliRunner().invoke(app, ["eval", "--worlds", "1001-1002", "--quick", "--cache", str(tmp_path / "cache"),
                                  "--json", str(tmp_path / "w2.json")])
    assert r2.exit_code == 0, r2.output
    assert json.loads((tmp_path / "w2.json").read_text())["worst"] == rep["worst"]
    assert [m.stat().st_mtime_ns for m in markers] == stamps
