"""Dataset adapters: each real bot dataset's rows become canonical :class:`Account` objects, so the features
(and therefore the published numbers) come from the same code the live engine runs.

``account_from_user_row`` maps a Twitter v1.1 user-object row (also what ``bastion score accounts`` reads);
``load_cresci``, ``load_kaggle`` and ``load_gilani`` read the three datasets under ``shared/data``.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bastion.features.account import ACTIVITY_SCHEMA, GILANI_CANONICAL_SCHEMA, PROFILE_SCHEMA
from bastion.state.model import Account, ActivityStats

DAY_MS = 86_400_000
KAGGLE_PROBE_MS = int(datetime(2017, 3, 31, tzinfo=UTC).timestamp() * 1000)   # last tweets: March 2017
GILANI_PROBE_MS = int(datetime(2016, 6, 1, tzinfo=UTC).timestamp() * 1000)    # collected in 2016

GILANI_EXTRA_SCHEMA: tuple[str, ...] = (
    "gilani_likes_per_tweet", "gilani_retweets_per_tweet", "gilani_lists_per_user", "gilani_tweet_frequency",
    "gilani_favourite_tweet_ratio", "gilani_cdn_content_kb", "gilani_favourited_raw",
    *(f"gilani_source_{k}" for k in range(5)),
)


@dataclass
class BotDataset:
    """Accounts with labels (1 = bot), the probe time of each row, optional dataset-only extra columns and a
    bot-type tag per row (used by the specialised ensemble)."""

    name: str
    accounts: list[Account]
    y: np.ndarray
    now_ms: np.ndarray
    kind: list[str]
    n_rows_read: int
    extras: np.ndarray | None = None
    extra_names: tuple[str, ...] = ()
    unknown_features: frozenset[str] = frozenset()   # canonical features the dataset cannot know (-> nan)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.accounts)


def data_root() -> Path:
    from bastion.settings import setting

    return Path(setting("data_dir"))


_TWITTER_TS = "%a %b %d %H:%M:%S %z %Y"
_SLASH_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


def parse_time_ms(value: str | None) -> int | None:
    """Epoch ms from Twitter's ``Sat Oct 17 22:35:31 +0000 2015``, ISO 8601, epoch seconds/ms, or the Excel
    ``13/03/2017 22:21`` / ``7/13/2009 0:38`` forms (day-first when the first number exceeds 12, else
    month-first); ``None`` when absent or unparseable."""
    if value is None:
        return None
    s = value.strip().strip('"').strip()
    if not s:
        return None
    try:
        return int(datetime.strptime(s, _TWITTER_TS).timestamp() * 1000)
    except ValueError:
        pass
    m = _SLASH_RE.match(s)
    if m:
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        day, month = (a, b) if a > 12 else (b, a)
        try:
            dt = datetime(y, month, day, int(m.group(4) or 0), int(m.group(5) or 0), int(m.group(6) or 0),
                          tzinfo=UTC)
        except ValueError:
            return None
        return int(dt.timestamp() * 1000)
    if re.fullmatch(r"\d+(\.\d+)?", s):
        v = float(s)
        return int(v if v > 1e11 else v * 1000)
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    s = value.strip().lower()
    if s in ("true", "1", "t", "yes", "1.0"):
        return True
    if s in ("false", "0", "f", "no", "0.0"):
        return False
    return None


def _int(value: str | None) -> int:
    if value is None:
        return 0
    try:
        v = float(value.strip() or 0)
    except ValueError:
        return 0
    return int(v) if math.isfinite(v) and v > 0 else 0


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    s = value.strip()
    return s if s and s.lower() not in ("none", "nan", "null") else None


def account_from_user_row(row: Mapping[str, str | None]) -> Account:
    """A canonical account from a Twitter user-object row; every column optional."""
    def get(*names: str) -> str | None:
        for n in names:
            if n in row and row[n] is not None:
                return row[n]
        return None

    return Account(
        id=(_text(get("id_str", "id", "user_id")) or _text(get("screen_name")) or ""),
        handle=_text(get("screen_name", "handle")),
        display_name=_text(get("name", "display_name")),
        bio=_text(get("description", "bio")),
        url=_text(get("url")),
        lang=_text(get("lang")),
        location=_text(get("location")),
        verified=bool(_bool(get("verified"))),
        default_profile=_bool(get("default_profile")),
        default_profile_image=_bool(get("default_profile_image")),
        created_ms=parse_time_ms(get("created_at")),
        followers=_int(get("followers_count")),
        following=_int(get("friends_count", "following_count")),
        posts=_int(get("statuses_count")),
        likes_given=_int(get("favourites_count", "favorites_count")),
        listed=_int(get("listed_count", "listedcount")),
    )


def read_user_table(path: Path, encoding: str = "utf-8") -> list[dict[str, str | None]]:
    with open(path, newline="", encoding=encoding, errors="replace") as fh:
        return list(csv.DictReader(fh))


def load_cresci(root: Path | None = None) -> BotDataset:
    """cresci-rtbust-2019: 693 profile snapshots (``users_with_labels.csv``), probe time per row."""
    from bastion.datasets import require

    path = require(root or data_root(), "cresci_rtbust_2019", "users_with_labels.csv") / "users_with_labels.csv"
    rows = read_user_table(path)
    accounts = [account_from_user_row(r) for r in rows]
    y = np.array([1 if (r.get("label") or "").strip() == "bot" else 0 for r in rows], dtype=np.int8)
    now = np.array([parse_time_ms(r.get("probe_timestamp")) or 0 for r in rows], dtype=np.int64)
    kind = ["retweet_bot" if v else "human" for v in y]
    return BotDataset("cresci-rtbust-2019", accounts, y, now, kind, n_rows_read=len(rows),
                      unknown_features=frozenset(ACTIVITY_SCHEMA))


def load_kaggle(root: Path | None = None, drop_conflicts: bool = True) -> BotDataset:
    """Kaggle bots_data/nonbots_data; keyed by screen_name (ids are Excel-mangled). Screen names present in
    both files carry contradictory labels and are dropped when ``drop_conflicts``."""
    from bastion.datasets import require

    base = require(root or data_root(), "kaggle_twitter_bots")
    rows: list[tuple[dict[str, str | None], int]] = []
    for fname, label in (("bots_data.csv", 1), ("nonbots_data.csv", 0)):
        rows.extend((r, label) for r in read_user_table(base / fname, encoding="latin-1"))
    n_read = len(rows)
    notes: list[str] = []
    if drop_conflicts:
        labels_by_name: dict[str, set[int]] = {}
        for r, lab in rows:
            labels_by_name.setdefault((r.get("screen_name") or "").lower(), set()).add(lab)
        conflict = {k for k, v in labels_by_name.items() if len(v) > 1}
        seen: set[tuple[str, int]] = set()
        kept: list[tuple[dict[str, str | None], int]] = []
        for r, lab in rows:
            key = ((r.get("screen_name") or "").lower(), lab)
            if key[0] in conflict or key in seen:
                continue
            seen.add(key)
            kept.append((r, lab))
        notes.append(f"dropped {n_read - len(kept)} rows (screen_name in both files or repeated)")
        rows = kept
    accounts = []
    for r, _lab in rows:
        acc = account_from_user_row(r)
        acc.id = r.get("screen_name") or acc.id
        accounts.append(acc)
    y = np.array([lab for _r, lab in rows], dtype=np.int8)
    kind = [("declared_bot" if "bot" in (a.handle or "").lower() + (a.display_name or "").lower() else "bot")
            if lab else "human" for a, (_r, lab) in zip(accounts, rows, strict=True)]
    now = np.full(len(rows), KAGGLE_PROBE_MS, dtype=np.int64)
    return BotDataset("kaggle-twitter-bots", accounts, y, now, kind, n_rows_read=n_read,
                      unknown_features=frozenset(ACTIVITY_SCHEMA), notes=notes)


def _float(value: str | None) -> float:
    try:
        return float((value or "").strip())
    except ValueError:
        return float("nan")


def gilani_account(row: Mapping[str, str | None], probe_ms: int = GILANI_PROBE_MS) -> tuple[Account, list[float]]:
    """One gilani-2017 row as a canonical account plus the dataset-only extra columns.

    Mapped into canonical state: ``user_tweeted/user_retweeted/user_favourited/user_replied`` ->
    ``ActivityStats.n_posts/n_reposts/n_likes/n_replies`` (``n_events`` their sum), ``urls_count`` ->
    ``n_urls``, ``sources_count`` -> distinct ``clients``, ``age_of_account_in_days`` -> ``created_ms``,
    ``follower_friend_ratio`` -> followers/following (ratio only). Everything else is an extra column.
    """
    tweeted = _int(row.get("user_tweeted"))
    retweeted = _int(row.get("user_retweeted"))
    favourited_raw = _float(row.get("user_favourited"))
    liked = int(round(favourited_raw)) if math.isfinite(favourited_raw) and favourited_raw > 0 else 0
    replied = _int(row.get("user_replied"))
    n_sources = _int(row.get("sources_count"))
    stats = ActivityStats(
        n_events=tweeted + retweeted + liked + replied,
        n_posts=tweeted, n_reposts=retweeted, n_likes=liked, n_replies=replied,
        n_urls=_int(row.get("urls_count")),
        clients={f"source{k}": 1 for k in range(n_sources)},
    )
    age = _float(row.get("age_of_account_in_days"))
    ratio = _float(row.get("follower_friend_ratio"))
    followers = following = 0
    if math.isfinite(ratio) and ratio >= 0:
        following = 1_000_000
        followers = int(round(ratio * 1_000_000))
    acc = Account(
        id=(row.get("screen_name") or "").strip(),
        handle=(row.get("screen_name") or "").strip() or None,
        created_ms=int(probe_ms - age * DAY_MS) if math.isfinite(age) else None,
        followers=followers, following=following,
        activity=stats,
    )
    sources = {int(t) for t in re.findall(r"\d+", row.get("source_identity") or "")}
    extras = [
        _float(row.get("likes_per_tweet")), _float(row.get("retweets_per_tweet")),
        _float(row.get("lists_per_user")), _float(row.get("tweet_frequency")),
        _float(row.get("favourite_tweet_ratio")), _float(row.get("cdn_content_in_kb")), favourited_raw,
        *(float(k in sources) for k in range(5)),
    ]
    return acc, extras


def load_gilani(root: Path | None = None, drop_conflicts: bool = True) -> BotDataset:
    """gilani-2017: 3,431 rows over four popularity bands; screen names labelled both ways are dropped and
    repeats across bands are kept once when ``drop_conflicts``."""
    from bastion.datasets import require

    base = require(root or data_root(), "gilani2017_bot_features")
    raw: list[tuple[dict[str, str | None], int, str]] = []
    for folder, label in (("bots", 1), ("humans", 0)):
        for band in ("1k", "100k", "1M", "10M"):
            path = base / folder / f"{folder}.{band}.csv"
            with open(path, newline="", encoding="utf-8") as fh:
                raw.extend((r, label, band) for r in csv.DictReader(fh, skipinitialspace=True))
    n_read = len(raw)
    notes: list[str] = []
    if drop_conflicts:
        labs: dict[str, set[int]] = {}
        for r, lab, _b in raw:
            labs.setdefault((r.get("screen_name") or "").lower(), set()).add(lab)
        seen: set[str] = set()
        kept = []
        for r, lab, band in raw:
            key = (r.get("screen_name") or "").lower()
            if len(labs[key]) > 1 or key in seen:
                continue
            seen.add(key)
            kept.append((r, lab, band))
        notes.append(f"dropped {n_read - len(kept)} rows (screen_name labelled both ways or repeated)")
        raw = kept
    accounts, extras = [], []
    for r, _lab, _band in raw:
        acc, ex = gilani_account(r)
        accounts.append(acc)
        extras.append(ex)
    y = np.array([lab for _r, lab, _b in raw], dtype=np.int8)
    kind = [f"bot_{band}" if lab else "human" for _r, lab, band in raw]
    now = np.full(len(raw), GILANI_PROBE_MS, dtype=np.int64)
    known = set(GILANI_CANONICAL_SCHEMA) | {f for f in PROFILE_SCHEMA if f.startswith("handle_")}
    unknown = frozenset(f for f in (*PROFILE_SCHEMA, *ACTIVITY_SCHEMA) if f not in known)
    return BotDataset("gilani-2017", accounts, y, now, kind, n_rows_read=n_read,
                      extras=np.asarray(extras, dtype=np.float64), extra_names=GILANI_EXTRA_SCHEMA,
                      unknown_features=unknown, notes=notes)


def kind_counts(ds: BotDataset) -> dict[str, int]:
    return dict(Counter(ds.kind))


def iter_user_rows(path: Path) -> Iterable[dict[str, str | None]]:
    """Stream rows of a user table (UTF-8, falling back to latin-1 for undecodable bytes)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        yield from csv.DictReader(fh)
