"""Text corpora (abuse, hate, spam) with their canonical, reproducible splits.

Every loader returns ``list[tuple[str, int]]``: the raw text and a 0/1 label (1 = unwanted: offensive, hate,
spam). Splits are fixed so that every model, test and the simulator see the same rows:

* ``offensive`` / ``hate``: TweetEval's own train/val/test files.
* ``sms``: exact duplicate texts dropped (first label kept), then a stratified 80/20 train/test split with
  ``random_state=13``; ``val`` is carved from train the same way (80/20, stratified, ``random_state=13``).
* ``youtube``: ``test`` is the Youtube05-Shakira video (held out for the simulator and as one of the
  leave-one-video-out folds); train/val are a stratified 80/20 split of the other four videos.
  :func:`youtube_videos` gives every video for leave-one-video-out evaluation.

The data folder is ``$BASTION_DATA_DIR`` if set, else the first ``shared/data`` found beside the repository.

>>> sorted(CORPORA)
['hate', 'offensive', 'sms', 'youtube']
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from bastion.datasets import DataNotFoundError, require
from bastion.datasets import data_dir as _data_dir

Example = tuple[str, int]

CORPORA = ("offensive", "hate", "sms", "youtube")
SPLITS = ("train", "val", "test")
SPLIT_SEED = 13
YOUTUBE_VIDEOS = (
    "Youtube01-Psy",
    "Youtube02-KatyPerry",
    "Youtube03-LMFAO",
    "Youtube04-Eminem",
    "Youtube05-Shakira",
)
YOUTUBE_TEST_VIDEO = "Youtube05-Shakira"

_TWEETEVAL_DIRS = {"offensive": "tweeteval_offensive", "hate": "tweeteval_hate"}


def find_data_dir() -> Path:
    """The data folder (:func:`bastion.datasets.data_dir`); :class:`DataNotFoundError` when it does not exist."""
    from bastion.settings import data_dir_origin

    root = _data_dir()
    if not root.is_dir():
        raise DataNotFoundError(f"the data folder {root} does not exist ({data_dir_origin()}); run "
                                "`bastion data fetch` or set BASTION_DATA_DIR")
    return root


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace", newline="\n") as fh:
        return [line.rstrip("\r\n") for line in fh]


def _tweeteval(name: str, split: str, data_dir: Path) -> list[Example]:
    base = require(data_dir, _TWEETEVAL_DIRS[name], f"{split}_text.txt", f"{split}_labels.txt")
    texts = _read_lines(base / f"{split}_text.txt")
    labels = [int(x) for x in _read_lines(base / f"{split}_labels.txt") if x.strip()]
    if len(texts) != len(labels):
        raise ValueError(f"{base}: {split} has {len(texts)} texts but {len(labels)} labels")
    return [(t.strip(), y) for t, y in zip(texts, labels, strict=True)]


def _stratified_split(rows: Sequence[Example], test_size: float = 0.2) -> tuple[list[Example], list[Example]]:
    from sklearn.model_selection import train_test_split

    labels = [y for _t, y in rows]
    train, test = train_test_split(list(rows), test_size=test_size, random_state=SPLIT_SEED, stratify=labels)
    return list(train), list(test)


def _dedupe(rows: Sequence[Example]) -> list[Example]:
    seen: set[str] = set()
    out: list[Example] = []
    for text, label in rows:
        if text not in seen:
            seen.add(text)
            out.append((text, label))
    return out


def sms_all(data_dir: Path | None = None) -> list[Example]:
    """Every SMS, exact duplicate texts dropped (the first occurrence kept)."""
    path = require(data_dir or find_data_dir(), "sms_spam_collection", "SMSSpamCollection") / "SMSSpamCollection"
    rows: list[Example] = []
    for line in _read_lines(path):
        if not line.strip():
            continue
        label, _, text = line.partition("\t")
        rows.append((text, 1 if label.strip() == "spam" else 0))
    return _dedupe(rows)


def _sms(split: str, data_dir: Path) -> list[Example]:
    train, test = _stratified_split(sms_all(data_dir))
    if split == "test":
        return test
    fit, val = _stratified_split(train)
    return fit if split == "train" else val


def youtube_video(video: str, data_dir: Path | None = None) -> list[Example]:
    """The comments of one YouTube video file (``Youtube01-Psy`` ... ``Youtube05-Shakira``)."""
    path = require(data_dir or find_data_dir(), "youtube_spam_collection", f"{video}.csv") / f"{video}.csv"
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        return [(row["CONTENT"], int(row["CLASS"])) for row in csv.DictReader(fh)]


def youtube_videos(data_dir: Path | None = None) -> dict[str, list[Example]]:
    """All five videos by name, for leave-one-video-out evaluation."""
    d = data_dir or find_data_dir()
    return {v: youtube_video(v, d) for v in YOUTUBE_VIDEOS}


def _youtube(split: str, data_dir: Path) -> list[Example]:
    if split == "test":
        return youtube_video(YOUTUBE_TEST_VIDEO, data_dir)
    rows = [ex for v in YOUTUBE_VIDEOS if v != YOUTUBE_TEST_VIDEO for ex in youtube_video(v, data_dir)]
    train, val = _stratified_split(rows)
    return train if split == "train" else val


@lru_cache(maxsize=32)
def _load_cached(name: str, split: str, data_dir: str) -> tuple[Example, ...]:
    d = Path(data_dir)
    if name in _TWEETEVAL_DIRS:
        rows = _tweeteval(name, split, d)
    elif name == "sms":
        rows = _sms(split, d)
    else:
        rows = _youtube(split, d)
    return tuple(rows)


def load_corpus(name: str, split: str, data_dir: Path | None = None) -> list[tuple[str, int]]:
    """Rows ``(text, label)`` of corpus ``name`` ("offensive", "hate", "sms", "youtube") and split
    ("train", "val", "test"); label 1 is the unwanted class. Deterministic across runs and machines."""
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return list(_load_cached(name, split, str(data_dir or find_data_dir())))


def olid_training(data_dir: Path | None = None) -> list[Example]:
    """OLID v1.0 training rows (subtask A, OFF = 1). TweetEval offensive train+val come from this file and
    its test set is OLID's test set; callers must still dedupe against any evaluation texts."""
    path = require(data_dir or find_data_dir(), "olid_offenseval2019", "olid-training-v1.0.tsv") / "olid-training-v1.0.tsv"
    rows: list[Example] = []
    for i, line in enumerate(_read_lines(path)):
        parts = line.split("\t")
        if i == 0 or len(parts) < 3:
            continue
        rows.append((parts[1].strip(), 1 if parts[2].strip() == "OFF" else 0))
    return rows


def corpus_files(name: str, data_dir: Path | None = None) -> list[Path]:
    """The source files behind a corpus (for data hashes in model metadata)."""
    d = data_dir or find_data_dir()
    if name in _TWEETEVAL_DIRS:
        base = d / _TWEETEVAL_DIRS[name]
        return sorted(base.glob("*_text.txt")) + sorted(base.glob("*_labels.txt"))
    if name == "sms":
        return [d / "sms_spam_collection" / "SMSSpamCollection"]
    if name == "youtube":
        return [d / "youtube_spam_collection" / f"{v}.csv" for v in YOUTUBE_VIDEOS]
    if name == "olid":
        return [d / "olid_offenseval2019" / "olid-training-v1.0.tsv"]
    raise ValueError(f"unknown corpus {name!r}")


def split_fingerprint(rows: Sequence[Example]) -> str:
    """A short hash of a split's content, to pin splits in tests and model metadata."""
    h = hashlib.sha256()
    for text, label in rows:
        h.update(f"{label}\t{text}\n".encode())
    return h.hexdigest()[:16]
