"""The canonical text corpora and their splits."""

from __future__ import annotations

import pytest

from bastion.datasets.text import (
    CORPORA,
    SPLITS,
    find_data_dir,
    load_corpus,
    sms_all,
    split_fingerprint,
    youtube_videos,
)

SIZES = {
    ("offensive", "train"): 11916, ("offensive", "val"): 1324, ("offensive", "test"): 860,
    ("hate", "train"): 9000, ("hate", "val"): 1000, ("hate", "test"): 2970,
    ("sms", "train"): 3308, ("sms", "val"): 828, ("sms", "test"): 1035,
    ("youtube", "train"): 1268, ("youtube", "val"): 318, ("youtube", "test"): 370,
}


@pytest.mark.parametrize("name", CORPORA)
def test_splits_sizes_labels_and_disjointness(name: str) -> None:
    parts = {s: load_corpus(name, s) for s in SPLITS}
    for s, rows in parts.items():
        assert len(rows) == SIZES[(name, s)]
        assert {y for _, y in rows} == {0, 1}
        assert all(isinstance(t, str) for t, _ in rows)
    if name == "sms":  # deduplicated, so our own splits never share a text
        train, val, test = ({t for t, _ in parts[s]} for s in SPLITS)
        assert not (train & test) and not (val & test) and not (train & val)


def test_sms_is_deduplicated_before_splitting() -> None:
    rows = sms_all()
    assert len(rows) == 5574 - 403
    texts = [t for t, _ in rows]
    assert len(set(texts)) == len(texts)
    split_texts = [t for s in SPLITS for t, _ in load_corpus("sms", s)]
    assert sorted(split_texts) == sorted(texts)
    assert not {t for t, _ in load_corpus("sms", "train")} & {t for t, _ in load_corpus("sms", "test")}


def test_splits_are_deterministic() -> None:
    assert split_fingerprint(load_corpus("sms", "test")) == split_fingerprint(load_corpus("sms", "test"))


def test_youtube_test_is_shakira_and_videos_complete() -> None:
    videos = youtube_videos()
    assert [len(v) for v in videos.values()] == [350, 350, 438, 448, 370]
    assert load_corpus("youtube", "test") == videos["Youtube05-Shakira"]


def test_data_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path))
    assert find_data_dir() == tmp_path


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError):
        load_corpus("nope", "train")
    with pytest.raises(ValueError):
        load_corpus("sms", "dev")
