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
