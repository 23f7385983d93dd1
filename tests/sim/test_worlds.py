"""Randomized worlds: the default world is unchanged, worlds differ and are deterministic per number, the drawn
parameters respect the documented priors, and test worlds draw test texts only (training worlds train texts)."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from bastion.sim import SimConfig, simulate
from bastion.sim.data import clean_text, corpus_rows
from bastion.sim.worlds import (
    PRIORS,
    STANDARD_TEST_WORLDS,
    TEST_WORLDS,
    TRAIN_WORLDS,
    cohort_sizes,
    draw_world,
    priors_markdown,
    world_split,
)

SMALL = dict(users=600, days=0.5)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("cfg", "events_sha", "truth_sha"),
    [
        (dict(users=400, days=0.5, seed=3),
         "94c58d01f9d94081897e7f71d4410516cf92079335572ca6e35e386a1643b65b",
         "c6be1314ae70660bbb0b7f99dfd25266f132e891fcbffb452f6fb5938919db2f"),
        (dict(users=300, days=0.25, seed=1, ctx=False),
         "db22b09b35200fe9c097d8ee6e6ff369861aa793780c54b8ae62f6c75e3d0064",
         "0cca9c3e32b97c641ed02f8a127ccf5fc3198bcbd0779b5ff05eee4cc9fda3eb"),
    ],
)
def test_default_world_is_byte_identical(cfg: dict, events_sha: str, truth_sha: str, tmp_path: Path) -> None:
    """Hashes of the default world: without --world nothing may change. Recomputed once for a truth fix (TweetEval
    hate's "not hateful" negatives, many of them insults, left the benign pool) and a brigade fix (episodes start early enough for their report window to end inside
    the run); worlds did not change them."""
    simulate(SimConfig(**cfg), tmp_path)  # type: ignore[arg-type]
    assert _digest(tmp_path / "events.jsonl") == events_sha
    assert _digest(tmp_path / "truth.json") == truth_sha


def test_default_cli_is_byte_identical(tmp_path: Path) -> None:
    """`bastion sim` without --world (seed and text split left to their defaults) is the same default world."""
    from typer.testing import CliRunner

    from bastion.cli import app

    r = CliRunner().invoke(app, ["sim", "--out", str(tmp_path), "--users", "300", "--days", "0.25", "--seed", "1",
                                 "--no-ctx"])
    assert r.exit_code == 0, r.output
    assert _digest(tmp_path / "events.jsonl") == "db22b09b35200fe9c097d8ee6e6ff369861aa793780c54b8ae62f6c75e3d0064"
    assert _digest(tmp_path / "truth.json") == "0cca9c3e32b97c641ed02f8a127ccf5fc3198bcbd0779b5ff05eee4cc9fda3eb"


def test_protocol_ranges_are_disjoint() -> None:
    assert not set(TRAIN_WORLDS) & set(TEST_WORLDS)
    assert len(STANDARD_TEST_WORLDS) >= 10 and set(STANDARD_TEST_WORLDS) <= set(TEST_WORLDS)
    assert world_split(1) == world_split(999) == "train"
    assert world_split(1001) == world_split(1010) == "test"
    for bad in (0, 1000, 2000):
        with pytest.raises(ValueError):
            world_split(bad)


def test_draws_are_deterministic_and_within_priors() -> None:
    seen = []
    for w in [*range(1, 40), *STANDARD_TEST_WORLDS]:
        p = draw_world(w)
        assert p == draw_world(w)
        for name, (dist, lo, hi, _) in PRIORS.items():
            assert lo <= p[name] <= hi, (w, name, p[name])
            if dist == "int":
                assert isinstance(p[name], int)
        assert sum(p["difficulty_mix"]) == pytest.approx(1.0)
        seen.append(p)
    # the priors are wide: across 49 worlds every parameter takes many values and covers most of its range
    for name, (_, lo, hi, _) in PRIORS.items():
        vals = [p[name] for p in seen]
        assert len(set(vals)) >= (3 if PRIORS[name][0] == "int" else 40), name
        assert max(vals) - min(vals) >= 0.5 * (hi - lo) or PRIORS[name][0] == "loguniform", name
    sizes = [sum(cohort_sizes(p, 5000).values()) for p in seen]
    assert max(sizes) > 2 * min(sizes)


def test_priors_table_is_in_the_docs() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "simulator.md").read_text()
    assert priors_markdown() in doc


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    out = {}
    for w in (1001, 1002):
        out[w] = tmp_path_factory.mktemp(f"w{w}")
        simulate(SimConfig(**SMALL, seed=w, world=w, text_split="test"), out[w])  # type: ignore[arg-type]
    return out


def _truth(d: Path) -> dict:
    return msgspec.json.decode((d / "truth.json").read_bytes())


def test_world_is_deterministic(worlds: dict[int, Path], tmp_path: Path) -> None:
    simulate(SimConfig(**SMALL, seed=1001, world=1001, text_split="test"), tmp_path)  # type: ignore[arg-type]
    assert _digest(tmp_path / "events.jsonl") == _digest(worlds[1001] / "events.jsonl")
    assert _digest(tmp_path / "truth.json") == _digest(worlds[1001] / "truth.json")


def test_worlds_differ_in_parameters_and_population(worlds: dict[int, Path]) -> None:
    a, b = _truth(worlds[1001]), _truth(worlds[1002])
    assert a["world"]["id"] == 1001 and a["world"]["split"] == "test" and a["meta"]["world"] == 1001
    assert a["world"]["params"] == draw_world(1001) and b["world"]["params"] == draw_world(1002)
    assert a["world"]["params"] != b["world"]["params"]
    ca = Counter(r["cohort"] for r in a["accounts"].values())
    cb = Counter(r["cohort"] for r in b["accounts"].values())
    assert ca != cb
    la = Counter(x for r in a["accounts"].values() for x in r.get("lookalike", []))
    lb = Counter(x for r in b["accounts"].values() for x in r.get("lookalike", []))
    assert la != lb
    assert _digest(worlds[1001] / "events.jsonl") != _digest(worlds[1002] / "events.jsonl")


def test_world_archetypes_follow_their_parameters(worlds: dict[int, Path]) -> None:
    for w, d in worlds.items():
        p = draw_world(w)
        truth = _truth(d)
        acc = truth["accounts"]
        n = len(acc)
        look = Counter(x for r in acc.values() for x in r.get("lookalike", []))
        for tag, share in (("lurker", "lurker_share"), ("empty_bio", "empty_bio_share"),
                           ("digit_handle", "digit_handle_share"), ("default_avatar", "default_avatar_share"),
                           ("heavy_liker", "heavy_liker_share"), ("night_shift", "night_shift_share")):
            expect = p[share] * n
            assert abs(look[tag] - expect) <= 4 * expect**0.5 + 8, (w, tag, look[tag], expect)
        bad = sum(1 for r in acc.values() if r["bad"])
        want = sum(cohort_sizes(p, n).values())
        assert 0.5 * want - 5 <= bad <= 1.5 * want + 5, (w, bad, want)
    # the profile cues reach the stream: backfilled profiles carry empty bios and the default avatar
    for line in (worlds[1001] / "events.jsonl").read_bytes().splitlines()[:2000]:
        e = msgspec.json.decode(line)
        if e["type"] == "account.update" and e["profile"]["bio"] == "":
            break
    else:
        raise AssertionError("no empty bio in the backfill")


def test_world_text_comes_from_its_own_split_only(worlds: dict[int, Path], tmp_path: Path) -> None:
    """Test worlds draw test texts only; a training world draws train texts only (no test text leaks)."""
    def texts(d: Path) -> set[str]:
        out = set()
        for line in (d / "events.jsonl").read_bytes().splitlines():
            e = msgspec.json.decode(line)
            if e["type"] == "post.create":
                out.add(e["post"].get("text", ""))
            elif e["type"] == "message.send":
                out.add(e.get("text", ""))
        return out

    split_texts = {s: {clean_text(t) for name in ("tweeteval_offensive", "tweeteval_hate")
                       for t, _ in corpus_rows(name, s)} for s in ("train", "test")}
    only = {s: {t for t in split_texts[s] - split_texts[o] if len(t) > 25}
            for s, o in (("train", "test"), ("test", "train"))}
    test_world = texts(worlds[1001])
    assert test_world & only["test"], "a test world draws test-split texts"
    assert not test_world & only["train"]
    simulate(SimConfig(**SMALL, seed=7, world=7, text_split="train"), tmp_path)  # type: ignore[arg-type]
    train_world = texts(tmp_path)
    assert _truth(tmp_path)["world"]["split"] == "train"
    assert train_world & only["train"]
    assert not train_world & only["test"]
    with pytest.raises(ValueError, match="train world"):
        simulate(SimConfig(users=100, days=0.1, world=7, text_split="test"), tmp_path / "x")


def test_cli_world_uses_the_world_split_and_seed(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bastion.cli import app

    r = CliRunner().invoke(app, ["sim", "--out", str(tmp_path / "a"), "--users", "300", "--days", "0.2",
                                 "--world", "12"])
    assert r.exit_code == 0, r.output
    t = _truth(tmp_path / "a")
    assert t["meta"]["seed"] == 12 and t["meta"]["text_split"] == "train" and t["world"]["id"] == 12
    r = CliRunner().invoke(app, ["sim", "--out", str(tmp_path / "b"), "--users", "300", "--days", "0.2",
                                 "--world", "1003", "--text-split", "train"])
    assert r.exit_code != 0 and "test world" in r.output
