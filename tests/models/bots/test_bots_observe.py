import math
import random

import numpy as np

from bastion.events.model import Ctx, GraphFollow, MessageSend, PostBody, PostCreate, PostEngage, PostRef
from bastion.state.activity import GAP_BINS, RECENT_TEXTS, observe, text_hash
from bastion.state.model import ActivityStats


def _stream(n=400, seed=3):
    rng = random.Random(seed)
    t = 1_700_000_000_000
    evs = []
    for i in range(n):
        t += rng.choice([0, 1000, 5000, 60_000, 3_600_000]) + rng.randrange(1000)
        r = rng.random()
        ctx = Ctx(client=rng.choice(["web", "ios"]))
        if r < 0.5:
            body = PostBody(id=f"p{i}", text=rng.choice(["Buy now", "buy  NOW", "hello", f"t{i}"]),
                            reply_to="x" if rng.random() < 0.3 else None, urls=["u"] * rng.randrange(3),
                            hashtags=["h"] * rng.randrange(2), mentions=["m"] * rng.randrange(2))
            evs.append(PostCreate(id=str(i), ts=t, actor="a", post=body, ctx=ctx))
        elif r < 0.8:
            evs.append(PostEngage(id=str(i), ts=t, actor="a", kind=rng.choice(["like", "repost"]),
                                  post=PostRef(id="q"), ctx=ctx))
        elif r < 0.9:
            evs.append(MessageSend(id=str(i), ts=t, actor="a", recipient="b", text="hi there"))
        else:
            evs.append(GraphFollow(id=str(i), ts=t, actor="a", target="b"))
    return evs


def test_observe_matches_batch_computation():
    evs = _stream()
    st = ActivityStats()
    for ev in evs:
        observe(st, ev, stranger=ev.type == "message.send")
    ts = np.array([ev.ts for ev in evs], dtype=np.int64)
    gaps = np.diff(ts) / 1000.0
    assert st.n_events == len(evs) and st.first_ts == ts[0] and st.last_ts == ts[-1]
    assert st.gap_n == len(gaps)
    assert math.isclose(st.gap_raw_mean, gaps.mean(), rel_tol=1e-9)
    assert math.isclose(st.gap_raw_m2 / st.gap_n, gaps.var(), rel_tol=1e-9)
    assert math.isclose(st.gap_mean, np.log1p(gaps).mean(), rel_tol=1e-9)
    assert math.isclose(st.gap_m2 / st.gap_n, np.log1p(gaps).var(), rel_tol=1e-9)
    assert st.gap_min_s == gaps.min()
    hist = np.bincount(np.minimum(GAP_BINS - 1, np.log2(1 + gaps).astype(int)), minlength=GAP_BINS)
    assert st.gap_hist == hist.tolist()
    assert st.hours == np.bincount((ts // 3_600_000) % 24, minlength=24).tolist()
    assert st.weekdays == np.bincount((ts // 86_400_000 + 3) % 7, minlength=7).tolist()
    posts = [ev.post for ev in evs if ev.type == "post.create"]
    assert st.n_replies == sum(p.reply_to is not None for p in posts)
    assert st.n_posts == sum(p.reply_to is None for p in posts)
    assert st.n_urls == sum(len(p.urls) for p in posts)
    assert st.n_likes == sum(ev.type == "post.engage" and ev.kind == "like" for ev in evs)
    assert st.n_messages == st.n_messages_to_strangers == sum(ev.type == "message.send" for ev in evs)
    texts = [ev.post.text if ev.type == "post.create" else ev.text for ev in evs
             if ev.type in ("post.create", "message.send")]
    hashes = [text_hash(t) for t in texts]
    dups = sum(h in hashes[max(0, i - RECENT_TEXTS):i] for i, h in enumerate(hashes))
    assert st.n_texts == len(texts) and st.n_dup_texts == dups
    assert sum(st.clients.values()) == sum(ev.ctx is not None for ev in evs)


def test_text_hash_is_normalised_and_stable():
    # one hash for the text-hash entity, post records and duplicate detection (BLAKE2b, process-independent)
    assert text_hash("Buy  NOW ") == text_hash("buy now") == 6245661459177822692


def test_engagement_aggregates_from_the_engine_state():
    """Likes and reposts of known posts: age, earlier engagements, author followers, followed share and a
    bounded sketch of engaged authors - computed by the engine's observer before the like is applied."""
    from bastion.detect.bots import activity_observer
    from bastion.features.account import activity_features
    from bastion.state.activity import MAX_AUTHORS
    from bastion.state.apply import apply_event
    from bastion.state.memory import MemoryState
    from bastion.state.model import Account

    st = MemoryState()
    t0 = 1_700_000_000_000
    st.accounts.put(Account(id="author", followers=7))
    st.accounts.put(Account(id="fan"))
    st.graph.add("follow", "fan", "author", t0)
    apply_event(st, PostCreate(id="e0", ts=t0, actor="author", post=PostBody(id="p0", text="hi")),
                st.accounts.get("author"))
    for i, who in enumerate(("x1", "x2")):
        st.accounts.put(Account(id=who))
        apply_event(st, PostEngage(id=f"l{i}", ts=t0 + 60_000, actor=who, kind="like", post=PostRef(id="p0")),
                    st.accounts.get(who), activity_observer)
    fan = st.accounts.get("fan")
    like = PostEngage(id="l9", ts=t0 + 10 * 60_000, actor="fan", kind="like", post=PostRef(id="p0"))
    apply_event(st, like, fan, activity_observer)
    a = fan.activity
    assert (a.n_likes, a.n_eng_seen, a.n_eng_young, a.n_eng_followed) == (1, 1, 1, 1)
    assert math.isclose(a.eng_age_log_sum, math.log1p(10.0))
    assert math.isclose(a.eng_prior_log_sum, math.log1p(2))           # two likes before this one
    assert math.isclose(a.eng_velocity_log_sum, math.log1p(2 * 60.0 / 11.0))
    assert math.isclose(a.eng_author_log_sum, math.log1p(7))
    assert a.eng_authors == {"author": 1}
    f = activity_features(fan, t0 + 10 * 60_000)
    assert f["act_eng_young_share"] == 1.0 and f["act_eng_followed_share"] == 1.0
    assert f["act_eng_top_author_share"] == 1.0
    # an unknown post counts as a like but adds nothing else; other actions leave the aggregates alone
    apply_event(st, PostEngage(id="l10", ts=t0 + 11 * 60_000, actor="fan", kind="like", post=PostRef(id="zz")),
                fan, activity_observer)
    assert (a.n_likes, a.n_eng_seen) == (2, 1)

    # the author sketch stays bounded (Misra-Gries) and keeps a heavy hitter
    stats = ActivityStats()
    ev = PostEngage(id="x", ts=t0, actor="a", kind="like", post=PostRef(id="q"))
    for i in range(200):
        author = "heavy" if i % 2 else f"a{i}"
        observe(stats, ev, engaged=(author, 3_600_000 * 5, 0, 10, False))
        assert len(stats.eng_authors) <= MAX_AUTHORS
    assert "heavy" in stats.eng_authors and stats.n_eng_young == 0 and stats.n_eng_seen == 200
