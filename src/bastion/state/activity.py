"""O(1) incremental update of an account's :class:`~bastion.state.model.ActivityStats` from one event.

The live engine calls :func:`observe` for the actor of every event; the bot detector reads the aggregates
through :func:`bastion.features.account.activity_features`. No per-event history is kept: counts, Welford
moments of the inter-event gaps, a 16-bin log2 gap histogram, hour/weekday histograms, a bounded ring of
recent text hashes (duplicate ratio) and, for likes and reposts of posts the engine knows (``engaged``), sums
over the engaged posts' age, earlier engagements and author's followers, whether the actor follows the author,
a Misra-Gries sketch of the engaged authors and a ring of the last engaged post ids (like farms).

>>> from bastion.events.codec import decode_event
>>> st = ActivityStats()
>>> observe(st, decode_event(b'{"id":"1","type":"post.create","ts":1795132800000,"actor":"a","post":{"id":"p1","text":"hi"}}'))
>>> observe(st, decode_event(b'{"id":"2","type":"post.create","ts":1795132860000,"actor":"a","post":{"id":"p2","text":"Hi "}}'))
>>> st.n_posts, st.n_dup_texts, st.gap_n, st.gap_min_s
(2, 1, 1, 60.0)
"""

from __future__ import annotations

import math
from typing import Any

from bastion.state.apply import text_hash
from bastion.state.model import ActivityStats

RECENT_TEXTS = 32          # ring size for duplicate detection
GAP_BINS = 16
MAX_CLIENTS = 16           # distinct clients kept per account (bounded state)
MAX_AUTHORS = 8            # Misra-Gries sketch of engaged authors: keys kept per account
RECENT_ENGAGED = 8         # ring of recently engaged post ids (the scorer reads those posts' counts now)
YOUNG_POST_MS = 3_600_000  # an engaged post under an hour old is "young"
_DAY_MS = 86_400_000


def _note_text(stats: ActivityStats, text: str | None, hashed: int | None) -> None:
    if hashed is None:
        if not text:
            return
        hashed = text_hash(text)
    stats.n_texts += 1
    ring = stats.recent_text_hashes
    if hashed in ring:
        stats.n_dup_texts += 1
    if len(ring) >= RECENT_TEXTS:
        ring.pop(0)
    ring.append(hashed)


def _note_time(stats: ActivityStats, ts: int) -> None:
    if stats.first_ts == 0 or ts < stats.first_ts:
        stats.first_ts = ts
    if stats.last_ts:
        gap = max(0.0, (ts - stats.last_ts) / 1000.0)
        stats.gap_n += 1
        n = stats.gap_n
        lg = math.log1p(gap)
        d = lg - stats.gap_mean
        stats.gap_mean += d / n
        stats.gap_m2 += d * (lg - stats.gap_mean)
        d = gap - stats.gap_raw_mean
        stats.gap_raw_mean += d / n
        stats.gap_raw_m2 += d * (gap - stats.gap_raw_mean)
        stats.gap_min_s = gap if n == 1 else min(stats.gap_min_s, gap)
        if len(stats.gap_hist) < GAP_BINS:
            stats.gap_hist.extend([0] * (GAP_BINS - len(stats.gap_hist)))
        stats.gap_hist[min(GAP_BINS - 1, int(math.log2(1.0 + gap)))] += 1
    stats.last_ts = max(stats.last_ts, ts)
    stats.hours[(ts // 3_600_000) % 24] += 1
    stats.weekdays[(ts // _DAY_MS + 3) % 7] += 1   # 1970-01-01 was a Thursday; Monday = 0


def _note_engagement(stats: ActivityStats, post_id: str, engaged: tuple[str, int, int, int, bool]) -> None:
    author, age_ms, prior, author_followers, followed = engaged
    ring = stats.recent_engaged
    if post_id not in ring:
        if len(ring) >= RECENT_ENGAGED:
            ring.pop(0)
        ring.append(post_id)
    age_min = max(0.0, age_ms / 60_000.0)
    stats.n_eng_seen += 1
    if age_ms < YOUNG_POST_MS:
        stats.n_eng_young += 1
    if followed:
        stats.n_eng_followed += 1
    stats.eng_age_log_sum += math.log1p(age_min)
    prior = max(0, prior)
    stats.eng_prior_log_sum += math.log1p(prior)
    stats.eng_velocity_log_sum += math.log1p(prior * 60.0 / (age_min + 1.0))
    stats.eng_author_log_sum += math.log1p(max(0, author_followers))
    if author:
        sketch = stats.eng_authors
        if author in sketch:
            sketch[author] += 1
        elif len(sketch) < MAX_AUTHORS:
            sketch[author] = 1
        else:  # Misra-Gries: decrement every key, drop those at zero
            for k in list(sketch):
                if sketch[k] <= 1:
                    del sketch[k]
                else:
                    sketch[k] -= 1


def observe(stats: ActivityStats, event: Any, *, stranger: bool = False, text_hash_value: int | None = None,
            engaged: tuple[str, int, int, int, bool] | None = None) -> None:
    """Fold one event of the account into ``stats`` (O(1) time, bounded memory).

    ``stranger`` is the engine's graph answer for replies and messages: the other side neither follows nor is
    followed by the actor. ``text_hash_value`` lets a caller that already hashed the text skip hashing again.
    ``engaged``, for a like or repost of a post the engine knows: (its author, its age in ms, its likes +
    reposts before this one, the author's followers, whether the actor follows the author).
    """
    etype = event.type
    stats.n_events += 1
    _note_time(stats, int(event.ts))
    ctx = getattr(event, "ctx", None)
    client = getattr(ctx, "client", None) if ctx is not None else None
    if client:
        if client in stats.clients:
            stats.clients[client] += 1
        elif len(stats.clients) < MAX_CLIENTS:
            stats.clients[client] = 1
    if etype == "post.create":
        post = event.post
        if post.reply_to or post.reply_to_author:
            stats.n_replies += 1
            if stranger:
                stats.n_replies_to_strangers += 1
        elif post.quote_of:
            stats.n_quotes += 1
        else:
            stats.n_posts += 1
        stats.n_urls += len(post.urls)
        stats.n_hashtags += len(post.hashtags)
        stats.n_mentions += len(post.mentions)
        stats.n_media += len(post.media)
        _note_text(stats, post.text, text_hash_value)
    elif etype == "post.engage":
        kind = event.kind
        if kind == "like":
            stats.n_likes += 1
        elif kind == "repost":
            stats.n_reposts += 1
        if engaged is not None and kind in ("like", "repost"):
            _note_engagement(stats, str(event.post.id), engaged)
    elif etype == "graph.follow":
        stats.n_follows += 1
    elif etype == "graph.unfollow":
        stats.n_unfollows += 1
    elif etype == "graph.block":
        stats.n_blocks += 1
    elif etype == "message.send":
        stats.n_messages += 1
        if stranger:
            stats.n_messages_to_strangers += 1
        stats.n_urls += len(event.urls)
        _note_text(stats, event.text, text_hash_value)
    elif etype == "report.create":
        stats.n_reports_filed += 1
    elif etype == "account.login":
        stats.n_logins += 1
