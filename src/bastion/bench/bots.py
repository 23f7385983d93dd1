"""Bot detector throughput: online feature update + scoring per event, and batch scoring of accounts,
each beside its baseline in the same run (the observe step alone; building the accounts alone)."""

from __future__ import annotations

import random
import resource
import time
from typing import Any

DESCRIPTION = ("bot detector: per-event observe + features + cached/uncached scoring vs observe alone; "
               "batch profile scoring of 1M accounts vs building them")


def _events(n: int, n_accounts: int, seed: int = 1) -> list[Any]:
    from bastion.events.model import Ctx, GraphFollow, PostBody, PostCreate, PostEngage, PostRef

    rng = random.Random(seed)
    t = 1_760_000_000_000
    out: list[Any] = []
    ctx = [Ctx(client="web"), Ctx(client="android"), Ctx(client="api")]
    for i in range(n):
        t += rng.randint(1, 2000)
        actor = f"u{rng.randrange(n_accounts)}"
        r = rng.random()
        if r < 0.4:
            body = PostBody(id=f"p{i}", text=f"hello world {rng.randrange(50)}",
                            reply_to=f"p{i - 1}" if rng.random() < 0.3 else None,
                            urls=["https://x.example"] if rng.random() < 0.2 else [],
                            hashtags=["tag"] if rng.random() < 0.1 else [])
            out.append(PostCreate(id=f"e{i}", ts=t, actor=actor, post=body, ctx=rng.choice(ctx)))
        elif r < 0.9:
            out.append(PostEngage(id=f"e{i}", ts=t, actor=actor, kind="like" if r < 0.75 else "repost",
                                  post=PostRef(id=f"p{rng.randrange(i + 1)}"), ctx=rng.choice(ctx)))
        else:
            out.append(GraphFollow(id=f"e{i}", ts=t, actor=actor, target=f"u{rng.randrange(n_accounts)}"))
    return out


def _engaged(stream: list[Any]) -> list[Any]:
    """For each like or repost, what the engine's observer passes to ``observe``: (the post's author, its age,
    its likes + reposts so far, the author's followers, whether the actor follows the author); ``None`` for
    other events. Computed ahead, so the timed loops measure the aggregates, not this bookkeeping."""
    posts: dict[str, list[Any]] = {}
    out: list[Any] = []
    for ev in stream:
        if ev.type == "post.create":
            posts[ev.post.id] = [ev.actor, ev.ts, 0]
            out.append(None)
        elif ev.type == "post.engage" and ev.post.id in posts:
            p = posts[ev.post.id]
            out.append((p[0], ev.ts - p[1], p[2], 10 + int(p[0][1:]) % 300, len(ev.actor) % 3 == 0))
            p[2] += 1
        else:
            out.append(None)
    return out


def _account(i: int, rng: random.Random) -> Any:
    from bastion.state.model import Account

    return Account(id=str(i), handle=f"user{rng.randrange(10**6)}", display_name="Some Name",
                   bio="hello there" if rng.random() < 0.6 else None, default_profile=rng.random() < 0.5,
                   default_profile_image=rng.random() < 0.1, created_ms=1_400_000_000_000 + i * 1000,
                   followers=rng.randrange(5000), following=rng.randrange(2000), posts=rng.randrange(20000),
                   likes_given=rng.randrange(20000), listed=rng.randrange(20))


def run(events: int | None = None, quick: bool = False) -> dict[str, Any]:
    from bastion.models.bots import BotDetector
    from bastion.state.activity import observe
    from bastion.state.model import Account

    n_events = events or (20_000 if quick else 300_000)
    n_uncached = min(n_events, 2_000 if quick else 20_000)
    n_batch = 20_000 if quick else 1_000_000
    n_accounts = max(100, n_events // 50)
    stream = _events(n_events, n_accounts)
    engaged = _engaged(stream)
    res: dict[str, Any] = {"events": n_events, "accounts_online": n_accounts}

    def fresh() -> dict[str, Account]:
        return {f"u{i}": Account(id=f"u{i}", handle=f"u{i}", created_ms=1_700_000_000_000, followers=10 + i % 300,
                                 following=50 + i % 200, posts=i % 1000) for i in range(n_accounts)}

    # baseline: the observe step alone
    accs = fresh()
    t0 = time.perf_counter()
    for ev, eng in zip(stream, engaged, strict=True):
        observe(accs[ev.actor].activity, ev, engaged=eng)
    base = n_events / (time.perf_counter() - t0)
    res["online_observe_only_events_per_s"] = base

    detector = BotDetector.load()
    accs = fresh()
    t0 = time.perf_counter()
    for ev, eng in zip(stream, engaged, strict=True):
        acc = accs[ev.actor]
        observe(acc.activity, ev, engaged=eng)
        detector.score(acc, ev.ts)
    cached = n_events / (time.perf_counter() - t0)
    res["online_observe_score_cached_events_per_s"] = cached
    res["online_rescore_fraction"] = detector.rescored / n_events
    res["online_cached_vs_observe_ratio"] = cached / base

    accs = fresh()
    t0 = time.perf_counter()
    for ev, eng in zip(stream[:n_uncached], engaged[:n_uncached], strict=True):
        acc = accs[ev.actor]
        observe(acc.activity, ev, engaged=eng)
        detector.score_uncached(acc, ev.ts)
    res["online_observe_score_uncached_events_per_s"] = n_uncached / (time.perf_counter() - t0)

    # batch: build accounts alone vs build + features + predict, in chunks (bounded memory)
    chunk = 50_000
    rng = random.Random(2)
    t_build = t_score = 0.0
    done = 0
    now = 1_760_000_000_000
    while done < n_batch:
        k = min(chunk, n_batch - done)
        t0 = time.perf_counter()
        batch = [_account(done + i, rng) for i in range(k)]
        t1 = time.perf_counter()
        detector.score_batch(batch, now)
        t2 = time.perf_counter()
        t_build += t1 - t0
        t_score += t2 - t1
        done += k
    res["batch_accounts"] = n_batch
    res["batch_build_only_accounts_per_s"] = n_batch / t_build
    res["batch_build_and_score_accounts_per_s"] = n_batch / (t_build + t_score)
    res["batch_score_only_accounts_per_s"] = n_batch / t_score
    res["batch_seconds_total"] = t_build + t_score
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res
