"""Real labelled texts for the simulator, split so that evaluation scenarios never share text with training.

Pools (``benign``, ``offensive``, ``hate``, ``spam``) are drawn from ../shared/data:

- TweetEval offensive and hate: ``--text-split test`` uses the official ``val`` and ``test`` files, ``train``
  uses ``train`` only.
- SMS Spam Collection and YouTube Spam Collection: the canonical splits of :mod:`bastion.datasets.text` (SMS:
  exact duplicates dropped, stratified 80/20 with ``random_state=13``; YouTube: the Youtube05-Shakira video is
  the test split). The simulator's ``train`` is the corpus's train plus val. Without that module the fallback is
  the SMS rule applied to both corpora.

The benign pool is the negatives of TweetEval offensive, SMS (ham) and YouTube (ham) only: TweetEval hate's
negatives are "not hateful", not "not offensive" (many are insults), so they go in no pool.

A text that also occurs in the other split of the same corpus is dropped from the train pool, so a model trained on
``--text-split train`` scenarios can never have seen an evaluation text.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from bastion.datasets import require

_LEADING_USER = re.compile(r"^(?:@user\s*)+", re.I)
_HTML = re.compile(r"<[^>]+>")


def find_data_dir() -> Path:
    """The data folder (``$BASTION_DATA_DIR``, see :func:`bastion.datasets.text.find_data_dir`)."""
    from bastion.datasets.text import find_data_dir as canonical_find

    return canonical_find()


def clean_text(text: str) -> str:
    """The normalisation applied to every drawn text (leading ``@user`` runs and HTML tags removed)."""
    text = _HTML.sub(" ", text.replace("\ufeff", ""))
    text = _LEADING_USER.sub("", text.strip())
    return " ".join(text.split())


def _tweeteval(root: Path, name: str, split: str) -> list[tuple[str, int]]:
    files = ("val", "test") if split == "test" else ("train",)
    require(root, name, *(f"{f}_{part}.txt" for f in files for part in ("text", "labels")))
    out: list[tuple[str, int]] = []
    for f in files:
        texts = (root / name / f"{f}_text.txt").read_text(encoding="utf-8", errors="replace").splitlines()
        labels = (root / name / f"{f}_labels.txt").read_text().split()
        out.extend((t, int(lab)) for t, lab in zip(texts, labels, strict=False))
    return out


def _sms_all(root: Path) -> list[tuple[str, int]]:
    rows = []
    for line in (require(root, "sms_spam_collection", "SMSSpamCollection") / "SMSSpamCollection").read_text(
        encoding="utf-8", errors="replace"
    ).splitlines():
        if "\t" in line:
            lab, text = line.split("\t", 1)
            rows.append((text, 1 if lab.strip() == "spam" else 0))
    return rows


def _youtube_all(root: Path) -> list[tuple[str, int]]:
    rows = []
    for path in sorted(require(root, "youtube_spam_collection").glob("Youtube0*.csv")):
        with path.open(encoding="utf-8", errors="replace", newline="") as fh:
            for rec in csv.DictReader(fh):
                rows.append((rec["CONTENT"], int(rec["CLASS"])))
    return rows


def _dedup_split(rows: list[tuple[str, int]], split: str) -> list[tuple[str, int]]:
    from sklearn.model_selection import train_test_split

    seen: set[str] = set()
    uniq = []
    for text, lab in rows:
        if text not in seen:
            seen.add(text)
            uniq.append((text, lab))
    train, test = train_test_split(
        uniq, test_size=0.2, random_state=13, stratify=[lab for _, lab in uniq]
    )
    return test if split == "test" else train


_CANONICAL_NAMES = {"sms_spam_collection": "sms", "youtube_spam_collection": "youtube"}


def _canonical(name: str, split: str, root: Path) -> list[tuple[str, int]] | None:
    """Rows from bastion.datasets.text (the canonical split shared with the text models), or None if absent.

    The simulator's ``test`` split is the corpus's ``test`` split; its ``train`` split is ``train`` plus ``val``
    (both are training-side data; neither shares a text with ``test``)."""
    try:
        from bastion.datasets.text import load_corpus
    except ImportError:
        return None
    try:
        if split == "test":
            return [(str(t), int(y)) for t, y in load_corpus(_CANONICAL_NAMES[name], "test", root)]
        return [(str(t), int(y)) for part in ("train", "val") for t, y in load_corpus(_CANONICAL_NAMES[name], part, root)]
    except (ValueError, OSError):
        return None


def corpus_rows(name: str, split: str, root: Path | None = None) -> list[tuple[str, int]]:
    """Raw ``(text, label)`` rows of one corpus split (label 1 = offensive / hate / spam)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    root = root or find_data_dir()
    if name in ("tweeteval_offensive", "tweeteval_hate"):
        return _tweeteval(root, name, split)
    if name in ("sms_spam_collection", "youtube_spam_collection"):
        canon = _canonical(name, split, root)
        if canon is not None:
            return canon
        rows = _sms_all(root) if name == "sms_spam_collection" else _youtube_all(root)
        return _dedup_split(rows, split)
    raise ValueError(f"unknown corpus {name!r}")


CORPORA = ("tweeteval_offensive", "tweeteval_hate", "sms_spam_collection", "youtube_spam_collection")


@dataclass
class TextPools:
    """Cleaned texts by pool, each also pre-encoded as a JSON string literal (quotes included)."""

    split: str
    texts: dict[str, list[str]] = field(default_factory=dict)
    encoded: dict[str, list[str]] = field(default_factory=dict)

    def add(self, pool: str, text: str) -> None:
        self.texts.setdefault(pool, []).append(text)


def load_pools(split: str = "test", root: Path | None = None) -> TextPools:
    """Texts for ``split``, grouped as benign / offensive / hate / spam, minus any text of the other split."""
    root = root or find_data_dir()
    other = "train" if split == "test" else "test"
    banned: set[str] = set()
    if split == "train":
        for name in CORPORA:
            banned.update(clean_text(t) for t, _ in corpus_rows(name, other, root))
    pools = TextPools(split=split)
    seen: set[str] = set()
    for name in CORPORA:
        for raw, lab in corpus_rows(name, split, root):
            text = clean_text(raw)
            if len(text) < 3 or text in seen or text in banned:
                continue
            if lab == 0 and name == "tweeteval_hate":
                # "not hateful" is not "not offensive": TweetEval hate's negatives are full of insults and swearing,
                # so they are no benign text. A text the offensive corpus labels not offensive was met first (its
                # corpus comes first) and is already in the benign pool.
                continue
            seen.add(text)
            if lab == 0:
                pool = "benign"
            elif name == "tweeteval_offensive":
                pool = "offensive"
            elif name == "tweeteval_hate":
                pool = "hate"
            else:
                pool = "spam"
            pools.add(pool, text)
    enc = msgspec.json.Encoder()
    for pool, texts in pools.texts.items():
        pools.encoded[pool] = [enc.encode(t).decode() for t in texts]
    return pools
