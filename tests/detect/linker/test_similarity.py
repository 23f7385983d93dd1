from __future__ import annotations

import math

import pytest

from bastion.detect.linker.fingerprint import Fingerprint, vector
from bastion.detect.linker.model import load_model
from bastion.detect.linker.pairs import FEATURES, ago, evidence_lines, features
from bastion.detect.linker.text import (
    char_ngrams,
    cosine,
    digit_template,
    handle_similarity,
    handle_stem,
    idf,
    jaccard,
    levenshtein,
    normalise_handle,
    style_counts,
)


def test_handle_functions():
    assert levenshtein("maria_k", "maria_k2") == 1
    assert normalise_handle("Mar1a_K") == "maria_k"
    assert handle_stem("the_maria_k") == handle_stem("maria_k_real") == handle_stem("maria_k77") == "maria_k"
    assert digit_template("jo1987") == "jo####"
    assert handle_similarity("maria_k", "mar1a_k") == 1.0
    assert handle_similarity("maria_k", "zed_q") < 0.3
    assert handle_similarity("", "x") == 0.0


def test_set_and_vector_similarity():
    assert jaccard({"a", "b"}, {"b", "c"}) == 1 / 3
    assert jaccard(set(), {"a"}) == 0.0
    assert " ma" in char_ngrams("maria")
    a = style_counts("you are pathetic lol, nobody cares")
    b = style_counts("you are pathetic lol. nobody cares at all")
    c = style_counts("Quarterly earnings exceeded analyst expectations.")
    assert cosine(a[0], b[0]) > cosine(a[0], c[0])
    fp = Fingerprint(id="x", style=a[0], fw=a[1], n_words=a[2], n_texts=1, hours=[1] * 24)
    v = vector(fp)
    assert abs(sum(x * x for x in v) - 1.0) < 1e-6


def _pop(counts):
    return lambda kind, value: counts.get((kind, value), 1)


def test_shared_carrier_ip_alone_does_not_link():
    """A carrier NAT address used by thousands carries no weight; the same address used by two does."""
    child = Fingerprint(id="c", handle="gardenfan", name="Tom B", ips=["100.64.0.1"], nets=["100.64.0.0/24"])
    parent = Fingerprint(id="p", handle="maria_k", name="Maria K", ips=["100.64.0.1"], nets=["100.64.0.0/24"],
                         suspended_ms=1)
    crowded = _pop({("ip", "100.64.0.1"): 5000, ("ip_net", "100.64.0.0/24"): 20000})
    private = _pop({("ip", "100.64.0.1"): 2, ("ip_net", "100.64.0.0/24"): 3})
    row_crowded = features(child, parent, 10, crowded, lambda _x: 0)
    row_private = features(child, parent, 10, private, lambda _x: 0)
    f = dict(zip(FEATURES, row_crowded, strict=True))
    assert f["ip_shared"] == 1 and f["ip_weight"] < 0.001
    assert dict(zip(FEATURES, row_private, strict=True))["ip_weight"] == 0.5
    model = load_model()
    p_crowded, p_private = model.predict_proba([row_crowded, row_private])
    assert p_crowded < 0.1
    assert p_crowded <= p_private + 1e-6     # both can sit on the calibration's bottom plateau
    assert not any("IP" in line for line in evidence_lines(child, parent, row_crowded, 10, crowded))


def test_shared_follows_count_by_global_popularity():
    """Sharing follows of accounts much of the platform follows is weak evidence; rare shared follows are not."""
    parent = Fingerprint(id="p", follows=["star1", "star2", "niche1", "niche2"], suspended_ms=1)
    followers = {"star1": 400, "star2": 200, "niche1": 3, "niche2": 1, "own": 2}

    def weighted(child_follows: list[str], n_accounts: int = 5000) -> float:
        child = Fingerprint(id="c", follows=child_follows, created_ms=5)
        row = dict(zip(FEATURES, features(child, parent, 10, _pop({}), lambda x: followers.get(x, 0), None,
                                          n_accounts), strict=True))
        assert row["follow_common"] == 2 and row["follow_overlap"] == 2 / 3
        return row["follow_overlap_weighted"]

    stars, niches = weighted(["star1", "star2", "own"]), weighted(["niche1", "niche2", "own"])
    assert stars < 0.5 < 2 / 3 < niches
    assert stars == pytest.approx((idf(400, 5000) + idf(200, 5000)) / sum(idf(followers[x], 5000)
                                                                            for x in ("star1", "star2", "own")))
    # without a platform size: the older 1 / log(2 + followers) weights
    old = [1 / math.log(2 + followers[x]) for x in ("star1", "star2", "own")]
    assert weighted(["star1", "star2", "own"], 0) == pytest.approx((old[0] + old[1]) / sum(old))


def test_created_after_suspension():
    parent = Fingerprint(id="p", suspended_ms=100)
    f = {ms: dict(zip(FEATURES, features(Fingerprint(id="c", created_ms=ms), parent, 200, _pop({}), lambda _x: 0),
                      strict=True))["created_after_suspension"] for ms in (50, 150, 0)}
    assert f == {50: 0.0, 150: 1.0, 0: 1.0}      # unknown creation time: created now, at the check
    assert dict(zip(FEATURES, features(Fingerprint(id="c"), Fingerprint(id="p"), 200, _pop({}), lambda _x: 0),
                    strict=True))["created_after_suspension"] == 0.5


def test_evidence_lines_are_readable():
    day = 86_400_000
    parent = Fingerprint(id="u2", handle="maria_k", name="Maria K", devices=["d1"], suspended_ms=day,
                         follows=[f"f{i}" for i in range(10)], targets=["t1"])
    child = Fingerprint(id="u9", handle="maria_k2", name="Maria K", devices=["d1"],
                        first_follows=[f"f{i}" for i in range(7)] + ["x1", "x2", "x3"],
                        follows=[f"f{i}" for i in range(7)] + ["x1", "x2", "x3"], targets=["t1"])
    pop = _pop({})
    row = features(child, parent, 4 * day, pop, lambda _x: 10)
    lines = evidence_lines(child, parent, row, 4 * day, pop)
    assert lines[0] == "same device as u2 (suspended 3 days ago)"
    assert "handle maria_k2 close to maria_k" in lines
    assert "70% of first follows (7 of 10) were accounts u2 followed" in lines
    assert any(line.startswith("100% of the accounts it replied to or mentioned were u2's targets") for line in lines)
    assert ago(90 * 60_000) == "1 hour ago"
