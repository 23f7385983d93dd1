"""Pure bot-detection features over the canonical account state (no I/O, no model code).

The same functions serve the real-data evaluation (dataset adapters build :class:`Account` objects) and the
live engine (which keeps ``Account`` and its ``ActivityStats`` up to date), so the published numbers describe
the shipped detector. Missing information is ``nan`` (LightGBM routes it natively), never a made-up zero.

>>> from bastion.state.model import Account
>>> f = profile_features(Account(id="1", handle="anna84736251", default_profile=True), now_ms=0)
>>> f["handle_digits"], f["default_profile"], math.isnan(f["age_days"])
(8.0, 1.0, True)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from difflib import SequenceMatcher

from bastion.state.model import Account, ActivityStats

NAN = float("nan")
DAY_MS = 86_400_000
_URL_RE = re.compile(r"https?://|www\.|\b[a-z0-9-]+\.(?:com|net|org|io|it|ly|co)\b", re.I)
_ALNUM_RE = re.compile(r"[^a-z0-9]+")

# Fixed, ordered schemas: a model stores the schema it was trained on and the registry refuses a mismatch.
PROFILE_SCHEMA: tuple[str, ...] = (
    "handle_len", "handle_digits", "handle_digit_ratio", "handle_entropy", "handle_upper_ratio",
    "handle_underscores", "handle_has_bot",
    "name_len", "name_digits", "name_words", "name_nonascii_ratio", "name_handle_sim", "name_has_bot",
    "bio_len", "bio_has_url", "bio_hashtags", "bio_mentions", "has_url", "has_location",
    "default_profile", "default_profile_image", "verified",
    "age_days", "log_followers", "log_following", "log_posts", "log_likes", "log_listed",
    "ff_ratio_log", "posts_per_day", "likes_per_day", "followers_per_day", "following_per_day",
    "listed_per_follower", "likes_per_post", "posts_likes_log_diff", "handle_trailing_digits",
    "bio_nonascii_ratio", "bio_words",
)

ACTIVITY_SCHEMA: tuple[str, ...] = (
    "act_log_events", "act_log_posts", "act_log_replies", "act_log_reposts", "act_log_likes",
    "act_rate_per_day", "act_burstiness", "act_gap_log_mean", "act_gap_log_std", "act_gap_min_log",
    "act_gap_entropy", "act_hour_entropy", "act_weekday_entropy",
    "act_frac_posts", "act_frac_replies", "act_frac_quotes", "act_frac_reposts", "act_frac_likes",
    "act_frac_follows", "act_frac_messages",
    "act_url_rate", "act_hashtag_rate", "act_mention_rate", "act_media_rate", "act_dup_ratio",
    "act_stranger_reply_ratio", "act_stranger_msg_ratio", "act_follow_churn",
    "act_n_clients", "act_top_client_share",
    # likes and reposts of known posts (like farms): the engaged posts' age, earlier engagements and velocity,
    # their authors' followers, the share on followed accounts, the top engaged author's share
    "act_eng_young_share", "act_eng_age_log_mean", "act_eng_prior_log_mean", "act_eng_velocity_log_mean",
    "act_eng_author_log_mean", "act_eng_followed_share", "act_eng_top_author_share", "act_eng_per_post",
)

# The subset of canonical features that the gilani-2017 aggregates determine (see
# bastion.models.bots.adapters.load_gilani); the shipped activity model uses exactly these, so it can be
# served live from ActivityStats.
GILANI_CANONICAL_SCHEMA: tuple[str, ...] = (
    "age_days", "ff_ratio_log",
    "act_log_events", "act_log_posts", "act_log_replies", "act_log_reposts", "act_log_likes",
    "act_frac_posts", "act_frac_replies", "act_frac_reposts", "act_frac_likes",
    "act_url_rate", "act_n_clients",
)

NEIGHBOUR_EDGES: tuple[str, ...] = ("follow", "reply", "shared_id")
NEIGHBOUR_SCHEMA: tuple[str, ...] = tuple(
    f"nb_{edge}_{stat}" for edge in NEIGHBOUR_EDGES for stat in ("n", "mean", "max", "frac_bot")
)


def _entropy_of_counts(counts: Sequence[int] | Sequence[float], normalise: bool = True) -> float:
    total = float(sum(counts))
    if total <= 0:
        return NAN
    h = -sum((c / total) * math.log(c / total) for c in counts if c > 0)
    if normalise:
        k = len(counts)
        return h / math.log(k) if k > 1 else 0.0
    return h


def string_entropy(text: str) -> float:
    """Shannon entropy (bits per character) of a string; 0 for empty."""
    if not text:
        return 0.0
    n = len(text)
    return -sum((c / n) * math.log2(c / n) for c in Counter(text).values())


def _flag(value: bool | None) -> float:
    return NAN if value is None else float(bool(value))


def _log(x: float) -> float:
    return NAN if x != x else math.log1p(max(0.0, x))


_TEXT_CACHE: dict[tuple[str, str, str], tuple[float, ...]] = {}
_TEXT_CACHE_MAX = 100_000


def _text_features(handle: str, name: str, bio: str) -> tuple[float, ...]:
    """The features of :func:`profile_features` that depend only on handle, display name and bio (they
    change rarely, so the live engine computes them once per distinct profile text: exact, not approximate)."""
    key = (handle, name, bio)
    hit = _TEXT_CACHE.get(key)
    if hit is not None:
        return hit
    n_handle = len(handle)
    handle_digits = sum(ch.isdigit() for ch in handle)
    name_key = _ALNUM_RE.sub("", name.lower())
    handle_key = _ALNUM_RE.sub("", handle.lower())
    if name_key and handle_key:
        sim = SequenceMatcher(None, name_key, handle_key, autojunk=False).ratio()
    else:
        sim = NAN
    out = (
        float(n_handle),
        float(handle_digits),
        handle_digits / n_handle if n_handle else NAN,
        string_entropy(handle),
        sum(ch.isupper() for ch in handle) / n_handle if n_handle else NAN,
        float(handle.count("_")),
        float("bot" in handle.lower()),
        float(len(name)),
        float(sum(ch.isdigit() for ch in name)),
        float(len(name.split())),
        sum(ord(ch) > 127 for ch in name) / len(name) if name else NAN,
        sim,
        float("bot" in name.lower()),
        float(len(bio)),
        float(bool(_URL_RE.search(bio))),
        float(bio.count("#")),
        float(bio.count("@")),
        float(n_handle - len(handle.rstrip("0123456789"))),
        sum(ord(ch) > 127 for ch in bio) / len(bio) if bio else NAN,
        float(len(bio.split())),
    )
    if len(_TEXT_CACHE) >= _TEXT_CACHE_MAX:
        _TEXT_CACHE.clear()
    _TEXT_CACHE[key] = out
    return out


def profile_features(acc: Account, now_ms: int) -> dict[str, float]:
    """Profile and count features of one account as of ``now_ms`` (epoch ms)."""
    (handle_len, handle_digits, handle_digit_ratio, handle_entropy, handle_upper_ratio, handle_underscores,
     handle_has_bot, name_len, name_digits, name_words, name_nonascii_ratio, sim, name_has_bot, bio_len,
     bio_has_url, bio_hashtags, bio_mentions, handle_trailing_digits, bio_nonascii_ratio,
     bio_words) = _text_features(acc.handle or "", acc.display_name or "", acc.bio or "")
    if acc.created_ms is None or acc.created_ms <= 0:
        age = NAN
        per_day = NAN
    else:
        age = max(0.0, (now_ms - acc.created_ms) / DAY_MS)
        per_day = max(age, 1.0)
    followers, following = float(acc.followers), float(acc.following)
    posts, likes, listed = float(acc.posts), float(acc.likes_given), float(acc.listed)
    return {
        "handle_len": handle_len,
        "handle_digits": handle_digits,
        "handle_digit_ratio": handle_digit_ratio,
        "handle_entropy": handle_entropy,
        "handle_upper_ratio": handle_upper_ratio,
        "handle_underscores": handle_underscores,
        "handle_has_bot": handle_has_bot,
        "name_len": name_len,
        "name_digits": name_digits,
        "name_words": name_words,
        "name_nonascii_ratio": name_nonascii_ratio,
        "name_handle_sim": sim,
        "name_has_bot": name_has_bot,
        "bio_len": bio_len,
        "bio_has_url": bio_has_url,
        "bio_hashtags": bio_hashtags,
        "bio_mentions": bio_mentions,
        "has_url": float(bool(acc.url)),
        "has_location": float(bool(acc.location and acc.location.strip())),
        "default_profile": _flag(acc.default_profile),
        "default_profile_image": _flag(acc.default_profile_image),
        "verified": float(acc.verified),
        "age_days": age,
        "log_followers": _log(followers),
        "log_following": _log(following),
        "log_posts": _log(posts),
        "log_likes": _log(likes),
        "log_listed": _log(listed),
        "ff_ratio_log": math.log((followers + 1.0) / (following + 1.0)),
        "posts_per_day": _log(posts / per_day),
        "likes_per_day": _log(likes / per_day),
        "followers_per_day": _log(followers / per_day),
        "following_per_day": _log(following / per_day),
        "listed_per_follower": listed / (followers + 1.0),
        "likes_per_post": _log(likes / (posts + 1.0)),
        "posts_likes_log_diff": abs(math.log1p(posts) - math.log1p(likes)),
        "handle_trailing_digits": handle_trailing_digits,
        "bio_nonascii_ratio": bio_nonascii_ratio,
        "bio_words": bio_words,
    }


def activity_features(acc: Account, now_ms: int) -> dict[str, float]:
    """Behaviour features from the account's online :class:`ActivityStats` (no per-event history)."""
    st: ActivityStats = acc.activity
    n = st.n_events
    authored = st.n_posts + st.n_replies + st.n_quotes
    texts = authored + st.n_messages

    def frac(x: int) -> float:
        return x / n if n else NAN

    def per(x: int, d: int) -> float:
        return x / d if d else NAN

    if st.gap_n >= 2:
        sd_raw = math.sqrt(max(0.0, st.gap_raw_m2 / st.gap_n))
        mu = st.gap_raw_mean
        burst = (sd_raw - mu) / (sd_raw + mu) if sd_raw + mu > 0 else -1.0
        gap_std = math.sqrt(max(0.0, st.gap_m2 / st.gap_n))
    else:
        burst = gap_std = NAN
    if n >= 2 and st.last_ts > st.first_ts:
        span_days = max((st.last_ts - st.first_ts) / DAY_MS, 1.0 / 24.0)
        rate = n / span_days
    else:
        rate = NAN
    top_client = max(st.clients.values()) if st.clients else 0
    seen = st.n_eng_seen
    return {
        "act_log_events": _log(n),
        "act_log_posts": _log(st.n_posts),
        "act_log_replies": _log(st.n_replies),
        "act_log_reposts": _log(st.n_reposts),
        "act_log_likes": _log(st.n_likes),
        "act_rate_per_day": _log(rate) if rate == rate else NAN,
        "act_burstiness": burst,
        "act_gap_log_mean": st.gap_mean if st.gap_n else NAN,
        "act_gap_log_std": gap_std,
        "act_gap_min_log": math.log1p(st.gap_min_s) if st.gap_n else NAN,
        "act_gap_entropy": _entropy_of_counts(st.gap_hist) if st.gap_n >= 2 else NAN,
        "act_hour_entropy": _entropy_of_counts(st.hours) if n >= 2 else NAN,
        "act_weekday_entropy": _entropy_of_counts(st.weekdays) if n >= 2 else NAN,
        "act_frac_posts": frac(st.n_posts),
        "act_frac_replies": frac(st.n_replies),
        "act_frac_quotes": frac(st.n_quotes),
        "act_frac_reposts": frac(st.n_reposts),
        "act_frac_likes": frac(st.n_likes),
        "act_frac_follows": frac(st.n_follows),
        "act_frac_messages": frac(st.n_messages),
        "act_url_rate": per(st.n_urls, texts),
        "act_hashtag_rate": per(st.n_hashtags, authored),
        "act_mention_rate": per(st.n_mentions, authored),
        "act_media_rate": per(st.n_media, authored),
        "act_dup_ratio": per(st.n_dup_texts, st.n_texts),
        "act_stranger_reply_ratio": per(st.n_replies_to_strangers, st.n_replies),
        "act_stranger_msg_ratio": per(st.n_messages_to_strangers, st.n_messages),
        "act_follow_churn": st.n_unfollows / (st.n_follows + 1.0) if n else NAN,
        "act_n_clients": float(len(st.clients)) if st.clients else NAN,
        "act_top_client_share": top_client / sum(st.clients.values()) if st.clients else NAN,
        "act_eng_young_share": st.n_eng_young / seen if seen else NAN,
        "act_eng_age_log_mean": st.eng_age_log_sum / seen if seen else NAN,
        "act_eng_prior_log_mean": st.eng_prior_log_sum / seen if seen else NAN,
        "act_eng_velocity_log_mean": st.eng_velocity_log_sum / seen if seen else NAN,
        "act_eng_author_log_mean": st.eng_author_log_sum / seen if seen else NAN,
        "act_eng_followed_share": st.n_eng_followed / seen if seen else NAN,
        "act_eng_top_author_share": max(st.eng_authors.values()) / seen if seen and st.eng_authors else NAN,
        "act_eng_per_post": math.log((st.n_likes + st.n_reposts + 1.0) / (authored + 1.0)) if n else NAN,
    }


def account_features(acc: Account, now_ms: int) -> dict[str, float]:
    """Profile and activity features together (the union of both schemas)."""
    out = profile_features(acc, now_ms)
    out.update(activity_features(acc, now_ms))
    return out


def neighbour_features(scores_by_edge: Mapping[str, Sequence[float]], threshold: float = 0.5) -> dict[str, float]:
    """Deep-Entity-Classification-style aggregation of neighbours' bot scores, per edge kind.

    ``scores_by_edge`` maps an edge kind (``follow``, ``reply``, ``shared_id``) to the current bot scores of
    the account's neighbours over that edge. A second-stage model takes these beside the account's own
    features (DEC's "aggregated neighbour features"); unknown edge kinds are ignored.

    >>> neighbour_features({"follow": [0.9, 0.1]})["nb_follow_frac_bot"]
    0.5
    """
    out: dict[str, float] = {}
    for edge in NEIGHBOUR_EDGES:
        s = scores_by_edge.get(edge, ())
        k = len(s)
        out[f"nb_{edge}_n"] = math.log1p(k)
        out[f"nb_{edge}_mean"] = sum(s) / k if k else NAN
        out[f"nb_{edge}_max"] = max(s) if k else NAN
        out[f"nb_{edge}_frac_bot"] = sum(v >= threshold for v in s) / k if k else NAN
    return out


def vector(features: Mapping[str, float], schema: Sequence[str]) -> list[float]:
    """Features in schema order; a name the extractor did not produce is ``nan``."""
    return [features.get(name, NAN) for name in schema]
