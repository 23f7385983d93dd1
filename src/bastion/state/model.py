"""Entity state records kept by every backend (memory, SQLite, Redis, PostgreSQL).

They are msgspec structs so every backend serialises them the same way (``msgspec.msgpack``).
"""

from __future__ import annotations

import msgspec


class ActivityStats(msgspec.Struct, omit_defaults=True):
    """Online, incrementally updated behaviour aggregates of one account (bot and evasion features).

    Updated in O(1) per event by :func:`bastion.state.activity.observe`; no per-event history is kept.
    """

    n_events: int = 0
    n_posts: int = 0
    n_replies: int = 0
    n_quotes: int = 0
    n_reposts: int = 0
    n_likes: int = 0
    n_follows: int = 0
    n_unfollows: int = 0
    n_blocks: int = 0
    n_messages: int = 0
    n_reports_filed: int = 0
    n_logins: int = 0
    n_urls: int = 0
    n_hashtags: int = 0
    n_mentions: int = 0
    n_media: int = 0
    n_dup_texts: int = 0          # posts whose text hash the account had already used
    n_replies_to_strangers: int = 0
    n_messages_to_strangers: int = 0
    last_ts: int = 0
    gap_n: int = 0                # inter-event gaps (seconds, log1p) - Welford mean/variance
    gap_mean: float = 0.0
    gap_m2: float = 0.0
    gap_min_s: float = 0.0
    hours: list[int] = msgspec.field(default_factory=lambda: [0] * 24)
    weekdays: list[int] = msgspec.field(default_factory=lambda: [0] * 7)
    recent_text_hashes: list[int] = []   # bounded ring of recent text hashes (duplicate ratio)
    clients: dict[str, int] = {}
    # added for the bot detector (issue 6); all O(1) per event
    first_ts: int = 0
    gap_raw_mean: float = 0.0     # raw inter-event gaps in seconds - Welford mean/variance (burstiness)
    gap_raw_m2: float = 0.0
    gap_hist: list[int] = msgspec.field(default_factory=lambda: [0] * 16)  # log2(1 + gap seconds) bins
    n_texts: int = 0              # posts and messages whose text was hashed (duplicate-ratio denominator)
    # likes and reposts of posts the state knows (issue 6, like farms); O(1) per engagement, bounded
    n_eng_seen: int = 0           # engagements whose post (and so its age and author) was known
    n_eng_young: int = 0          # ... on posts under an hour old
    n_eng_followed: int = 0       # ... on posts of accounts the actor follows
    eng_age_log_sum: float = 0.0  # sum of log1p(post age in minutes)
    eng_prior_log_sum: float = 0.0     # sum of log1p(likes + reposts the post had before this one)
    eng_velocity_log_sum: float = 0.0  # sum of log1p(those earlier engagements per hour of the post's age)
    eng_author_log_sum: float = 0.0    # sum of log1p(followers of the post's author)
    eng_authors: dict[str, int] = {}   # Misra-Gries sketch of engaged authors (at most 8 keys)
    recent_engaged: list[str] = []     # ring of the last 8 engaged known posts (read when scoring)


class Account(msgspec.Struct, omit_defaults=True):
    """What the platform knows about one account. Counts are maintained from graph events; profile-table
    adapters (real bot datasets) may set them directly."""

    id: str
    handle: str | None = None
    display_name: str | None = None
    bio: str | None = None
    avatar: str | None = None
    url: str | None = None
    lang: str | None = None
    location: str | None = None
    email_domain: str | None = None
    verified: bool = False
    default_profile: bool | None = None
    default_profile_image: bool | None = None
    created_ms: int | None = None      # account.create time (or the platform's created_at)
    first_seen_ms: int = 0
    last_seen_ms: int = 0
    status: str = "active"
    status_ms: int | None = None
    status_reason: str | None = None
    followers: int = 0
    following: int = 0
    posts: int = 0
    likes_given: int = 0
    listed: int = 0
    reports_received: int = 0
    reports_filed: int = 0
    ips: list[str] = []                # most recent first, bounded
    devices: list[str] = []            # most recent first, bounded
    activity: ActivityStats = msgspec.field(default_factory=ActivityStats)


class Post(msgspec.Struct, omit_defaults=True):
    id: str
    author: str
    ts: int
    text_hash: int = 0
    reply_to: str | None = None
    reply_to_author: str | None = None
    root: str | None = None
    quote_of: str | None = None
    quote_of_author: str | None = None
    likes: int = 0
    reposts: int = 0
    replies: int = 0
    reports: int = 0
    deleted: bool = False
    hidden: bool = False


class Report(msgspec.Struct, omit_defaults=True):
    event_id: str
    reporter: str
    subject_kind: str
    subject_id: str
    reason: str
    ts: int


class Label(msgspec.Struct, omit_defaults=True):
    subject_kind: str
    subject_id: str
    label: str
    source: str
    ts: int
    expires_ms: int | None = None
