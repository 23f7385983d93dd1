"""bastion eval on hand-built results directories: perfect results score 1, random ones score low, empty ones 0/NA."""

from __future__ import annotations

import json
import random
from pathlib import Path

import msgspec
import numpy as np
import pytest

from bastion.evaluation import evaluate, pr_summary, print_scoreboard
from bastion.sim import SimConfig, simulate

POS = {
    "bot": {"spam_bot", "follow_farm", "like_farm", "camouflaged_bot"},
    "abuse": {"harasser", "pile_on"},
    "spam": {"spam_bot"},
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evalsim")
    simulate(SimConfig(users=1500, days=1.0, seed=11), out)
    return out


def _write(d: Path, name: str, rows: list[dict]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def _perfect(truth: dict, d: Path) -> None:
    acc = truth["accounts"]
    coord = {m for c in truth["campaigns"].values() for m in c["members"]}
    scores, actions, queue = [], [], []
    for u, r in acc.items():
        c, pc = r["cohort"], r.get("parent_cohort")
        sc = {
            "bot": float(c in POS["bot"]), "spam": float(c == "spam_bot" or pc == "spam_bot"),
            "abuse": float(c in POS["abuse"] or pc == "harasser"), "evasion": float(c == "ban_evader"),
            "coordination": float(u in coord),
        }
        rec = {"subject": {"kind": "account", "id": u}, "scores": sc}
        if r.get("evades"):
            rec["linked_to"] = [{"id": r["evades"], "score": 0.99}, {"id": "u1", "score": 0.2}]
            ids = truth["evader_events"].get(u, {}).get("ids", [])
            if ids:
                actions.append({"id": f"a{len(actions)}", "ts": truth["evader_events"][u]["ts"][0], "event_id": ids[0],
                                "subject": {"kind": "account", "id": u}, "action": "account.link",
                                "source": "linker", "evidence": {"linked_to": r["evades"]}})
        scores.append(rec)
    spam, abusive = set(truth["posts"]["spam"]), set(truth["posts"]["abusive"])
    for i in range(truth["post_count"]):
        p = f"p{i}"
        scores.append({"subject": {"kind": "post", "id": p}, "scores": {"spam": float(p in spam), "abuse": float(p in abusive)}})
    clusters = [{"id": k, "kind": "coordination", "members": c["members"], "score": 1.0} for k, c in truth["campaigns"].items()]
    bad = sorted((s for s in truth["exposure"] if s in acc), key=lambda s: -truth["exposure"][s])
    for rank, s in enumerate(bad, 1):
        queue.append({"rank": rank, "case": f"k{rank}", "subject": {"kind": "account", "id": s}, "priority": 1 - rank / 1e4})
    _write(d, "scores.jsonl", scores)
    _write(d, "actions.jsonl", actions)
    _write(d, "clusters.jsonl", clusters)
    _write(d, "queue.jsonl", queue)
    (d / "summary.json").write_text(json.dumps({"events": 1, "events_per_s": 1.0}))


def test_pr_summary_edges() -> None:
    assert pr_summary(np.array([1, 0, 1, 0]), np.array([0.9, 0.1, 0.8, 0.2]))["pr_auc"] == pytest.approx(1.0)
    assert pr_summary(np.array([0, 0]), np.array([0.1, 0.2]))["pr_auc"] is None
    tied = pr_summary(np.array([1, 0, 0, 0]), np.zeros(4))
    assert tied["pr_auc"] == pytest.approx(0.25)


def test_perfect_results_score_one(sim: Path, tmp_path: Path) -> None:
    truth = msgspec.json.decode((sim / "truth.json").read_bytes())
    _perfect(truth, tmp_path / "res")
    m = evaluate(sim / "truth.json", tmp_path / "res")
    for cap in ("bot", "spam", "abuse", "evasion", "coordination"):
        assert m["accounts"][cap]["pr_auc"] == pytest.approx(1.0), cap
    assert m["posts"]["spam"]["pr_auc"] == pytest.approx(1.0)
    assert m["posts"]["abuse"]["pr_auc"] == pytest.approx(1.0)
    assert m["repeat_offenders"]["mrr"] == pytest.approx(1.0)
    assert m["repeat_offenders"]["actions_before_detection_median"] == 0
    assert m["coordination"]["member_precision"] == 1.0 and m["coordination"]["member_recall"] == 1.0
    assert m["coordination"]["cluster_purity"] == 1.0
    assert m["coordination"]["viral_members_flagged"] == 0
    q = m["review_queue"]
    assert q["precision_at_10"] == 1.0
    assert q["capacity_10"]["bastion"] >= q["capacity_10"]["fifo"]
    print_scoreboard(m)
    json.dumps(m)


def test_random_results_score_low(sim: Path, tmp_path: Path) -> None:
    truth = msgspec.json.decode((sim / "truth.json").read_bytes())
    rng = random.Random(0)
    rows = [{"subject": {"kind": "account", "id": u},
             "scores": {k: rng.random() for k in ("bot", "spam", "abuse", "evasion", "coordination")},
             "linked_to": [{"id": rng.choice(list(truth["accounts"])), "score": rng.random()}]}
            for u in truth["accounts"]]
    _write(tmp_path / "res", "scores.jsonl", rows)
    m = evaluate(sim / "truth.json", tmp_path / "res")
    for cap in ("bot", "spam", "abuse"):
        assert m["accounts"][cap]["pr_auc"] < 0.2, cap
    assert m["repeat_offenders"]["mrr"] < 0.1


def test_missing_and_broken_files_do_not_crash(sim: Path, tmp_path: Path) -> None:
    m = evaluate(sim / "truth.json", tmp_path / "nothing-here")
    assert m["accounts"]["bot"]["pr_auc"] < 0.2
    assert m["coordination"]["member_precision"] is None
    assert m["repeat_offenders"]["mrr"] == 0.0
    d = tmp_path / "broken"
    d.mkdir()
    (d / "scores.jsonl").write_text('not json\n{"subject": 3}\n{"subject":{"kind":"account","id":"u1"},"scores":{"bot":"x"}}\n')
    (d / "summary.json").write_text("{")
    (d / "queue.jsonl").write_text('{"rank":1,"subject":{"kind":"post","id":"p999999"}}\n')
    m = evaluate(sim / "truth.json", d)
    assert m["review_queue"]["cases"] == 1


def test_cli_writes_json_and_report(sim: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bastion.cli import app

    truth = msgspec.json.decode((sim / "truth.json").read_bytes())
    _perfect(truth, tmp_path / "res")
    r = CliRunner().invoke(app, ["eval", "--truth", str(sim / "truth.json"), "--results", str(tmp_path / "res"),
                                 "--json", str(tmp_path / "m.json"), "--report", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "m.json").read_text())["accounts"]["bot"]["pr_auc"] == pytest.approx(1.0)
    html = (tmp_path / "r.html").read_text()
    assert "data:image/png;base64" in html
